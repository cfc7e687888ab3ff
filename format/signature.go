package format

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// signatureSize is the length of an encoded Signature: key_id[8] || sig[64].
const signatureSize = KeyIDSize + ed25519.SignatureSize

// Signature is an Ed25519 signature with the ID of the key that made it.
//
//	struct {
//	    opaque key_id[8];    /* KeyID of the signing key */
//	    opaque sig[64];      /* Ed25519 signature (RFC 8032) */
//	} Signature;             /* 72 bytes */
type Signature struct {
	KeyID KeyID
	Sig   [ed25519.SignatureSize]byte
}

func appendSignature(b []byte, s *Signature) []byte {
	b = append(b, s.KeyID[:]...)
	return append(b, s.Sig[:]...)
}

func (r *reader) signature(s *Signature) bool {
	return r.copyTo(s.KeyID[:]) && r.copyTo(s.Sig[:])
}

// Sign signs message with key and names the key by its KeyID.
func Sign(key ed25519.PrivateKey, message []byte) Signature {
	s := Signature{KeyID: KeyIDOf(key.Public().(ed25519.PublicKey))}
	copy(s.Sig[:], ed25519.Sign(key, message))
	return s
}

// SignEntry returns key's approval of the entry with hash entryHash: a
// signature over SigningMessage(entryHash).
func SignEntry(key ed25519.PrivateKey, entryHash [32]byte) Signature {
	return Sign(key, SigningMessage(entryHash))
}

// SignRegistration returns a registrar's authorisation of the registration
// entry with hash entryHash: a signature over RegistrationMessage(entryHash).
func SignRegistration(key ed25519.PrivateKey, entryHash [32]byte) Signature {
	return Sign(key, RegistrationMessage(entryHash))
}

// SortSignatures sorts sigs by KeyID, the canonical order of a SignedEntry.
func SortSignatures(sigs []Signature) {
	slices.SortStableFunc(sigs, func(a, b Signature) int {
		return bytes.Compare(a.KeyID[:], b.KeyID[:])
	})
}

// keyState is what a key contributes to a quorum.
type keyState uint8

const (
	noSignature keyState = iota
	badSignature
	goodSignature
)

// verdict caches one Ed25519 verification: signature i under key pub.
type verdict struct {
	i   int
	pub [32]byte
	ok  bool
}

// sigChecker evaluates policies against one message and signature list,
// verifying each (signature, key) pair at most once, so checking the old and
// the new policy of an update costs one verification per distinct signer.
// The cache is keyed by the key's bytes, not its KeyID, so a key-ID
// collision between two policies can never let one key's signature count
// for another key.
type sigChecker struct {
	msg   []byte
	sigs  []Signature
	cache []verdict
}

// state returns the best outcome of the signatures that name key pub.
func (c *sigChecker) state(pub ed25519.PublicKey) keyState {
	if len(pub) != ed25519.PublicKeySize {
		return noSignature
	}
	id := KeyIDOf(pub)
	st := noSignature
	for i := range c.sigs {
		if c.sigs[i].KeyID != id {
			continue
		}
		if c.verify(i, pub) {
			return goodSignature
		}
		st = badSignature
	}
	return st
}

func (c *sigChecker) verify(i int, pub ed25519.PublicKey) bool {
	var k [32]byte
	copy(k[:], pub)
	for _, v := range c.cache {
		if v.i == i && v.pub == k {
			return v.ok
		}
	}
	ok := ed25519.Verify(pub, c.msg, c.sigs[i].Sig[:])
	c.cache = append(c.cache, verdict{i, k, ok})
	return ok
}

// satisfied evaluates p, stopping at each level as soon as its threshold is
// reached (surplus signatures are not verified).
func (c *sigChecker) satisfied(p *Policy) bool {
	if p == nil || p.Threshold == 0 {
		return false
	}
	need, have := int(p.Threshold), 0
	for _, k := range p.Keys {
		if c.state(k) == goodSignature {
			if have++; have >= need {
				return true
			}
		}
	}
	for _, s := range p.Subpolicies {
		if c.satisfied(s) {
			if have++; have >= need {
				return true
			}
		}
	}
	return false
}

// require returns nil if p is satisfied, else an error wrapping
// ErrQuorumNotMet naming the policy (e.g. "new policy") and explaining why.
func (c *sigChecker) require(p *Policy, name string) error {
	if c.satisfied(p) {
		return nil
	}
	var sb strings.Builder
	c.explain(&sb, p)
	return fmt.Errorf("format: %s: %w: %s", name, ErrQuorumNotMet, sb.String())
}

// explain writes "need T of M, have N [member; member; ...]" for p. It is
// only called on failure, after satisfied has evaluated p, so every
// verification it needs is cached except those skipped inside subpolicies
// that were satisfied.
func (c *sigChecker) explain(sb *strings.Builder, p *Policy) {
	if p == nil {
		sb.WriteString("missing policy")
		return
	}
	members := len(p.Keys) + len(p.Subpolicies)
	have := 0
	var parts []string
	for _, k := range p.Keys {
		var what string
		switch c.state(k) {
		case goodSignature:
			have++
			what = "valid signature"
		case badSignature:
			what = "signature invalid"
		default:
			what = "no signature"
		}
		parts = append(parts, "key "+KeyIDOf(k).String()+": "+what)
	}
	for i, s := range p.Subpolicies {
		name := "subpolicies[" + strconv.Itoa(i) + "]: "
		if c.satisfied(s) {
			have++
			parts = append(parts, name+"satisfied")
			continue
		}
		var sub strings.Builder
		c.explain(&sub, s)
		parts = append(parts, name+sub.String())
	}
	fmt.Fprintf(sb, "need %d of %d, have %d [%s]", p.Threshold, members, have, strings.Join(parts, "; "))
}
