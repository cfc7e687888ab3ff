package kmsemu

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"hash/crc32"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	// maxSignData is the largest AsymmetricSign data accepted (64 KiB).
	maxSignData = 64 << 10
	// maxAAD is the largest additional_authenticated_data (64 KiB).
	maxAAD = 64 << 10
	// maxHSMPayload caps plaintext plus AAD for HSM keys (8 KiB).
	maxHSMPayload = 8 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c returns the CRC32C (Castagnoli) of b as the API carries it.
func crc32c(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, castagnoli)))
}

// checkCRC verifies an optional request checksum: absent → (false, nil);
// matching → (true, nil); otherwise InvalidArgument, as the real service
// does ("verifying end-to-end data integrity").
func checkCRC(field string, b []byte, sum *wrapperspb.Int64Value) (bool, error) {
	if sum == nil {
		return false, nil
	}
	if sum.GetValue() != int64(crc32.Checksum(b, castagnoli)) {
		return false, errorf(codes.InvalidArgument, "%s does not match the CRC32C of the received data: the request was corrupted in transit", field)
	}
	return true, nil
}

// usable checks that a version can be used for a cryptographic operation.
func usable(n versionName, v *keyVersion, now time.Time) error {
	if st := v.view(now).state; st != kmspb.CryptoKeyVersion_ENABLED {
		return errorf(codes.FailedPrecondition, "CryptoKeyVersion %s is not enabled (state %v)", n, st)
	}
	return nil
}

// GetPublicKey returns the SubjectPublicKeyInfo of an ASYMMETRIC_SIGN
// version: in pem (with pem_crc32c) by default, or in public_key when a
// format is asked for.
func (s *service) GetPublicKey(_ context.Context, req *kmspb.GetPublicKeyRequest) (*kmspb.PublicKey, error) {
	n, err := parseVersionName(req.GetName())
	if err != nil {
		return nil, badName(err)
	}
	var out *kmspb.PublicKey
	err = s.read(func(now time.Time) error {
		k, v, err := s.st.keyVersion(n)
		if err != nil {
			return err
		}
		if k.purpose != kmspb.CryptoKey_ASYMMETRIC_SIGN {
			return errorf(codes.FailedPrecondition, "CryptoKey %s has purpose %v, which has no public key", k.name, k.purpose)
		}
		if err := usable(n, v, now); err != nil {
			return err
		}
		out = &kmspb.PublicKey{
			Name:            n.String(),
			Algorithm:       v.algorithm,
			ProtectionLevel: v.protectionLevel,
		}
		switch f := req.GetPublicKeyFormat(); f {
		case kmspb.PublicKey_PUBLIC_KEY_FORMAT_UNSPECIFIED:
			out.Pem = v.material.pemKey
			out.PemCrc32C = crc32c([]byte(out.Pem))
		case kmspb.PublicKey_PEM, kmspb.PublicKey_DER:
			data := []byte(v.material.pemKey)
			if f == kmspb.PublicKey_DER {
				data = v.material.derKey
			}
			out.PublicKeyFormat = f
			out.PublicKey = &kmspb.ChecksummedData{Data: data, Crc32CChecksum: crc32c(data)}
		default:
			return errorf(codes.InvalidArgument, "public_key_format %v is only for post-quantum algorithms, not %v", f, v.algorithm)
		}
		return nil
	})
	return out, err
}

// AsymmetricSign signs with an ENABLED ASYMMETRIC_SIGN version:
// EC_SIGN_ED25519 signs data (pure Ed25519, 64-byte signature; a digest is
// InvalidArgument); EC_SIGN_P256_SHA256 signs digest.sha256, or the SHA-256
// of data, and returns an ASN.1 DER ECDSA signature.
func (s *service) AsymmetricSign(_ context.Context, req *kmspb.AsymmetricSignRequest) (*kmspb.AsymmetricSignResponse, error) {
	n, err := parseVersionName(req.GetName())
	if err != nil {
		return nil, badName(err)
	}
	var out *kmspb.AsymmetricSignResponse
	err = s.read(func(now time.Time) error {
		k, v, err := s.st.keyVersion(n)
		if err != nil {
			return err
		}
		if k.purpose != kmspb.CryptoKey_ASYMMETRIC_SIGN {
			return errorf(codes.FailedPrecondition, "CryptoKey %s has purpose %v and can't sign", k.name, k.purpose)
		}
		if err := usable(n, v, now); err != nil {
			return err
		}
		out, err = sign(n, v, req)
		return err
	})
	return out, err
}

func sign(n versionName, v *keyVersion, req *kmspb.AsymmetricSignRequest) (*kmspb.AsymmetricSignResponse, error) {
	data, digest := req.GetData(), req.GetDigest()
	if digest != nil && len(data) > 0 {
		return nil, errorf(codes.InvalidArgument, "digest and data can't both be set")
	}
	if len(data) > maxSignData {
		return nil, errorf(codes.InvalidArgument, "data is %d bytes, want at most %d", len(data), maxSignData)
	}
	out := &kmspb.AsymmetricSignResponse{Name: n.String(), ProtectionLevel: v.protectionLevel}
	var err error
	if out.VerifiedDataCrc32C, err = checkCRC("data_crc32c", data, req.GetDataCrc32C()); err != nil {
		return nil, err
	}
	var digestBytes []byte
	switch d := digest.GetDigest().(type) {
	case *kmspb.Digest_Sha256:
		digestBytes = d.Sha256
	case *kmspb.Digest_Sha384:
		digestBytes = d.Sha384
	case *kmspb.Digest_Sha512:
		digestBytes = d.Sha512
	case *kmspb.Digest_ExternalMu:
		digestBytes = d.ExternalMu
	}
	if req.GetDigestCrc32C() != nil {
		if out.VerifiedDigestCrc32C, err = checkCRC("digest_crc32c", digestBytes, req.GetDigestCrc32C()); err != nil {
			return nil, err
		}
	}
	switch v.algorithm {
	case kmspb.CryptoKeyVersion_EC_SIGN_ED25519:
		if digest != nil {
			return nil, errorf(codes.InvalidArgument, "EC_SIGN_ED25519 signs data (pure Ed25519), not a digest")
		}
		if len(data) == 0 {
			return nil, errorf(codes.InvalidArgument, "data is required")
		}
		out.Signature = ed25519.Sign(v.material.ed, data)
	case kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:
		var h []byte
		switch d := digest.GetDigest().(type) {
		case nil:
			if len(data) == 0 {
				return nil, errorf(codes.InvalidArgument, "digest or data is required")
			}
			sum := sha256.Sum256(data)
			h = sum[:]
		case *kmspb.Digest_Sha256:
			if len(d.Sha256) != sha256.Size {
				return nil, errorf(codes.InvalidArgument, "digest.sha256 is %d bytes, want %d", len(d.Sha256), sha256.Size)
			}
			h = d.Sha256
		default:
			return nil, errorf(codes.InvalidArgument, "EC_SIGN_P256_SHA256 takes digest.sha256, not %T", d)
		}
		sig, err := ecdsa.SignASN1(rand.Reader, v.material.ec, h)
		if err != nil {
			return nil, errorf(codes.Internal, "couldn't sign: %v", err)
		}
		out.Signature = sig
	default:
		return nil, errorf(codes.Internal, "kmsemu: no signer for %v", v.algorithm)
	}
	out.SignatureCrc32C = crc32c(out.Signature)
	return out, nil
}

// Encrypt encrypts with the primary version of an ENCRYPT_DECRYPT key, or
// with the version named.
func (s *service) Encrypt(_ context.Context, req *kmspb.EncryptRequest) (*kmspb.EncryptResponse, error) {
	var kn cryptoKeyName
	id := 0 // 0: the primary
	if vn, err := parseVersionName(req.GetName()); err == nil {
		kn, id = vn.cryptoKeyName, vn.version
	} else if kn, err = parseCryptoKeyName(req.GetName()); err != nil {
		return nil, errorf(codes.InvalidArgument, "name %q is neither a CryptoKey nor a CryptoKeyVersion name", req.GetName())
	}
	plaintext, aad := req.GetPlaintext(), req.GetAdditionalAuthenticatedData()
	var out *kmspb.EncryptResponse
	err := s.read(func(now time.Time) error {
		k, err := s.st.cryptoKey(kn)
		if err != nil {
			return err
		}
		if k.purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT {
			return errorf(codes.FailedPrecondition, "CryptoKey %s has purpose %v and can't encrypt", kn, k.purpose)
		}
		if id == 0 {
			if k.primary == 0 {
				return errorf(codes.FailedPrecondition, "CryptoKey %s has no primary version", kn)
			}
			id = k.primary
		}
		v := k.version(id)
		if v == nil {
			return errorf(codes.NotFound, "CryptoKeyVersion %s not found", k.versionName(id))
		}
		if err := usable(k.versionName(id), v, now); err != nil {
			return err
		}
		if err := checkSizes(v, plaintext, aad); err != nil {
			return err
		}
		out = &kmspb.EncryptResponse{Name: k.versionName(id).String(), ProtectionLevel: v.protectionLevel}
		if out.VerifiedPlaintextCrc32C, err = checkCRC("plaintext_crc32c", plaintext, req.GetPlaintextCrc32C()); err != nil {
			return err
		}
		if out.VerifiedAdditionalAuthenticatedDataCrc32C, err = checkCRC("additional_authenticated_data_crc32c", aad, req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
			return err
		}
		var nonce [nonceSize]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return errorf(codes.Internal, "couldn't make a nonce: %v", err)
		}
		out.Ciphertext = seal(v.material, kn.String(), id, nonce, plaintext, aad).encode()
		out.CiphertextCrc32C = crc32c(out.Ciphertext)
		return nil
	})
	return out, err
}

// checkSizes applies the real service's limits: plaintext 1 byte to 64 KiB
// and AAD up to 64 KiB for SOFTWARE keys; plaintext plus AAD up to 8 KiB
// for HSM keys.
func checkSizes(v *keyVersion, plaintext, aad []byte) error {
	switch {
	case len(plaintext) == 0:
		return errorf(codes.InvalidArgument, "plaintext is required")
	case len(plaintext) > maxPlaintext:
		return errorf(codes.InvalidArgument, "plaintext is %d bytes, want at most %d", len(plaintext), maxPlaintext)
	case len(aad) > maxAAD:
		return errorf(codes.InvalidArgument, "additional_authenticated_data is %d bytes, want at most %d", len(aad), maxAAD)
	case v.protectionLevel == kmspb.ProtectionLevel_HSM && len(plaintext)+len(aad) > maxHSMPayload:
		return errorf(codes.InvalidArgument, "plaintext and additional_authenticated_data are %d bytes, want at most %d for HSM keys", len(plaintext)+len(aad), maxHSMPayload)
	}
	return nil
}

// Decrypt decrypts a ciphertext of Encrypt under the CryptoKey named; the
// ciphertext names the version, which must be ENABLED.
func (s *service) Decrypt(_ context.Context, req *kmspb.DecryptRequest) (*kmspb.DecryptResponse, error) {
	kn, err := parseCryptoKeyName(req.GetName())
	if err != nil {
		return nil, badName(err)
	}
	if _, err := checkCRC("ciphertext_crc32c", req.GetCiphertext(), req.GetCiphertextCrc32C()); err != nil {
		return nil, err
	}
	if _, err := checkCRC("additional_authenticated_data_crc32c", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
		return nil, err
	}
	if len(req.GetAdditionalAuthenticatedData()) > maxAAD {
		return nil, errorf(codes.InvalidArgument, "additional_authenticated_data is %d bytes, want at most %d", len(req.GetAdditionalAuthenticatedData()), maxAAD)
	}
	var out *kmspb.DecryptResponse
	err = s.read(func(now time.Time) error {
		k, err := s.st.cryptoKey(kn)
		if err != nil {
			return err
		}
		if k.purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT {
			return errorf(codes.FailedPrecondition, "CryptoKey %s has purpose %v and can't decrypt", kn, k.purpose)
		}
		c, err := parseCiphertext(req.GetCiphertext())
		if err != nil {
			return errorf(codes.InvalidArgument, "Decryption failed: %v", err)
		}
		v := k.version(c.version)
		if v == nil {
			return errorf(codes.InvalidArgument, "Decryption failed: the ciphertext names no version of %s", kn)
		}
		if err := usable(k.versionName(c.version), v, now); err != nil {
			return err
		}
		plaintext, err := c.open(v.material, kn.String(), req.GetAdditionalAuthenticatedData())
		if err != nil {
			return errorf(codes.InvalidArgument, "Decryption failed: the ciphertext is invalid or the additional authenticated data differs")
		}
		out = &kmspb.DecryptResponse{
			Plaintext:       plaintext,
			PlaintextCrc32C: crc32c(plaintext),
			UsedPrimary:     c.version == k.primary,
			ProtectionLevel: v.protectionLevel,
		}
		return nil
	})
	return out, err
}
