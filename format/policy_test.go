package format

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"filippo.io/edwards25519"
)

// TestSmallOrderKeys checks the hard-coded list against the curve: every
// listed encoding decodes to a point of order dividing 8, and every encoding
// of such a point with canonical y is listed.
func TestSmallOrderKeys(t *testing.T) {
	identity := edwards25519.NewIdentityPoint()
	listed := map[[32]byte]bool{}
	for _, k := range smallOrderKeys {
		listed[k] = true
		p, err := new(edwards25519.Point).SetBytes(k[:])
		if err != nil {
			t.Fatalf("%x does not decode: %v", k, err)
		}
		if new(edwards25519.Point).MultByCofactor(p).Equal(identity) != 1 {
			t.Errorf("%x is not of small order", k)
		}
		if !canonicalY(k[:]) {
			t.Errorf("%x has non-canonical y, which the canonical check already rejects", k)
		}
	}
	if len(listed) != len(smallOrderKeys) {
		t.Errorf("duplicates in smallOrderKeys")
	}
	// Walk the torsion subgroup from a generator of order 8.
	gen, err := new(edwards25519.Point).SetBytes(smallOrderKeys[6][:])
	if err != nil {
		t.Fatal(err)
	}
	p := edwards25519.NewIdentityPoint()
	for i := 0; i < 8; i++ {
		enc := [32]byte(p.Bytes())
		for _, sign := range []byte{0, 0x80} {
			e := enc
			e[31] = e[31]&0x7f | sign
			q, err := new(edwards25519.Point).SetBytes(e[:])
			if err != nil || q.Equal(p) != 1 {
				continue // not an encoding of this point
			}
			if !listed[e] {
				t.Errorf("encoding %x of a small-order point is not listed", e)
			}
			if checkPublicKey(e[:]) == nil {
				t.Errorf("checkPublicKey accepts small-order %x", e)
			}
		}
		p.Add(p, gen)
	}
	// Ordinary keys pass.
	for i := 0; i < 20; i++ {
		if err := checkPublicKey(testPub(i)); err != nil {
			t.Errorf("key %d: %v", i, err)
		}
	}
}

func TestCanonicalY(t *testing.T) {
	var k [32]byte
	for i := range k {
		k[i] = 0xff
	}
	k[31] = 0x7f
	for b0 := 0; b0 < 256; b0++ {
		k[0] = byte(b0)
		if got, want := canonicalY(k[:]), b0 < 0xed; got != want {
			t.Errorf("y = 2^255-256+%d: canonical %v, want %v", b0, got, want)
		}
		k[31] = 0xff // the sign bit does not matter
		if got, want := canonicalY(k[:]), b0 < 0xed; got != want {
			t.Errorf("y = 2^255-256+%d with sign: canonical %v, want %v", b0, got, want)
		}
		k[31] = 0x7f
	}
	k[0], k[17] = 0xff, 0xfe
	if !canonicalY(k[:]) {
		t.Error("y with a 0xfe byte in the middle is below p")
	}
	pk := bytes.Clone(k[:])
	pk[17], pk[0] = 0xff, 0xee
	wantField(t, checkPublicKey(pk), ErrNotCanonical, "", "not canonically encoded")
}

func TestPolicyValidate(t *testing.T) {
	big := func(n int) *Policy {
		p := &Policy{Threshold: 1}
		for i := 0; i < n; i++ {
			p.Keys = append(p.Keys, testPub(100+i))
		}
		p.Normalize()
		return p
	}
	chain := func(depth int) *Policy {
		p := subPolicy(1, 0)
		for d := 1; d < depth; d++ {
			p = &Policy{Threshold: 1, Subpolicies: []*Policy{p}}
		}
		return p
	}
	twoSubs := &Policy{Threshold: 1, Subpolicies: []*Policy{subPolicy(1, 0), subPolicy(1, 1)}}
	twoSubs.Normalize()
	swappedSubs := &Policy{Threshold: 1, Subpolicies: []*Policy{twoSubs.Subpolicies[1], twoSubs.Subpolicies[0]}}
	spread := &Policy{Threshold: 1}
	for i := 0; i < 3; i++ {
		sub := big(11 - i/2) // 11 + 11 + 10 = 32 keys
		for j := range sub.Keys {
			sub.Keys[j] = testPub(200 + 11*i + j)
		}
		sub.Normalize()
		spread.Subpolicies = append(spread.Subpolicies, sub)
	}
	spread.Normalize()
	tests := []struct {
		name          string
		p             *Policy
		kind          error
		field, reason string
	}{
		{"threshold 0", &Policy{Threshold: 0, Keys: []ed25519.PublicKey{testPub(0)}}, ErrInvalid, "threshold", "threshold is 0"},
		{"threshold > members", &Policy{Threshold: 3, Keys: []ed25519.PublicKey{testPub(0)}, Subpolicies: []*Policy{subPolicy(1, 1)}}, ErrInvalid, "threshold", "threshold 3 exceeds the 2 members"},
		{"no members", &Policy{Threshold: 1}, ErrInvalid, "", "no members"},
		{"empty subpolicy", &Policy{Threshold: 1, Keys: []ed25519.PublicKey{testPub(0)}, Subpolicies: []*Policy{{Threshold: 1}}}, ErrInvalid, "subpolicies[0]", "no members"},
		{"nil subpolicy", &Policy{Threshold: 1, Subpolicies: []*Policy{nil}}, ErrInvalid, "subpolicies[0]", "nil"},
		{"keys out of order", reversedKeys(mustPolicy(t, 1, 0, 1)), ErrNotCanonical, "keys[1]", "strictly increasing key-id order"},
		{"same key twice at one level", &Policy{Threshold: 1, Keys: []ed25519.PublicKey{testPub(0), testPub(0)}}, ErrInvalid, "keys[1]", "appears twice in the policy (also at keys[0])"},
		{"same key in a subpolicy", &Policy{Threshold: 1, Keys: []ed25519.PublicKey{testPub(3)}, Subpolicies: []*Policy{{Threshold: 1, Subpolicies: []*Policy{subPolicy(1, 3)}}}}, ErrInvalid, "subpolicies[0].subpolicies[0].keys[0]", "also at keys[0]"},
		{"same key in two subpolicies", &Policy{Threshold: 1, Subpolicies: []*Policy{subPolicy(1, 1, 2), subPolicy(1, 2, 5)}}, ErrInvalid, "", "appears twice in the policy (also at subpolicies[0].keys["},
		{"subpolicies out of order", swappedSubs, ErrNotCanonical, "subpolicies[1]", "smallest key id"},
		{"33 keys", big(33), ErrTooLarge, "key_count", "33 keys"},
		{"33 keys spread over levels", func() *Policy {
			p := clonePolicy(spread)
			p.Keys = []ed25519.PublicKey{testPub(0)}
			p.Normalize()
			return p
		}(), ErrTooLarge, "", "more than 32 keys in the whole policy"},
		{"depth 5", chain(5), ErrInvalid, "subpolicies[0].subpolicies[0].subpolicies[0].subpolicies", "deeper than 4"},
		{"short key", &Policy{Threshold: 1, Keys: []ed25519.PublicKey{testPub(0)[:31]}}, ErrInvalid, "keys[0]", "31 bytes"},
		{"small-order key", &Policy{Threshold: 1, Keys: []ed25519.PublicKey{smallOrderKeys[3][:]}}, ErrInvalid, "keys[0]", "small order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.field == "" && err != nil {
				// The field depends on key order; check the message.
				if !strings.Contains(err.Error(), tt.reason) || !errors.Is(err, tt.kind) {
					t.Fatalf("error %v, want %q", err, tt.reason)
				}
			} else {
				wantField(t, err, tt.kind, tt.field, tt.reason)
			}
			if tt.name == "nil subpolicy" || tt.name == "short key" {
				return // no encoding can express these
			}
			// The same policy encoded without validation fails to parse
			// with the same error, under "policy".
			_, perr := ParsePolicy(modelPolicy(tt.p).bytes())
			if want := within(err, "policy").Error(); perr == nil || perr.Error() != want {
				t.Fatalf("ParsePolicy: %v, want %s", perr, want)
			}
		})
	}
	// The limits themselves are fine.
	for _, p := range []*Policy{big(32), chain(4), spread} {
		if err := p.Validate(); err != nil {
			t.Errorf("valid policy rejected: %v", err)
		}
		b := mustMarshal(t, p)
		q, err := ParsePolicy(b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.KeyIDs(), p.KeyIDs()) {
			t.Error("round trip changed the keys")
		}
	}
}

// TestMaxPolicySize builds the largest policy the rules allow: 32 chains of
// three nested 1-of-1 subpolicies, one key at the bottom of each.
func TestMaxPolicySize(t *testing.T) {
	root := &Policy{Threshold: 32}
	for i := 0; i < MaxPolicyKeys; i++ {
		leaf := subPolicy(1, 300+i)
		mid := &Policy{Threshold: 1, Subpolicies: []*Policy{leaf}}
		root.Subpolicies = append(root.Subpolicies, &Policy{Threshold: 1, Subpolicies: []*Policy{mid}})
	}
	root.Normalize()
	b := mustMarshal(t, root)
	if len(b) != MaxPolicySize {
		t.Fatalf("worst-case policy is %d bytes, MaxPolicySize is %d", len(b), MaxPolicySize)
	}
	if _, err := ParsePolicy(b); err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePolicy(append(b, 0)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over the cap: %v", err)
	}
	// The largest entry with it hits MaxEntrySize.
	e := &Entry{Realm: strings.Repeat("r", MaxRealmLen), Version: 2, Prev: fixedBytes("p"), Policy: *root, Commitment: fixedBytes("c")}
	eb := mustMarshal(t, e)
	if len(eb) != MaxEntrySize {
		t.Fatalf("largest entry is %d bytes, MaxEntrySize is %d", len(eb), MaxEntrySize)
	}
	// And a signed entry with the most signatures hits MaxSignedEntrySize,
	// a log record with an OIDC marker MaxLogRecordSize.
	s := &SignedEntry{Entry: eb}
	for i := 0; i < MaxSignatures; i++ {
		s.Signatures = append(s.Signatures, SignEntry(testKey(400+i), EntryHash(eb)))
	}
	SortSignatures(s.Signatures)
	sb := mustMarshal(t, s)
	if len(sb) != MaxSignedEntrySize {
		t.Fatalf("largest signed entry is %d bytes, MaxSignedEntrySize is %d", len(sb), MaxSignedEntrySize)
	}
	e.Version, e.Prev = 1, [32]byte{}
	eb = mustMarshal(t, e)
	s.Entry = eb
	rec := &LogRecord{SignedEntry: *s, Registration: &Registration{Kind: RegistrationOIDC, Issuer: "https://" + strings.Repeat("i", MaxIssuerLen-8)}}
	rb := mustMarshal(t, rec)
	if len(rb) != MaxLogRecordSize {
		t.Fatalf("largest log record is %d bytes, MaxLogRecordSize is %d", len(rb), MaxLogRecordSize)
	}
	if _, _, err := ParseLogRecord(rb); err != nil {
		t.Fatal(err)
	}
	s.Signatures = append(s.Signatures, SignEntry(testKey(999), EntryHash(eb)))
	SortSignatures(s.Signatures)
	if _, err := s.Marshal(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("65 signatures: %v", err)
	}
}

// quorumFixture is 2-of-{A, 1-of-{B, C}} with A, B, C = keys 1, 2, 3.
func TestNestedQuorumEverySubset(t *testing.T) {
	p := mustPolicy(t, 2, 1, subPolicy(1, 2, 3))
	msg := SigningMessage(fixedBytes("some entry"))
	names := []string{"A", "B", "C"}
	// want[mask]: bit 0 = A, bit 1 = B, bit 2 = C.
	want := map[int]bool{0: false, 1: false, 2: false, 4: false, 6: false, 3: true, 5: true, 7: true}
	for mask := 0; mask < 8; mask++ {
		var sigs []Signature
		var who []string
		for i := 0; i < 3; i++ {
			if mask&(1<<i) != 0 {
				sigs = append(sigs, Sign(testKey(1+i), msg))
				who = append(who, names[i])
			}
		}
		err := p.Verify(msg, sigs)
		if (err == nil) != want[mask] {
			t.Errorf("signers %v: err %v, want satisfied %v", who, err, want[mask])
		}
		if err != nil && !errors.Is(err, ErrQuorumNotMet) {
			t.Errorf("signers %v: error %v does not wrap ErrQuorumNotMet", who, err)
		}
		sat := p.Satisfied(func(id KeyID) bool {
			for _, s := range sigs {
				if s.KeyID == id {
					return true
				}
			}
			return false
		})
		if sat != want[mask] {
			t.Errorf("signers %v: Satisfied %v, want %v", who, sat, want[mask])
		}
		// The same signers, with the signatures over a different entry,
		// never satisfy the policy.
		other := SigningMessage(fixedBytes("another entry"))
		if mask != 0 {
			if err := p.Verify(other, sigs); err == nil {
				t.Errorf("signers %v: signatures over another entry accepted", who)
			}
		}
	}
}

func TestQuorumEdgeCases(t *testing.T) {
	msg := SigningMessage(fixedBytes("entry"))
	twoOfThree := mustPolicy(t, 2, 1, 2, 3)
	sig := func(k int) Signature { return Sign(testKey(k), msg) }
	bad := func(k int) Signature {
		s := sig(k)
		s.Sig[10] ^= 1
		return s
	}
	tests := []struct {
		name string
		sigs []Signature
		ok   bool
	}{
		{"exactly threshold", []Signature{sig(1), sig(2)}, true},
		{"more than threshold", []Signature{sig(1), sig(2), sig(3)}, true},
		{"one key twice", []Signature{sig(1), sig(1)}, false},
		{"one key twice plus another", []Signature{sig(1), sig(1), sig(3)}, true},
		{"unknown keys ignored", []Signature{sig(7), sig(8), sig(1)}, false},
		{"unknown keys do not hurt", []Signature{sig(7), sig(1), sig(8), sig(2)}, true},
		{"invalid signature does not count", []Signature{sig(1), bad(2)}, false},
		{"invalid then valid by one key", []Signature{bad(2), sig(2), sig(1)}, true},
		{"valid then invalid by one key", []Signature{sig(2), bad(2), sig(1)}, true},
		{"no signatures", nil, false},
		{"key id of one key, signature of another", []Signature{sig(1), {KeyID: sig(2).KeyID, Sig: sig(3).Sig}}, false},
	}
	for _, tt := range tests {
		err := twoOfThree.Verify(msg, tt.sigs)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	// The error explains itself.
	err := twoOfThree.Verify(msg, []Signature{sig(1), bad(2)})
	for _, want := range []string{
		"format: policy: quorum not met: need 2 of 3, have 1",
		"key " + KeyIDOf(testPub(1)).String() + ": valid signature",
		"key " + KeyIDOf(testPub(2)).String() + ": signature invalid",
		"key " + KeyIDOf(testPub(3)).String() + ": no signature",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	nested := mustPolicy(t, 2, 1, subPolicy(1, 2, 3))
	err = nested.Verify(msg, []Signature{sig(1)})
	if err == nil || !strings.Contains(err.Error(), "subpolicies[0]: need 1 of 2, have 0 [") {
		t.Errorf("nested error %v does not explain the subpolicy", err)
	}
	// A malformed policy fails closed.
	if (&Policy{Threshold: 0}).Satisfied(func(KeyID) bool { return true }) {
		t.Error("threshold 0 satisfied")
	}
	if (&Policy{Threshold: 0, Keys: []ed25519.PublicKey{testPub(1)}}).Verify(msg, []Signature{sig(1)}) == nil {
		t.Error("threshold 0 verified")
	}
	if (&Policy{Threshold: 1, Keys: []ed25519.PublicKey{testPub(1)[:5]}}).Verify(msg, []Signature{sig(1)}) == nil {
		t.Error("short key verified")
	}
}

// TestSignatureBitFlips: with exactly the signatures a policy needs, any
// flipped bit in any signature (or its key id) breaks the quorum.
func TestSignatureBitFlips(t *testing.T) {
	msg := SigningMessage(fixedBytes("entry"))
	for _, p := range []*Policy{mustPolicy(t, 1, 0), mustPolicy(t, 3, 4, 5, 6), mustPolicy(t, 2, 1, subPolicy(1, 2, 3))} {
		var sigs []Signature
		for _, id := range p.KeyIDs() {
			if id == KeyIDOf(testPub(3)) {
				continue // one of B, C suffices in the nested policy
			}
			for k := 0; k < 10; k++ {
				if KeyIDOf(testPub(k)) == id {
					sigs = append(sigs, Sign(testKey(k), msg))
				}
			}
		}
		if err := p.Verify(msg, sigs); err != nil {
			t.Fatal(err)
		}
		for i := range sigs {
			for bit := 0; bit < 8*signatureSize; bit++ {
				flipped := slices.Clone(sigs)
				enc := appendSignature(nil, &flipped[i])
				enc[bit/8] ^= 1 << (bit % 8)
				r := reader{enc}
				r.signature(&flipped[i])
				if p.Verify(msg, flipped) == nil {
					t.Fatalf("signature %d with bit %d flipped still satisfies the policy", i, bit)
				}
			}
		}
	}
}

// TestSigCheckerCacheByKey: a verification result is cached per key bytes,
// never per key id, so a signature cannot count for a different key that
// shares its id.
func TestSigCheckerCacheByKey(t *testing.T) {
	msg := []byte("m")
	s := Sign(testKey(1), msg)
	c := sigChecker{msg: msg, sigs: []Signature{s}}
	if !c.verify(0, testPub(1)) {
		t.Fatal("good signature rejected")
	}
	if c.verify(0, testPub(2)) {
		t.Fatal("signature by key 1 verified under key 2 (cache keyed by index only?)")
	}
	if !c.verify(0, testPub(1)) || len(c.cache) != 2 {
		t.Fatalf("cache has %d entries, want 2", len(c.cache))
	}
}

// satisfiedModel is a second formulation of quorum logic: a level is
// satisfied iff some set of exactly Threshold members are all satisfied.
func satisfiedModel(p *Policy, valid map[KeyID]bool) bool {
	var members []bool
	for _, k := range p.Keys {
		members = append(members, valid[KeyIDOf(k)])
	}
	for _, s := range p.Subpolicies {
		members = append(members, satisfiedModel(s, valid))
	}
	var choose func(start, left int) bool
	choose = func(start, left int) bool {
		if left == 0 {
			return true
		}
		for i := start; i < len(members); i++ {
			if members[i] && choose(i+1, left-1) {
				return true
			}
		}
		return false
	}
	return p.Threshold > 0 && choose(0, int(p.Threshold))
}

// randomPolicy returns a valid random policy over keys from pool.
func randomPolicy(rng *rand.Rand, pool *[]int, depth int) *Policy {
	p := &Policy{}
	nKeys := rng.IntN(4)
	if depth == 1 && nKeys == 0 {
		nKeys = 1
	}
	for i := 0; i < nKeys && len(*pool) > 0; i++ {
		p.Keys = append(p.Keys, testPub((*pool)[0]))
		*pool = (*pool)[1:]
	}
	if depth < MaxPolicyDepth {
		for i := rng.IntN(3); i > 0 && len(*pool) > 0; i-- {
			p.Subpolicies = append(p.Subpolicies, randomPolicy(rng, pool, depth+1))
		}
	}
	if len(p.Keys)+len(p.Subpolicies) == 0 && len(*pool) > 0 {
		p.Keys = append(p.Keys, testPub((*pool)[0]))
		*pool = (*pool)[1:]
	}
	if m := len(p.Keys) + len(p.Subpolicies); m > 0 {
		p.Threshold = uint16(1 + rng.IntN(m))
	}
	return p
}

func TestQuorumRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	msg := SigningMessage(fixedBytes("random"))
	n := 100
	if testing.Short() {
		n = 30
	}
	checked, outcomes := 0, map[bool]int{}
	sigCache := map[int]Signature{}
	for iter := 0; iter < n; iter++ {
		pool := rng.Perm(MaxPolicyKeys)
		p := randomPolicy(rng, &pool, 1)
		if p.Threshold == 0 {
			continue
		}
		p.Normalize()
		if err := p.Validate(); err != nil {
			// Rare: a subpolicy ran out of keys; skip it.
			continue
		}
		b := mustMarshal(t, p)
		q, err := ParsePolicy(b)
		if err != nil {
			t.Fatal(err)
		}
		ids := q.KeyIDs()
		checked++
		for trial := 0; trial < 8; trial++ {
			valid := map[KeyID]bool{}
			var sigs []Signature
			for k := 0; k < MaxPolicyKeys; k++ {
				id := KeyIDOf(testPub(k))
				if !slices.Contains(ids, id) || rng.IntN(2) == 0 {
					continue
				}
				s, ok := sigCache[k]
				if !ok {
					s = Sign(testKey(k), msg)
					sigCache[k] = s
				}
				if rng.IntN(5) == 0 {
					s.Sig[0] ^= 0x40 // invalid: does not count
				} else {
					valid[id] = true
				}
				sigs = append(sigs, s)
			}
			want := satisfiedModel(q, valid)
			outcomes[want]++
			if got := q.Satisfied(func(id KeyID) bool { return valid[id] }); got != want {
				t.Fatalf("policy %x valid %v: Satisfied %v, model %v", b, valid, got, want)
			}
			if err := q.Verify(msg, sigs); (err == nil) != want {
				t.Fatalf("policy %x: Verify %v, model %v", b, err, want)
			}
		}
	}
	if checked < n/2 || outcomes[true] < n || outcomes[false] < n {
		t.Fatalf("weak test: %d of %d policies checked, outcomes %v", checked, n, outcomes)
	}
}

func TestPolicyLookups(t *testing.T) {
	p := mustPolicy(t, 2, 1, subPolicy(1, 2, 3))
	ids := p.KeyIDs()
	if len(ids) != 3 {
		t.Fatalf("%d ids", len(ids))
	}
	for k := 1; k <= 3; k++ {
		got, ok := p.Key(KeyIDOf(testPub(k)))
		if !ok || !bytes.Equal(got, testPub(k)) {
			t.Errorf("key %d not found", k)
		}
		if !slices.Contains(ids, KeyIDOf(testPub(k))) {
			t.Errorf("key %d not in KeyIDs", k)
		}
	}
	if _, ok := p.Key(KeyIDOf(testPub(4))); ok {
		t.Error("found a key that is not there")
	}
	// Normalize is idempotent and produces the canonical order.
	q := clonePolicy(p)
	slices.Reverse(q.Keys)
	q.Normalize()
	if !bytes.Equal(mustMarshal(t, q), mustMarshal(t, p)) {
		t.Error("Normalize did not restore the canonical order")
	}
}
