// Package kmssign connects Conifer to Cloud KMS: the keyserver's checkpoint
// signer (an EC_SIGN_ED25519 key, so the signing key never leaves KMS) and
// the envelope that keeps the VRF seed encrypted under a symmetric KMS key.
//
// (Written by the lead engineer to unblock the epoch function; the epoch
// package uses it as is.)
//
// Every call uses KMS's end-to-end integrity fields: the request carries the
// CRC32C (Castagnoli) of its data, and the response must confirm it
// (verified_*_crc32c) and carry the CRC32C of what it returns; a mismatch is
// an error, never a silently corrupted signature or seed. Signatures are
// also verified against the public key before they are returned, so a
// misconfigured key version cannot produce a checkpoint nobody can verify.
package kmssign

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

// ErrIntegrity is wrapped when a KMS response fails its CRC32C checks or a
// signature does not verify under the key's public key.
var ErrIntegrity = errors.New("kms response failed integrity check")

// Signer signs through one EC_SIGN_ED25519 CryptoKeyVersion. It implements
// checkpoint.Ed25519Signer. Safe for concurrent use.
type Signer struct {
	client  *kms.KeyManagementClient
	name    string // full CryptoKeyVersion resource name
	pub     ed25519.PublicKey
	timeout time.Duration
}

// SignTimeout bounds each AsymmetricSign call (checkpoint.Ed25519Signer's
// Sign has no context).
const SignTimeout = 30 * time.Second

// NewSigner fetches and checks the public key of the CryptoKeyVersion
// versionName (projects/…/cryptoKeys/K/cryptoKeyVersions/N), which must be
// an EC_SIGN_ED25519 key.
func NewSigner(ctx context.Context, client *kms.KeyManagementClient, versionName string) (*Signer, error) {
	pub, err := PublicKey(ctx, client, versionName)
	if err != nil {
		return nil, err
	}
	return &Signer{client: client, name: versionName, pub: pub, timeout: SignTimeout}, nil
}

// PublicKey returns the Ed25519 public key of a CryptoKeyVersion, checking
// the PEM's CRC32C and the algorithm.
func PublicKey(ctx context.Context, client *kms.KeyManagementClient, versionName string) (ed25519.PublicKey, error) {
	resp, err := client.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: versionName})
	if err != nil {
		return nil, fmt.Errorf("couldn't get the public key of %s: %w", versionName, err)
	}
	if resp.GetName() != versionName {
		return nil, fmt.Errorf("couldn't get the public key of %s: %w: response names %q", versionName, ErrIntegrity, resp.GetName())
	}
	if resp.GetPemCrc32C() == nil || resp.GetPemCrc32C().GetValue() != crc([]byte(resp.GetPem())) {
		return nil, fmt.Errorf("couldn't get the public key of %s: %w: pem_crc32c mismatch", versionName, ErrIntegrity)
	}
	if resp.GetAlgorithm() != kmspb.CryptoKeyVersion_EC_SIGN_ED25519 {
		return nil, fmt.Errorf("couldn't use %s: algorithm is %v, want EC_SIGN_ED25519", versionName, resp.GetAlgorithm())
	}
	block, _ := pem.Decode([]byte(resp.GetPem()))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("couldn't parse the public key of %s: not a PEM PUBLIC KEY block", versionName)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse the public key of %s: %w", versionName, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("couldn't use %s: public key is %T, want Ed25519", versionName, k)
	}
	return pub, nil
}

// Public returns the signing key's public half.
func (s *Signer) Public() ed25519.PublicKey { return s.pub }

// Name returns the CryptoKeyVersion resource name.
func (s *Signer) Name() string { return s.name }

// Sign returns the pure Ed25519 signature of msg made by KMS.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return s.SignContext(ctx, msg)
}

// SignContext is Sign with a context.
func (s *Signer) SignContext(ctx context.Context, msg []byte) ([]byte, error) {
	resp, err := s.client.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{
		Name:       s.name,
		Data:       msg,
		DataCrc32C: wrapperspb.Int64(crc(msg)),
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't sign with %s: %w", s.name, err)
	}
	if !resp.GetVerifiedDataCrc32C() {
		return nil, fmt.Errorf("couldn't sign with %s: %w: data_crc32c not verified by KMS", s.name, ErrIntegrity)
	}
	if resp.GetName() != s.name {
		return nil, fmt.Errorf("couldn't sign with %s: %w: response names %q", s.name, ErrIntegrity, resp.GetName())
	}
	sig := resp.GetSignature()
	if resp.GetSignatureCrc32C() == nil || resp.GetSignatureCrc32C().GetValue() != crc(sig) {
		return nil, fmt.Errorf("couldn't sign with %s: %w: signature_crc32c mismatch", s.name, ErrIntegrity)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(s.pub, msg, sig) {
		return nil, fmt.Errorf("couldn't sign with %s: %w: signature does not verify", s.name, ErrIntegrity)
	}
	return sig, nil
}

// SealVRFSeed encrypts the 32-byte VRF seed under the symmetric key keyName
// (projects/…/cryptoKeys/K), with the realm name as additional
// authenticated data, so a ciphertext cannot be moved to another realm.
func SealVRFSeed(ctx context.Context, client *kms.KeyManagementClient, keyName, realm string, seed []byte) ([]byte, error) {
	if len(seed) != 32 {
		return nil, fmt.Errorf("couldn't seal the VRF seed: it is %d bytes, want 32", len(seed))
	}
	aad := []byte(realm)
	resp, err := client.Encrypt(ctx, &kmspb.EncryptRequest{
		Name:                              keyName,
		Plaintext:                         seed,
		PlaintextCrc32C:                   wrapperspb.Int64(crc(seed)),
		AdditionalAuthenticatedData:       aad,
		AdditionalAuthenticatedDataCrc32C: wrapperspb.Int64(crc(aad)),
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't seal the VRF seed with %s: %w", keyName, err)
	}
	if !resp.GetVerifiedPlaintextCrc32C() || !resp.GetVerifiedAdditionalAuthenticatedDataCrc32C() {
		return nil, fmt.Errorf("couldn't seal the VRF seed with %s: %w: request checksums not verified", keyName, ErrIntegrity)
	}
	if resp.GetCiphertextCrc32C() == nil || resp.GetCiphertextCrc32C().GetValue() != crc(resp.GetCiphertext()) {
		return nil, fmt.Errorf("couldn't seal the VRF seed with %s: %w: ciphertext_crc32c mismatch", keyName, ErrIntegrity)
	}
	return resp.GetCiphertext(), nil
}

// OpenVRFSeed decrypts a seed sealed by SealVRFSeed for the same realm.
func OpenVRFSeed(ctx context.Context, client *kms.KeyManagementClient, keyName, realm string, ciphertext []byte) ([]byte, error) {
	aad := []byte(realm)
	resp, err := client.Decrypt(ctx, &kmspb.DecryptRequest{
		Name:                              keyName,
		Ciphertext:                        ciphertext,
		CiphertextCrc32C:                  wrapperspb.Int64(crc(ciphertext)),
		AdditionalAuthenticatedData:       aad,
		AdditionalAuthenticatedDataCrc32C: wrapperspb.Int64(crc(aad)),
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't open the VRF seed with %s: %w", keyName, err)
	}
	pt := resp.GetPlaintext()
	if resp.GetPlaintextCrc32C() == nil || resp.GetPlaintextCrc32C().GetValue() != crc(pt) {
		return nil, fmt.Errorf("couldn't open the VRF seed with %s: %w: plaintext_crc32c mismatch", keyName, ErrIntegrity)
	}
	if len(pt) != 32 {
		return nil, fmt.Errorf("couldn't open the VRF seed with %s: plaintext is %d bytes, want 32", keyName, len(pt))
	}
	return pt, nil
}
