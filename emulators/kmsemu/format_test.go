package kmsemu

// Tests of the byte formats and names: ciphertexts, resource names and the
// state file. Fuzz targets run their seed corpora in every `go test`.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"
)

func counting(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// goldenCiphertext is Encrypt's output for the key 00 01 … 1f, version 2 of
// goldenKeyName, nonce 00 01 … 0b, plaintext "hi", AAD "a", as produced by
// format 1. Ciphertexts persist with the state file: if this changes, old
// ciphertexts no longer decrypt.
const (
	goldenCiphertext = "0100000002000102030405060708090a0b2f6be925afd5903fe575988c12ca6c954f5f"
	goldenKeyName    = "projects/p/locations/l/keyRings/r/cryptoKeys/k"
)

func goldenAEAD(t testing.TB) *keyMaterial {
	m, err := newKeyMaterial(kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION, counting(32))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCiphertextGolden(t *testing.T) {
	m := goldenAEAD(t)
	var nonce [nonceSize]byte
	copy(nonce[:], counting(nonceSize))
	c := seal(m, goldenKeyName, 2, nonce, []byte("hi"), []byte("a"))
	if got := hex.EncodeToString(c.encode()); got != goldenCiphertext {
		t.Fatalf("ciphertext = %s, want %s", got, goldenCiphertext)
	}
	b, _ := hex.DecodeString(goldenCiphertext)
	p, err := parseCiphertext(b)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := p.open(m, goldenKeyName, []byte("a")); err != nil || string(pt) != "hi" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	// Everything bound into the GCM additional data matters.
	if _, err := p.open(m, goldenKeyName+"2", []byte("a")); err == nil {
		t.Error("opened under another key name")
	}
	if _, err := p.open(m, goldenKeyName, []byte("b")); err == nil {
		t.Error("opened with other AAD")
	}
	if _, err := p.open(m, goldenKeyName, nil); err == nil {
		t.Error("opened without the AAD")
	}
	p.version = 3
	if _, err := p.open(m, goldenKeyName, []byte("a")); err == nil {
		t.Error("opened with another version in the header")
	}
}

// TestParseCiphertextExhaustive tries every small length with every
// interesting format byte and version.
func TestParseCiphertextExhaustive(t *testing.T) {
	for n := 0; n <= minCiphertext+3; n++ {
		for _, format := range []byte{0, 1, 2, 0xff} {
			for _, v := range []uint32{0, 1, 2, maxVersion, maxVersion + 1, 0xffffffff} {
				b := make([]byte, n)
				if n > 0 {
					b[0] = format
				}
				if n >= 5 {
					binary.BigEndian.PutUint32(b[1:5], v)
				}
				for i := 5; i < n; i++ {
					b[i] = byte(i)
				}
				c, err := parseCiphertext(b)
				want := n >= minCiphertext && format == 1 && v >= 1 && v <= maxVersion
				if (err == nil) != want {
					t.Fatalf("parseCiphertext(len %d, format %d, version %d) error %v, want ok=%v", n, format, v, err, want)
				}
				if err != nil {
					if !errors.Is(err, errMalformedCiphertext) {
						t.Fatalf("error %v does not wrap errMalformedCiphertext", err)
					}
					continue
				}
				if !bytes.Equal(c.encode(), b) || c.version != int(v) {
					t.Fatalf("parse/encode of %x gave %x (version %d)", b, c.encode(), c.version)
				}
			}
		}
	}
	ok := append([]byte{1, 0, 0, 0, 1}, make([]byte, maxCiphertext-5)...)
	if _, err := parseCiphertext(ok); err != nil {
		t.Errorf("a ciphertext of the largest size: %v", err)
	}
	if _, err := parseCiphertext(append(ok, 0)); err == nil {
		t.Error("a ciphertext one byte too long was accepted")
	}
}

func FuzzParseCiphertext(f *testing.F) {
	golden, _ := hex.DecodeString(goldenCiphertext)
	f.Add(golden)
	f.Add(append([]byte{1, 0x7f, 0xff, 0xff, 0xff}, make([]byte, nonceSize+tagSize)...))
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{})
	m := goldenAEAD(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCiphertext(b)
		if err != nil {
			return
		}
		if enc := c.encode(); !bytes.Equal(enc, b) {
			t.Fatalf("encode(parse(%x)) = %x", b, enc)
		}
		c2, err := parseCiphertext(c.encode())
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("parse(encode(c)) = %v, %v; want %v", c2, err, c)
		}
		// Anything but the golden bytes must fail to open.
		if _, err := c.open(m, goldenKeyName, []byte("a")); err == nil && !bytes.Equal(b, golden) {
			t.Fatalf("forged ciphertext %x opened", b)
		}
	})
}

func TestNames(t *testing.T) {
	const kr = "projects/my-proj.x:y/locations/us-east1/keyRings/r_1-A"
	for _, tc := range []struct {
		name string
		kind string // which parser accepts it: "loc", "ring", "key", "ver", or "" for none
	}{
		{"projects/p/locations/global", "loc"},
		{kr, "ring"},
		{kr + "/cryptoKeys/k", "key"},
		{kr + "/cryptoKeys/k/cryptoKeyVersions/1", "ver"},
		{kr + "/cryptoKeys/k/cryptoKeyVersions/2147483647", "ver"},
		{kr + "/cryptoKeys/" + strings.Repeat("k", 63), "key"},
		{kr + "/cryptoKeys/" + strings.Repeat("k", 64), ""},
		{kr + "/cryptoKeys/k/cryptoKeyVersions/2147483648", ""},
		{kr + "/cryptoKeys/k/cryptoKeyVersions/0", ""},
		{kr + "/cryptoKeys/k/cryptoKeyVersions/01", ""},
		{kr + "/cryptoKeys/k/cryptoKeyVersions/-1", ""},
		{kr + "/cryptoKeys/k/cryptoKeyVersions/+1", ""},
		{kr + "/cryptoKeys/k/cryptoKeyVersions/", ""},
		{kr + "/cryptoKeys/k/", ""},
		{kr + "/cryptoKeys/k.x", ""},
		{kr + "/cryptokeys/k", ""},
		{"projects/p/locations/l.x/keyRings/r", ""},
		{"projects/p/locations/l/keyRings/r/", ""},
		{"/projects/p/locations/l", ""},
		{"projects/p/locations/l/", ""},
		{"projects//locations/l", ""},
		{"projects/a b/locations/l", ""},
		{"projects/p/regions/l", ""},
		{"", ""},
	} {
		_, errL := parseLocationName(tc.name)
		_, errR := parseKeyRingName(tc.name)
		_, errK := parseCryptoKeyName(tc.name)
		_, errV := parseVersionName(tc.name)
		got := map[string]bool{"loc": errL == nil, "ring": errR == nil, "key": errK == nil, "ver": errV == nil}
		for kind, ok := range got {
			if ok != (kind == tc.kind) {
				t.Errorf("%q: %s parser ok=%v, want %v", tc.name, kind, ok, kind == tc.kind)
			}
		}
	}
}

// FuzzNames checks that whatever a name parser accepts prints back as the
// same string.
func FuzzNames(f *testing.F) {
	for _, s := range []string{
		"projects/p/locations/global",
		"projects/p/locations/global/keyRings/r",
		"projects/p/locations/global/keyRings/r/cryptoKeys/k",
		"projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/12",
		"projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/012",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseLocationName(s); err == nil && n.String() != s {
			t.Fatalf("location %q prints as %q", s, n)
		}
		if n, err := parseKeyRingName(s); err == nil && n.String() != s {
			t.Fatalf("key ring %q prints as %q", s, n)
		}
		if n, err := parseCryptoKeyName(s); err == nil && n.String() != s {
			t.Fatalf("crypto key %q prints as %q", s, n)
		}
		if n, err := parseVersionName(s); err == nil && n.String() != s {
			t.Fatalf("version %q prints as %q", s, n)
		}
	})
}

// TestKeyMaterialVectors: the Ed25519 public key of the seed 00 01 … 1f is
// the one RFC 8032 implementations agree on (03a107bf…), and a bad P-256
// scalar is refused.
func TestKeyMaterialVectors(t *testing.T) {
	ed, err := newKeyMaterial(kmspb.CryptoKeyVersion_EC_SIGN_ED25519, counting(32))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(ed.ed.Public().(ed25519.PublicKey)); got != "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8" {
		t.Errorf("Ed25519 public key %s", got)
	}
	if !strings.Contains(ed.pemKey, "MCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=") {
		t.Errorf("Ed25519 SPKI PEM %q", ed.pemKey)
	}
	for _, raw := range [][]byte{make([]byte, 32), bytes.Repeat([]byte{0xff}, 32), counting(31)} {
		if _, err := newKeyMaterial(kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, raw); !errors.Is(err, errBadKeyMaterial) {
			t.Errorf("P-256 scalar %x: err %v, want errBadKeyMaterial", raw, err)
		}
	}
	if _, err := newKeyMaterial(kmspb.CryptoKeyVersion_HMAC_SHA256, counting(32)); !errors.Is(err, errBadKeyMaterial) {
		t.Errorf("unsupported algorithm: %v", err)
	}
}

func TestPurposeOf(t *testing.T) {
	for alg, want := range map[kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm]kmspb.CryptoKey_CryptoKeyPurpose{
		kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION:              kmspb.CryptoKey_ENCRYPT_DECRYPT,
		kmspb.CryptoKeyVersion_EXTERNAL_SYMMETRIC_ENCRYPTION:            kmspb.CryptoKey_ENCRYPT_DECRYPT,
		kmspb.CryptoKeyVersion_EC_SIGN_ED25519:                          kmspb.CryptoKey_ASYMMETRIC_SIGN,
		kmspb.CryptoKeyVersion_EC_SIGN_SECP256K1_SHA256:                 kmspb.CryptoKey_ASYMMETRIC_SIGN,
		kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_2048_SHA256:               kmspb.CryptoKey_ASYMMETRIC_SIGN,
		kmspb.CryptoKeyVersion_PQ_SIGN_ML_DSA_65:                        kmspb.CryptoKey_ASYMMETRIC_SIGN,
		kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_2048_SHA256:             kmspb.CryptoKey_ASYMMETRIC_DECRYPT,
		kmspb.CryptoKeyVersion_HMAC_SHA256:                              kmspb.CryptoKey_MAC,
		kmspb.CryptoKeyVersion_AES_256_GCM:                              kmspb.CryptoKey_RAW_ENCRYPT_DECRYPT,
		kmspb.CryptoKeyVersion_AES_256_KWP:                              kmspb.CryptoKey_AES_WRAPPING,
		kmspb.CryptoKeyVersion_ML_KEM_768:                               kmspb.CryptoKey_KEY_ENCAPSULATION,
		kmspb.CryptoKeyVersion_KEM_XWING:                                kmspb.CryptoKey_KEY_ENCAPSULATION,
		kmspb.CryptoKeyVersion_CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED: kmspb.CryptoKey_CRYPTO_KEY_PURPOSE_UNSPECIFIED,
		kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm(9999):          kmspb.CryptoKey_CRYPTO_KEY_PURPOSE_UNSPECIFIED,
	} {
		if got := purposeOf(alg); got != want {
			t.Errorf("purposeOf(%v) = %v, want %v", alg, got, want)
		}
	}
	// Every known algorithm has a purpose.
	for v, name := range kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm_name {
		if v != 0 && purposeOf(kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm(v)) == kmspb.CryptoKey_CRYPTO_KEY_PURPOSE_UNSPECIFIED {
			t.Errorf("algorithm %s has no purpose", name)
		}
	}
}
