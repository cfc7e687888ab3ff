package format

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Domain-separation tags. Each hash or signature message in Conifer starts
// with exactly one of them, so no byte string can be read as two different
// things. A tag never changes meaning; a new format gets a new tag ("/v2").
const (
	tagProfileCommitment = "conifer/profile-commitment/v1"
	tagKeyID             = "conifer/key-id/v1"
	tagEntry             = "conifer/entry/v1"
	tagEntrySignature    = "conifer/entry-signature/v1"
	tagRegistration      = "conifer/registration/v1"
	tagOIDCNonce         = "conifer/oidc-nonce/v1"
	tagLeafRecord        = "conifer/leaf-record/v1"
	tagEpochHead         = "conifer/epoch-head/v1"    // inside the head encoding
	tagBundle            = "conifer/bundle/v1"        // inside the bundle encoding
	tagBundleDigest      = "conifer/bundle-digest/v1" // hash of a whole bundle
	tagBundleChunk       = "conifer/bundle-chunk/v1"  // inside the chunk encoding
)

// hash returns the domain-separated SHA-256
//
//	H(tag, parts...) = SHA-256( uint8(len(tag)) || tag || parts[0] || parts[1] || ... )
//
// Every part but the last has a fixed length at each call site, so the
// concatenation is unambiguous without further length prefixes.
func hash(tag string, parts ...[]byte) [32]byte {
	if len(tag) == 0 || len(tag) > 255 {
		panic("format: bad hash tag")
	}
	n := 1 + len(tag)
	for _, p := range parts {
		n += len(p)
	}
	// Short inputs (tags, key IDs, entries) are hashed from a stack buffer
	// in one call; long ones are streamed.
	var buf [512]byte
	if n <= len(buf) {
		buf[0] = byte(len(tag))
		i := 1 + copy(buf[1:], tag)
		for _, p := range parts {
			i += copy(buf[i:], p)
		}
		return sha256.Sum256(buf[:n])
	}
	h := sha256.New()
	h.Write([]byte{byte(len(tag))})
	h.Write([]byte(tag))
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// tagged returns uint8(len(tag)) || tag || msg: the exact bytes that are
// signed for a signature message with that tag.
func tagged(tag string, msg []byte) []byte {
	b := make([]byte, 0, 1+len(tag)+len(msg))
	b = append(b, byte(len(tag)))
	b = append(b, tag...)
	return append(b, msg...)
}

// KeyIDSize is the length of a KeyID.
const KeyIDSize = 8

// KeyID names an Ed25519 public key inside policies and signatures: the
// first 8 bytes of H("conifer/key-id/v1", public key). Key IDs order keys in
// a policy (as big-endian byte strings) and let a signature say which key
// made it. Two distinct keys with the same ID cannot sit in one policy.
type KeyID [KeyIDSize]byte

// KeyIDOf returns the KeyID of an Ed25519 public key.
func KeyIDOf(pub ed25519.PublicKey) KeyID {
	h := hash(tagKeyID, pub)
	var id KeyID
	copy(id[:], h[:KeyIDSize])
	return id
}

// String returns the ID as 16 lowercase hex digits.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// less reports whether id sorts before other.
func (id KeyID) less(other KeyID) bool {
	for i := range id {
		if id[i] != other[i] {
			return id[i] < other[i]
		}
	}
	return false
}

// CommitProfile returns the hiding commitment to an encoded profile that an
// entry carries:
//
//	H("conifer/profile-commitment/v1", opening[16] || encodedProfile)
//
// The opening must be 16 bytes from a cryptographic random source, chosen by
// the caller and stored beside the profile; deleting both erases the user.
func CommitProfile(opening [OpeningSize]byte, encodedProfile []byte) [32]byte {
	return hash(tagProfileCommitment, opening[:], encodedProfile)
}

// EntryHash returns H("conifer/entry/v1", encodedEntry): the name of an entry
// that signatures, the next entry's Prev and leaf records refer to.
func EntryHash(encodedEntry []byte) [32]byte {
	return hash(tagEntry, encodedEntry)
}

// SigningMessage returns the message that policy keys sign to approve the
// entry with hash entryHash (59 bytes):
//
//	0x1a || "conifer/entry-signature/v1" || entryHash[32]
func SigningMessage(entryHash [32]byte) []byte {
	return tagged(tagEntrySignature, entryHash[:])
}

// RegistrationMessage returns the message a realm registrar signs to
// authorise the registration (version 1) entry with hash entryHash
// (56 bytes):
//
//	0x17 || "conifer/registration/v1" || entryHash[32]
func RegistrationMessage(entryHash [32]byte) []byte {
	return tagged(tagRegistration, entryHash[:])
}

// OIDCNonce returns the nonce an OpenID Connect ID token must carry to
// authorise the registration entry with hash entryHash: the unpadded
// base64url encoding (43 characters) of H("conifer/oidc-nonce/v1", entryHash).
func OIDCNonce(entryHash [32]byte) string {
	h := hash(tagOIDCNonce, entryHash[:])
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// LeafRecordHash returns H("conifer/leaf-record/v1", encodedLeafRecord): the
// value stored in the tree leaf of a user.
func LeafRecordHash(encodedLeafRecord []byte) [32]byte {
	return hash(tagLeafRecord, encodedLeafRecord)
}

// bundleDigest returns H("conifer/bundle-digest/v1", encodedBundle).
func bundleDigest(encodedBundle []byte) [32]byte {
	return hash(tagBundleDigest, encodedBundle)
}
