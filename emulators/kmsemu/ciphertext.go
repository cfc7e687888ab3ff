package kmsemu

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Ciphertext format of GOOGLE_SYMMETRIC_ENCRYPTION (the real service's is
// opaque too; ours names the key version so that Decrypt, which takes only
// the CryptoKey name, finds the right version after a rotation):
//
//	ciphertext = format version nonce sealed
//	format     = %x01                                   ; 1 byte
//	version    = uint32, big-endian, 1 … 2^31-1          ; the CryptoKeyVersion id
//	nonce      = 12 bytes                                ; random per Encrypt
//	sealed     = AES-256-GCM-Seal(key_version, nonce, plaintext, ad)
//	                                                     ; len(plaintext) + 16 bytes
//	ad         = "conifer-kmsemu/ciphertext/v1" %x00
//	             uint16-be(len(keyName)) keyName          ; the CryptoKey resource name
//	             format version                           ; the 5 header bytes above
//	             additional_authenticated_data            ; the caller's AAD, rest of ad
//
// The GCM additional data binds the ciphertext to its CryptoKey (a
// ciphertext moved to another key fails to decrypt, as in the real
// service), to the header, and to the caller's AAD; everything after the
// fixed-size prefix is the caller's AAD, so the concatenation is unambiguous.
//
// Example: version 2, nonce 000102…0b, plaintext "hi" gives 01 00000002
// 000102030405060708090a0b followed by 18 sealed bytes: 35 bytes in all.

const (
	ciphertextFormat = 0x01
	nonceSize        = 12
	tagSize          = 16
	headerSize       = 1 + 4
	// minCiphertext is the size of the ciphertext of an empty plaintext.
	minCiphertext = headerSize + nonceSize + tagSize
	// maxPlaintext is the largest plaintext the real service encrypts with
	// a SOFTWARE key (64 KiB).
	maxPlaintext = 64 << 10
	// maxCiphertext is the ciphertext of a maxPlaintext plaintext.
	maxCiphertext = minCiphertext + maxPlaintext

	adDomain = "conifer-kmsemu/ciphertext/v1\x00"
)

// errMalformedCiphertext is wrapped by every parseCiphertext error.
var errMalformedCiphertext = errors.New("malformed ciphertext")

// ciphertext is a parsed ciphertext.
type ciphertext struct {
	version int
	nonce   [nonceSize]byte
	sealed  []byte // at least tagSize bytes
}

// parseCiphertext parses b strictly: right format byte, version in range,
// sealed part between tagSize and maxPlaintext+tagSize bytes. It does not
// check authenticity; open does.
func parseCiphertext(b []byte) (ciphertext, error) {
	if len(b) < minCiphertext {
		return ciphertext{}, fmt.Errorf("%w: %d bytes, want at least %d", errMalformedCiphertext, len(b), minCiphertext)
	}
	if len(b) > maxCiphertext {
		return ciphertext{}, fmt.Errorf("%w: %d bytes, want at most %d", errMalformedCiphertext, len(b), maxCiphertext)
	}
	if b[0] != ciphertextFormat {
		return ciphertext{}, fmt.Errorf("%w: field format is %#x, want %#x", errMalformedCiphertext, b[0], ciphertextFormat)
	}
	v := binary.BigEndian.Uint32(b[1:5])
	if v == 0 || v > maxVersion {
		return ciphertext{}, fmt.Errorf("%w: field version is %d, want 1 to %d", errMalformedCiphertext, v, maxVersion)
	}
	c := ciphertext{version: int(v)}
	copy(c.nonce[:], b[headerSize:headerSize+nonceSize])
	c.sealed = append([]byte(nil), b[headerSize+nonceSize:]...)
	return c, nil
}

// header returns the format and version bytes.
func (c ciphertext) header() []byte {
	return binary.BigEndian.AppendUint32([]byte{ciphertextFormat}, uint32(c.version))
}

// encode returns the wire form of c.
func (c ciphertext) encode() []byte {
	b := make([]byte, 0, headerSize+nonceSize+len(c.sealed))
	b = append(b, c.header()...)
	b = append(b, c.nonce[:]...)
	return append(b, c.sealed...)
}

// additionalData builds the GCM additional data for c under keyName.
func (c ciphertext) additionalData(keyName string, aad []byte) []byte {
	if len(keyName) > 0xffff {
		panic("kmsemu: crypto key name longer than 65535 bytes")
	}
	ad := make([]byte, 0, len(adDomain)+2+len(keyName)+headerSize+len(aad))
	ad = append(ad, adDomain...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(keyName)))
	ad = append(ad, keyName...)
	ad = append(ad, c.header()...)
	return append(ad, aad...)
}

// seal encrypts plaintext for version of keyName under m, with nonce.
func seal(m *keyMaterial, keyName string, version int, nonce [nonceSize]byte, plaintext, aad []byte) ciphertext {
	c := ciphertext{version: version, nonce: nonce}
	c.sealed = m.aead.Seal(nil, c.nonce[:], plaintext, c.additionalData(keyName, aad))
	return c
}

// open authenticates and decrypts c under m.
func (c ciphertext) open(m *keyMaterial, keyName string, aad []byte) ([]byte, error) {
	return m.aead.Open(nil, c.nonce[:], c.sealed, c.additionalData(keyName, aad))
}
