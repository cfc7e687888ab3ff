// Package kmsemu is a Cloud KMS emulator: a gRPC server implementing the
// subset of google.cloud.kms.v1.KeyManagementService that Conifer uses, so
// that the production client code (cloud.google.com/go/kms/apiv1) is what
// runs in tests and in the local stack. Google ships no KMS emulator.
//
// Use:
//
//	srv, err := kmsemu.Start(ctx, kmsemu.Options{Addr: "127.0.0.1:0", StateFile: ""})
//	defer srv.Close()
//	client, err := kms.NewKeyManagementClient(ctx, srv.ClientOptions()...)
//	ring, err := client.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{
//		Parent: "projects/p/locations/global", KeyRingId: "conifer"})
//	key, err := client.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{
//		Parent: ring.Name, CryptoKeyId: "checkpoint-signer",
//		CryptoKey: &kmspb.CryptoKey{
//			Purpose:         kmspb.CryptoKey_ASYMMETRIC_SIGN,
//			VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_ED25519},
//		}})
//	sig, err := client.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{
//		Name: key.Name + "/cryptoKeyVersions/1", Data: msg})
//
// The binary cmd/kms-emulator serves the same thing for a local stack.
//
// # Methods
//
// CreateKeyRing, GetKeyRing, ListKeyRings; CreateCryptoKey (with version 1
// unless skip_initial_version_creation), GetCryptoKey, ListCryptoKeys;
// CreateCryptoKeyVersion, GetCryptoKeyVersion, ListCryptoKeyVersions,
// UpdateCryptoKeyVersion (state ENABLED ⇄ DISABLED), DestroyCryptoKeyVersion,
// RestoreCryptoKeyVersion, UpdateCryptoKeyPrimaryVersion; GetPublicKey,
// AsymmetricSign, Encrypt, Decrypt. Every other method is Unimplemented.
//
// Algorithms: GOOGLE_SYMMETRIC_ENCRYPTION (ENCRYPT_DECRYPT, AES-256-GCM; the
// ciphertext format is in ciphertext.go), EC_SIGN_ED25519 (pure Ed25519 over
// data, 64-byte signatures) and EC_SIGN_P256_SHA256 (ECDSA over
// digest.sha256 or the SHA-256 of data, ASN.1 DER signatures). Public keys
// are SubjectPublicKeyInfo PEM (RFC 8410 for Ed25519).
//
// # Real behaviours it follows
//
// Each is a case of the conformance test, which names its source (the API
// reference, the "verifying end-to-end data integrity" guide, or the
// contract tests Google runs against the real service for its fakekms).
//
//   - Names: projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N,
//     ids [a-zA-Z0-9_-]{1,63}; a malformed name is InvalidArgument, a
//     missing resource NotFound, a second create AlreadyExists.
//   - CreateCryptoKey: ENCRYPT_DECRYPT defaults to GOOGLE_SYMMETRIC_ENCRYPTION
//     and gets version 1 as primary; other purposes need an algorithm
//     (InvalidArgument); an algorithm of another purpose is InvalidArgument;
//     protection level defaults to SOFTWARE; destroy_scheduled_duration
//     defaults to 30 days (24 hours to 120 days allowed); labels follow the
//     Google Cloud label rules. CreateCryptoKeyVersion does not move the
//     primary; UpdateCryptoKeyPrimaryVersion does.
//   - Version states: a version that is not ENABLED (DISABLED,
//     DESTROY_SCHEDULED, DESTROYED, PENDING_GENERATION) can't be used:
//     FailedPrecondition. Update only toggles ENABLED/DISABLED (a mask with
//     another field, or another target state, is InvalidArgument);
//     Destroy schedules destruction after destroy_scheduled_duration, when
//     the key material is erased and the state becomes DESTROYED; Restore
//     brings a scheduled version back as DISABLED.
//   - Using a key for the wrong purpose (signing with an ENCRYPT_DECRYPT key,
//     encrypting with an ASYMMETRIC_SIGN key, GetPublicKey of a symmetric
//     key) is FailedPrecondition, as the real service answers; a request
//     that doesn't fit the algorithm (a digest for EC_SIGN_ED25519, a
//     SHA-384 digest for P-256, digest and data together, a wrong digest
//     length) is InvalidArgument.
//   - Integrity: request data_crc32c, digest_crc32c, plaintext_crc32c,
//     ciphertext_crc32c and additional_authenticated_data_crc32c (CRC32C,
//     Castagnoli, in an Int64Value) are checked, a mismatch is
//     InvalidArgument; responses set verified_*_crc32c when a checksum was
//     received, and signature_crc32c, ciphertext_crc32c, plaintext_crc32c,
//     pem_crc32c, and the name of the version used.
//   - Sizes: plaintext 1 byte to 64 KiB and AAD up to 64 KiB (SOFTWARE),
//     plaintext + AAD up to 8 KiB (HSM); sign data up to 64 KiB.
//   - Decrypt takes the CryptoKey name and finds the version from the
//     ciphertext, so ciphertexts stay decryptable after a rotation (while
//     their version is ENABLED); used_primary says whether it was the
//     primary. A ciphertext of another key, or with other AAD, is
//     InvalidArgument "Decryption failed".
//   - GetPublicKey: pem + pem_crc32c by default; public_key (PEM or DER, with
//     its checksum) when public_key_format asks for it.
//   - Times have microsecond resolution.
//
// # What it does not do
//
// No IAM, no authentication (any caller may do anything), no key import,
// no export, no automatic rotation (rotation_period is Unimplemented), no
// EXTERNAL or EXTERNAL_VPC keys; HSM is accepted and reported but the keys
// live in this process like SOFTWARE ones (only the HSM size limit
// differs). No filter or order_by in List calls (Unimplemented). No
// DeleteCryptoKey, key-access justifications or retired resources.
// Projects and locations are not checked beyond their shape. Asymmetric
// versions are ENABLED at once unless Options.GenerationDelay asks for a
// PENDING_GENERATION period like the real service's.
//
// # Persistence
//
// With Options.StateFile set, every change is written (JSON, mode 0600,
// temporary file + fsync + rename) before the call returns, and Start loads
// the file, so a restarted local stack keeps its keys. The file holds
// private keys in the clear. Its format is described in persist.go; the
// parser accepts only the canonical form the emulator writes.
//
// # Fault injection
//
// Server.FailNext(method, n, code) fails the next n calls before they take
// effect; Server.FailNextAfterApply(method, n, code) lets them take effect
// and then fails them (a lost response: the key exists, the caller saw an
// error); Server.SetLatency(d) delays every call; Server.Calls(method)
// counts calls, so tests can see the client's retries.
package kmsemu
