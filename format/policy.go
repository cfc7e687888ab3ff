package format

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"slices"
	"strconv"
)

// Policy limits.
const (
	// MaxPolicyKeys is the largest number of keys in a whole policy tree.
	MaxPolicyKeys = 32
	// MaxPolicyDepth is the deepest nesting of policies; the root is at
	// depth 1.
	MaxPolicyDepth = 4
	// MaxPolicySize is the longest possible encoded policy. It is derived,
	// not chosen: every subpolicy holds at least one key below it, so a
	// policy has at most 1 + 3*32 nodes of 4 bytes each (threshold, two
	// counts) and 32 keys of 32 bytes: 4*97 + 32*32 = 1412.
	MaxPolicySize = 4*(1+(MaxPolicyDepth-1)*MaxPolicyKeys) + MaxPolicyKeys*ed25519.PublicKeySize
)

// Policy is an update policy: a threshold quorum over Ed25519 keys, with
// nested policies counting as members (as in coname's QuorumExpr). A policy
// level is satisfied when at least Threshold of its members are: a key is
// satisfied by a valid signature, a subpolicy by its own quorum. For example
// 2-of-{A, 1-of-{B, C}} accepts {A, B}, {A, C} and {A, B, C}.
//
// Canonical rules (Validate): 1 <= Threshold <= len(Keys)+len(Subpolicies)
// at every level; Keys are valid Ed25519 public keys sorted by strictly
// increasing KeyID; Subpolicies sorted by strictly increasing smallest KeyID
// in each; no key (or key ID) appears twice in the whole tree; at most
// MaxPolicyKeys keys in all; nesting at most MaxPolicyDepth levels.
type Policy struct {
	// Threshold is how many members must be satisfied.
	Threshold uint16
	// Keys are 32-byte Ed25519 public keys.
	Keys []ed25519.PublicKey
	// Subpolicies are nested policies, each a member of this level.
	Subpolicies []*Policy
}

// Marshal validates p and returns its canonical encoding:
//
//	struct {
//	    uint16 threshold;                    /* 1..key_count+subpolicy_count */
//	    uint8  key_count;                    /* 0..32 */
//	    opaque keys[key_count][32];          /* Ed25519, KeyID strictly increasing */
//	    uint8  subpolicy_count;              /* 0..32; none below depth 4 */
//	    Policy subpolicies[subpolicy_count]; /* smallest KeyID strictly increasing */
//	} Policy;                                /* total <= 1412 bytes */
func (p *Policy) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, within(err, "policy")
	}
	return appendPolicy(make([]byte, 0, p.size()), p), nil
}

func appendPolicy(b []byte, p *Policy) []byte {
	b = binary.BigEndian.AppendUint16(b, p.Threshold)
	b = append(b, byte(len(p.Keys)))
	for _, k := range p.Keys {
		b = append(b, k...)
	}
	b = append(b, byte(len(p.Subpolicies)))
	for _, s := range p.Subpolicies {
		b = appendPolicy(b, s)
	}
	return b
}

func (p *Policy) size() int {
	n := 4 + len(p.Keys)*ed25519.PublicKeySize
	for _, s := range p.Subpolicies {
		n += s.size()
	}
	return n
}

// ParsePolicy parses a canonical encoded policy. The result does not alias b.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, newError(ErrTooLarge, "policy", "%d bytes, more than %d", len(b), MaxPolicySize)
	}
	r := reader{clone(b)}
	p, err := parsePolicy(&r, 1)
	if err == nil && !r.empty() {
		err = trailing("", len(r.b))
	}
	if err == nil {
		err = p.Validate()
	}
	if err != nil {
		return nil, within(err, "policy")
	}
	return p, nil
}

// parsePolicy reads the structure of a policy at depth (root = 1), with the
// caps that bound the work; the caller runs Validate on the root.
func parsePolicy(r *reader, depth int) (*Policy, error) {
	p := &Policy{}
	var nKeys, nSubs uint8
	if !r.u16(&p.Threshold) {
		return nil, truncated("threshold")
	}
	if !r.u8(&nKeys) {
		return nil, truncated("key_count")
	}
	if nKeys > MaxPolicyKeys {
		return nil, newError(ErrTooLarge, "key_count", "%d keys, more than %d", nKeys, MaxPolicyKeys)
	}
	if nKeys > 0 {
		p.Keys = make([]ed25519.PublicKey, nKeys)
	}
	for i := range p.Keys {
		var k []byte
		if !r.bytes(&k, ed25519.PublicKeySize) {
			return nil, truncated("keys[" + strconv.Itoa(i) + "]")
		}
		p.Keys[i] = k
	}
	if !r.u8(&nSubs) {
		return nil, truncated("subpolicy_count")
	}
	if nSubs > MaxPolicyKeys {
		return nil, newError(ErrTooLarge, "subpolicy_count", "%d subpolicies, more than %d", nSubs, MaxPolicyKeys)
	}
	if nSubs > 0 && depth >= MaxPolicyDepth {
		return nil, newError(ErrInvalid, "subpolicies", "nesting deeper than %d levels", MaxPolicyDepth)
	}
	if nSubs > 0 {
		p.Subpolicies = make([]*Policy, nSubs)
	}
	for i := range p.Subpolicies {
		s, err := parsePolicy(r, depth+1)
		if err != nil {
			return nil, within(err, "subpolicies["+strconv.Itoa(i)+"]")
		}
		p.Subpolicies[i] = s
	}
	return p, nil
}

// Validate checks every canonical rule of the policy (see Policy). Field
// names in the error are relative to the policy, e.g.
// "subpolicies[1].keys[0]".
func (p *Policy) Validate() error {
	c := policyChecker{root: p}
	_, err := c.check(p, 1)
	return err
}

type keySeen struct {
	id   KeyID
	node *Policy
	i    int
}

type policyChecker struct {
	root *Policy
	seen []keySeen
}

// check validates node at depth and returns the smallest KeyID below it.
func (c *policyChecker) check(p *Policy, depth int) (KeyID, error) {
	var minID KeyID
	if p == nil {
		return minID, newError(ErrInvalid, "", "missing (nil) policy")
	}
	if len(p.Keys) > MaxPolicyKeys {
		return minID, newError(ErrTooLarge, "key_count", "%d keys, more than %d", len(p.Keys), MaxPolicyKeys)
	}
	var prev KeyID
	for i, k := range p.Keys {
		if err := checkPublicKey(k); err != nil {
			return minID, within(err, "keys["+strconv.Itoa(i)+"]")
		}
		id := KeyIDOf(k)
		if i == 0 {
			minID = id
		} else if !prev.less(id) {
			field := "keys[" + strconv.Itoa(i) + "]"
			if prev == id {
				return minID, c.duplicate(field, id, p.Keys[i-1], k, p, i-1)
			}
			return minID, newError(ErrNotCanonical, field, "keys not in strictly increasing key-id order (%s after %s)", id, prev)
		}
		prev = id
		for _, s := range c.seen {
			if s.id == id {
				return minID, c.duplicate("keys["+strconv.Itoa(i)+"]", id, s.node.Keys[s.i], k, s.node, s.i)
			}
		}
		if len(c.seen) == MaxPolicyKeys {
			return minID, newError(ErrTooLarge, "keys["+strconv.Itoa(i)+"]", "more than %d keys in the whole policy", MaxPolicyKeys)
		}
		c.seen = append(c.seen, keySeen{id, p, i})
	}
	if len(p.Subpolicies) > 0 && depth >= MaxPolicyDepth {
		return minID, newError(ErrInvalid, "subpolicies", "nesting deeper than %d levels", MaxPolicyDepth)
	}
	if len(p.Subpolicies) > MaxPolicyKeys {
		return minID, newError(ErrTooLarge, "subpolicy_count", "%d subpolicies, more than %d", len(p.Subpolicies), MaxPolicyKeys)
	}
	var prevSub KeyID
	for i, s := range p.Subpolicies {
		field := "subpolicies[" + strconv.Itoa(i) + "]"
		id, err := c.check(s, depth+1)
		if err != nil {
			return minID, within(err, field)
		}
		if i > 0 && !prevSub.less(id) {
			return minID, newError(ErrNotCanonical, field, "subpolicies not in strictly increasing order of their smallest key id (%s after %s)", id, prevSub)
		}
		prevSub = id
		if i == 0 && (len(p.Keys) == 0 || id.less(minID)) {
			minID = id
		}
	}
	members := len(p.Keys) + len(p.Subpolicies)
	switch {
	case members == 0:
		return minID, newError(ErrInvalid, "", "policy has no members (no keys, no subpolicies)")
	case p.Threshold == 0:
		return minID, newError(ErrInvalid, "threshold", "threshold is 0; a policy must require at least one member")
	case int(p.Threshold) > members:
		return minID, newError(ErrInvalid, "threshold", "threshold %d exceeds the %d members (keys and subpolicies) at this level, so it could never be met", p.Threshold, members)
	}
	return minID, nil
}

func (c *policyChecker) duplicate(field string, id KeyID, first, second ed25519.PublicKey, node *Policy, i int) error {
	where := policyPath(c.root, node) + "keys[" + strconv.Itoa(i) + "]"
	if bytes.Equal(first, second) {
		return newError(ErrInvalid, field, "key %s appears twice in the policy (also at %s)", id, where)
	}
	return newError(ErrInvalid, field, "key id %s collides with the different key at %s", id, where)
}

// policyPath returns the field path of node within root ("" for the root,
// "subpolicies[1].subpolicies[0]." for a nested one).
func policyPath(root, node *Policy) string {
	if root == node {
		return ""
	}
	for i, s := range root.Subpolicies {
		if s == nil {
			continue
		}
		if p := policyPath(s, node); p != "" || s == node {
			return "subpolicies[" + strconv.Itoa(i) + "]." + p
		}
	}
	return ""
}

// smallOrderKeys are the encodings, with canonical y, of the eight points of
// order dividing 8, plus the two "negative zero" x encodings of the points
// with x = 0. A signature under such a key can be forged without any secret.
var smallOrderKeys = [...][32]byte{
	{0x01},           // identity
	{0x01, 31: 0x80}, // identity, x sign bit set
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // order 2
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // order 2, x sign bit set
	{},         // order 4
	{31: 0x80}, // order 4
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a}, // order 8
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0xfa}, // order 8
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05}, // order 8
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x85}, // order 8
}

// checkPublicKey rejects what a policy must never hold: a key that is not
// 32 bytes, a non-canonical encoding (y >= p = 2^255-19, which would let one
// point appear under two key IDs) and the small-order points (under which
// anyone can forge signatures). It does not decompress the point, which
// would cost about 8% of a signature verification: an encoding that is not
// on the curve is accepted here and simply never verifies a signature.
func checkPublicKey(k ed25519.PublicKey) error {
	if len(k) != ed25519.PublicKeySize {
		return newError(ErrInvalid, "", "public key is %d bytes, want %d", len(k), ed25519.PublicKeySize)
	}
	if !canonicalY(k) {
		return newError(ErrNotCanonical, "", "public key is not canonically encoded (y >= 2^255-19)")
	}
	for i := range smallOrderKeys {
		if bytes.Equal(k, smallOrderKeys[i][:]) {
			return newError(ErrInvalid, "", "public key is a point of small order")
		}
	}
	return nil
}

// canonicalY reports whether the 255-bit little-endian y coordinate of an
// Ed25519 point encoding is below p = 2^255 - 19.
func canonicalY(k []byte) bool {
	if k[31]&0x7f != 0x7f {
		return true
	}
	for i := 30; i >= 1; i-- {
		if k[i] != 0xff {
			return true
		}
	}
	return k[0] < 0xed
}

// Normalize sorts p in place into canonical order: keys by KeyID, and (after
// normalizing them) subpolicies by their smallest KeyID. It fixes nothing
// else; call Validate afterwards.
func (p *Policy) Normalize() {
	slices.SortStableFunc(p.Keys, func(a, b ed25519.PublicKey) int {
		ia, ib := KeyIDOf(a), KeyIDOf(b)
		return bytes.Compare(ia[:], ib[:])
	})
	for _, s := range p.Subpolicies {
		if s != nil {
			s.Normalize()
		}
	}
	slices.SortStableFunc(p.Subpolicies, func(a, b *Policy) int {
		ia, ib := minKeyID(a), minKeyID(b)
		return bytes.Compare(ia[:], ib[:])
	})
}

// minKeyID returns the smallest KeyID in p (all ones if p has no keys).
func minKeyID(p *Policy) KeyID {
	lowest := KeyID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if p == nil {
		return lowest
	}
	for _, k := range p.Keys {
		if id := KeyIDOf(k); id.less(lowest) {
			lowest = id
		}
	}
	for _, s := range p.Subpolicies {
		if id := minKeyID(s); id.less(lowest) {
			lowest = id
		}
	}
	return lowest
}

// KeyIDs returns the IDs of every key in the policy tree, depth first (a
// level's keys before its subpolicies).
func (p *Policy) KeyIDs() []KeyID {
	var ids []KeyID
	var walk func(*Policy)
	walk = func(p *Policy) {
		if p == nil {
			return
		}
		for _, k := range p.Keys {
			ids = append(ids, KeyIDOf(k))
		}
		for _, s := range p.Subpolicies {
			walk(s)
		}
	}
	walk(p)
	return ids
}

// Key returns the key with the given ID anywhere in the policy tree.
func (p *Policy) Key(id KeyID) (ed25519.PublicKey, bool) {
	if p == nil {
		return nil, false
	}
	for _, k := range p.Keys {
		if KeyIDOf(k) == id {
			return k, true
		}
	}
	for _, s := range p.Subpolicies {
		if k, ok := s.Key(id); ok {
			return k, true
		}
	}
	return nil, false
}

// Satisfied reports whether the quorum is met when exactly the keys for
// which valid returns true have signed. It is pure quorum logic: no
// signatures are checked. It fails closed on a malformed level (Threshold 0
// or a nil subpolicy counts as unsatisfied).
func (p *Policy) Satisfied(valid func(KeyID) bool) bool {
	if p == nil || p.Threshold == 0 {
		return false
	}
	need := int(p.Threshold)
	have := 0
	for _, k := range p.Keys {
		if valid(KeyIDOf(k)) {
			if have++; have >= need {
				return true
			}
		}
	}
	for _, s := range p.Subpolicies {
		if s.Satisfied(valid) {
			if have++; have >= need {
				return true
			}
		}
	}
	return false
}

// Verify checks signatures over message against the policy and returns nil
// if its quorum is met. Otherwise it returns an error wrapping
// ErrQuorumNotMet that says, level by level, what was needed and what each
// key contributed. A key signing twice counts once; signatures by key IDs
// not in the policy are ignored; an invalid signature does not count.
func (p *Policy) Verify(message []byte, sigs []Signature) error {
	c := sigChecker{msg: message, sigs: sigs}
	return c.require(p, "policy")
}
