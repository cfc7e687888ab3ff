package kmsemu

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/kms/apiv1/kmspb"
)

// The algorithms the emulator implements. Each keeps 32 bytes of secret
// material, which is what the state file stores:
//
//	GOOGLE_SYMMETRIC_ENCRYPTION  an AES-256 key (AES-256-GCM, see ciphertext.go)
//	EC_SIGN_ED25519              an Ed25519 seed (RFC 8032), pure EdDSA over data
//	EC_SIGN_P256_SHA256          a P-256 private scalar, big-endian (SEC 1)
const keyMaterialSize = 32

var supportedAlgorithms = map[kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm]kmspb.CryptoKey_CryptoKeyPurpose{
	kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION: kmspb.CryptoKey_ENCRYPT_DECRYPT,
	kmspb.CryptoKeyVersion_EC_SIGN_ED25519:             kmspb.CryptoKey_ASYMMETRIC_SIGN,
	kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:         kmspb.CryptoKey_ASYMMETRIC_SIGN,
}

// purposeOf returns the purpose the real service allows for alg (judged by
// the enum name, as the service's algorithm table groups them), or
// UNSPECIFIED for an unknown or unspecified algorithm.
func purposeOf(alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) kmspb.CryptoKey_CryptoKeyPurpose {
	if p, ok := supportedAlgorithms[alg]; ok {
		return p
	}
	name, ok := kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm_name[int32(alg)]
	if !ok {
		return kmspb.CryptoKey_CRYPTO_KEY_PURPOSE_UNSPECIFIED
	}
	switch {
	case name == "EXTERNAL_SYMMETRIC_ENCRYPTION":
		return kmspb.CryptoKey_ENCRYPT_DECRYPT
	case strings.HasPrefix(name, "RSA_SIGN_"), strings.HasPrefix(name, "EC_SIGN_"), strings.HasPrefix(name, "PQ_SIGN_"):
		return kmspb.CryptoKey_ASYMMETRIC_SIGN
	case strings.HasPrefix(name, "RSA_DECRYPT_"):
		return kmspb.CryptoKey_ASYMMETRIC_DECRYPT
	case strings.HasPrefix(name, "HMAC_"):
		return kmspb.CryptoKey_MAC
	case name == "AES_256_KWP":
		return kmspb.CryptoKey_AES_WRAPPING
	case strings.HasPrefix(name, "AES_"):
		return kmspb.CryptoKey_RAW_ENCRYPT_DECRYPT
	case strings.HasPrefix(name, "ML_KEM_"), strings.HasPrefix(name, "KEM_"):
		return kmspb.CryptoKey_KEY_ENCAPSULATION
	}
	return kmspb.CryptoKey_CRYPTO_KEY_PURPOSE_UNSPECIFIED
}

// keyMaterial is one version's secret, with the objects derived from it.
type keyMaterial struct {
	raw []byte // keyMaterialSize bytes; what the state file stores

	aead cipher.AEAD        // GOOGLE_SYMMETRIC_ENCRYPTION
	ed   ed25519.PrivateKey // EC_SIGN_ED25519
	ec   *ecdsa.PrivateKey  // EC_SIGN_P256_SHA256

	pemKey string // SubjectPublicKeyInfo PEM, for the signing algorithms
	derKey []byte // SubjectPublicKeyInfo DER
}

var errBadKeyMaterial = errors.New("bad key material")

// newKeyMaterial rebuilds a version's key from its raw bytes.
func newKeyMaterial(alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm, raw []byte) (*keyMaterial, error) {
	if len(raw) != keyMaterialSize {
		return nil, fmt.Errorf("%w: %d bytes for %v, want %d", errBadKeyMaterial, len(raw), alg, keyMaterialSize)
	}
	m := &keyMaterial{raw: append([]byte(nil), raw...)}
	var pub any
	switch alg {
	case kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION:
		block, err := aes.NewCipher(m.raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errBadKeyMaterial, err)
		}
		if m.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("%w: %w", errBadKeyMaterial, err)
		}
		return m, nil
	case kmspb.CryptoKeyVersion_EC_SIGN_ED25519:
		m.ed = ed25519.NewKeyFromSeed(m.raw)
		pub = m.ed.Public()
	case kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), m.raw)
		if err != nil {
			return nil, fmt.Errorf("%w: P-256 scalar: %w", errBadKeyMaterial, err)
		}
		m.ec = k
		pub = &k.PublicKey
	default:
		return nil, fmt.Errorf("%w: unsupported algorithm %v", errBadKeyMaterial, alg)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode the public key: %w", err)
	}
	m.derKey = der
	m.pemKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return m, nil
}

// generateKeyMaterial makes a fresh secret for alg from crypto/rand.
func generateKeyMaterial(alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) (*keyMaterial, error) {
	var raw []byte
	switch alg {
	case kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION, kmspb.CryptoKeyVersion_EC_SIGN_ED25519:
		raw = make([]byte, keyMaterialSize)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("couldn't generate a key: %w", err)
		}
	case kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("couldn't generate a P-256 key: %w", err)
		}
		if raw, err = k.Bytes(); err != nil {
			return nil, fmt.Errorf("couldn't encode a P-256 key: %w", err)
		}
	default:
		return nil, fmt.Errorf("couldn't generate a key: unsupported algorithm %v", alg)
	}
	return newKeyMaterial(alg, raw)
}
