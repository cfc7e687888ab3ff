package statemachine

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/conifer-kt/conifer/format"
)

// refDecide is the reference the state machine is compared with: the rules
// of the package doc, checked one after another with package format's own
// functions (CheckTransition, VerifyUpdateSignatures, VerifyRegistrar,
// which verify with crypto/ed25519), sharing no code with decide.
func refDecide(rules Rules, prev *format.Entry, prevHash [32]byte, rec []byte) RejectCode {
	l, e, err := format.ParseLogRecord(rec)
	if err != nil {
		return Malformed
	}
	if e.Realm != rules.Realm {
		return WrongRealm
	}
	h := format.EntryHash(l.SignedEntry.Entry)
	sigs := l.SignedEntry.Signatures
	if prev == nil {
		switch {
		case e.Version != 1:
			return NotRegistered
		case e.Tombstone:
			return RegistrationTombstone
		case format.CheckTransition(nil, [32]byte{}, e) != nil:
			return 255 // the reference disagrees with itself
		}
		switch l.Registration.Kind {
		case format.RegistrationRegistrar:
			if l.Registration.VerifyRegistrar(h, rules.Registrars) != nil {
				return Registration
			}
		case format.RegistrationOIDC:
			if !slices.Contains(rules.OIDCIssuers, l.Registration.Issuer) {
				return Registration
			}
		}
		if err := format.VerifyUpdateSignatures(nil, e, h, sigs); err != nil {
			return QuorumNew
		}
		return 0
	}
	switch {
	case prev.Realm != e.Realm:
		return WrongRealm
	case prev.Index != e.Index:
		return WrongIndex
	case e.Version == 1:
		return AlreadyRegistered
	case e.Version <= prev.Version:
		return StaleVersion
	case e.Version > prev.Version+1:
		return VersionGap
	case e.Prev != prevHash:
		return WrongPrev
	case format.CheckTransition(prev, prevHash, e) != nil:
		return 255
	}
	if err := format.VerifyUpdateSignatures(prev, e, h, sigs); err != nil {
		if !errors.Is(err, format.ErrQuorumNotMet) {
			return 255
		}
		if strings.Contains(err.Error(), "old policy") {
			return QuorumOld
		}
		return QuorumNew
	}
	return 0
}

// refUser is the reference state of one user.
type refUser struct {
	entry    *format.Entry
	hash     [32]byte
	signed   []byte   // encoded signed entry, for Check
	leafHash [32]byte // newest leaf record hash
	keys     []int    // the test keys of entry's policy
}

// modelGen generates random records, valid and invalid, against the
// reference state, and decides each with the reference as it goes.
type modelGen struct {
	t     testing.TB
	rng   *rand.Rand
	rules Rules
	names []string
	users map[[32]byte]*refUser
	old   [][]byte // every record made so far, for replays
}

func newModelGen(t testing.TB, seed uint64, nUsers int) *modelGen {
	g := &modelGen{t: t, rng: rand.New(rand.NewPCG(seed, 0x5eed)), rules: testRules(), users: map[[32]byte]*refUser{}}
	for i := range nUsers {
		g.names = append(g.names, "user"+string(rune('a'+i)))
	}
	return g
}

// randomPolicy returns a random policy over keys 0..39 and the keys in it.
func (g *modelGen) randomPolicy() (*format.Policy, []int) {
	ks := g.rng.Perm(40)[:3]
	switch g.rng.IntN(4) {
	case 0:
		return pol(1, ks[:1]), ks[:1]
	case 1:
		return pol(1, ks[:2]), ks[:2]
	case 2:
		return pol(2, ks[:3]), ks[:3]
	default:
		return pol(2, ks[:1], pol(1, ks[1:3])), ks[:3]
	}
}

// signers picks a subset of keys (all of them most of the time).
func (g *modelGen) signers(keys []int) []int {
	if g.rng.IntN(4) != 0 {
		return keys
	}
	var s []int
	for _, k := range keys {
		if g.rng.IntN(2) == 0 {
			s = append(s, k)
		}
	}
	return s
}

func union(a, b []int) []int {
	u := slices.Clone(a)
	for _, k := range b {
		if !slices.Contains(u, k) {
			u = append(u, k)
		}
	}
	return u
}

// next returns a random record and the user index it is about.
func (g *modelGen) next() []byte {
	t := g.t
	if len(g.old) > 0 && g.rng.IntN(15) == 0 {
		return g.old[g.rng.IntN(len(g.old))] // a replay
	}
	if g.rng.IntN(40) == 0 {
		b := make([]byte, g.rng.IntN(300))
		for i := range b {
			b[i] = byte(g.rng.Uint32())
		}
		return b
	}
	idx := indexOf(g.names[g.rng.IntN(len(g.names))])
	u := g.users[idx]
	p, keys := g.randomPolicy()
	d := ent{index: idx, policy: p, commit: byte(g.rng.Uint32())}
	var rec []byte
	if u == nil && g.rng.IntN(12) == 0 {
		// An update of a user nobody registered.
		d.version, d.prev = 2+uint64(g.rng.IntN(3)), sha256Tag("unknown")
		rec, _ = update(t, d, keys...)
	} else if u == nil || g.rng.IntN(20) == 0 {
		// A registration (of an unknown user, or a repeat).
		d.version = 1
		if g.rng.IntN(8) == 0 {
			d.tombstone = true
		}
		if g.rng.IntN(20) == 0 {
			d.realm = "other.example"
		}
		by := g.signers(keys)
		if len(by) == 0 {
			by = []int{39} // a signature that may not count
		}
		s, h := signed(t, d.entry(), by...)
		var reg *format.Registration
		switch g.rng.IntN(8) {
		case 0:
			reg = byOIDC(testIssuer)
		case 1:
			reg = byOIDC("https://unknown.example")
		case 2:
			reg = byRegistrar(7, h)
		case 3:
			reg = byRegistrar(registrarB, sha256Tag("other"))
		default:
			reg = byRegistrar(registrarA, h)
		}
		rec = encode(t, s, reg)
	} else {
		d.version, d.prev = u.entry.Version+1, u.hash
		switch g.rng.IntN(12) {
		case 0:
			d.version--
			if d.version == 0 {
				d.version = 1
			}
		case 1:
			d.version++
		case 2:
			d.prev = sha256Tag("wrong")
		}
		if d.version == 1 {
			d.prev = [32]byte{}
		}
		if g.rng.IntN(8) == 0 {
			d.policy, keys = pol(1, u.keys[:1]), u.keys[:1] // keep a key
		}
		if g.rng.IntN(10) == 0 {
			d.tombstone = true
		}
		var by []int
		switch g.rng.IntN(6) {
		case 0:
			by = g.signers(keys) // maybe missing the old quorum
		case 1:
			by = g.signers(u.keys) // maybe missing the new quorum
		default:
			by = union(g.signers(u.keys), g.signers(keys))
		}
		s, _ := signed(t, d.entry(), by...)
		if len(s.Signatures) == 0 {
			s.Signatures = []format.Signature{format.SignEntry(key(39), sha256Tag("x"))}
		}
		if g.rng.IntN(12) == 0 {
			s.Signatures[g.rng.IntN(len(s.Signatures))].Sig[g.rng.IntN(64)] ^= byte(1 << g.rng.IntN(8))
		}
		var reg *format.Registration
		if d.version == 1 {
			reg = byRegistrar(registrarA, format.EntryHash(s.Entry))
		}
		rec = encode(t, s, reg)
	}
	if g.rng.IntN(30) == 0 {
		rec[g.rng.IntN(len(rec))] ^= byte(1 << g.rng.IntN(8)) // anything may break
	}
	return rec
}

// decide decides rec with the reference, updates its state if applied,
// and returns the code and (if applied) the expected leaf record.
func (g *modelGen) decide(epoch uint64, rec []byte) (RejectCode, []byte) {
	l, e, err := format.ParseLogRecord(rec)
	var u *refUser
	if err == nil {
		u = g.users[e.Index]
	}
	var prev *format.Entry
	var prevHash [32]byte
	if u != nil && e.Realm == g.rules.Realm {
		prev, prevHash = u.entry, u.hash
	}
	code := refDecide(g.rules, prev, prevHash, rec)
	if code != 0 {
		return code, nil
	}
	leaf := format.LeafRecord{EntryHash: format.EntryHash(l.SignedEntry.Entry), Epoch: epoch}
	if u != nil {
		leaf.Prev = u.leafHash
	} else {
		u = &refUser{}
		g.users[e.Index] = u
	}
	lb, _ := leaf.Marshal()
	se, _ := l.SignedEntry.Marshal()
	u.entry, u.hash, u.signed, u.leafHash = e, leaf.EntryHash, se, format.LeafRecordHash(lb)
	u.keys = nil
	for _, k := range e.Policy.KeyIDs() {
		for i := range 40 {
			if format.KeyIDOf(pub(i)) == k {
				u.keys = append(u.keys, i)
			}
		}
	}
	return 0, lb
}

// prevFor returns the encoded signed entry Check needs for rec.
func (g *modelGen) prevFor(rec []byte) []byte {
	_, e, err := format.ParseLogRecord(rec)
	if err != nil {
		return nil
	}
	if u := g.users[e.Index]; u != nil {
		return u.signed
	}
	return nil
}

// TestModel replays random epochs of valid and invalid records and
// compares every decision, leaf record and tree value with the reference;
// Check must agree with Apply on every record.
func TestModel(t *testing.T) {
	epochs := 80
	if testing.Short() {
		epochs = 10
	}
	g := newModelGen(t, 1, 24)
	v := newEnv(t)
	stats := map[RejectCode]int{}
	for range epochs {
		n := g.rng.IntN(16)
		recs := make([][]byte, n)
		wantCodes := make([]RejectCode, n)
		wantLeaf := make([][]byte, n)
		checkCodes := make([]RejectCode, n)
		epoch := v.epoch + 1
		for i := range recs {
			recs[i] = g.next()
			g.old = append(g.old, recs[i])
			_, cerr := Check(g.rules, g.prevFor(recs[i]), recs[i])
			var rej *Rejection
			if errors.As(cerr, &rej) {
				checkCodes[i] = rej.Code
			} else if cerr != nil {
				t.Fatalf("Check: %v", cerr)
			}
			wantCodes[i], wantLeaf[i] = g.decide(epoch, recs[i])
		}
		out := v.run(recs...)
		got := codes(out, n)
		for i := range recs {
			stats[wantCodes[i]]++
			if got[i] != wantCodes[i] {
				t.Fatalf("epoch %d record %d: Apply says %v, reference %v (%+v)", epoch, i, got[i], wantCodes[i], out.Rejected)
			}
			if checkCodes[i] != wantCodes[i] {
				t.Fatalf("epoch %d record %d: Check says %v, reference %v", epoch, i, checkCodes[i], wantCodes[i])
			}
		}
		for _, a := range out.Applied {
			if !bytes.Equal(a.LeafRecord, wantLeaf[a.Position]) {
				t.Fatalf("epoch %d record %d: leaf record %x, want %x", epoch, a.Position, a.LeafRecord, wantLeaf[a.Position])
			}
		}
		for _, name := range g.names {
			idx := indexOf(name)
			if u := g.users[idx]; u != nil {
				v.proveUser(idx, &u.leafHash)
			} else {
				v.proveUser(idx, nil)
			}
		}
	}
	// The generator must exercise every rule the model can reach.
	for _, c := range []RejectCode{0, Malformed, WrongRealm, NotRegistered, RegistrationTombstone, Registration,
		AlreadyRegistered, StaleVersion, VersionGap, WrongPrev, QuorumOld, QuorumNew} {
		if stats[c] == 0 && !testing.Short() {
			t.Errorf("no record with outcome %v in %d epochs (stats %v)", c, epochs, stats)
		}
	}
	t.Logf("outcomes: %v", stats)
}

// TestCheckAgainstReference compares Check with the reference on random
// records, each decided against the reference state left by the ones
// before.
func TestCheckAgainstReference(t *testing.T) {
	g := newModelGen(t, 7, 6)
	for range 300 {
		rec := g.next()
		var prev *format.Entry
		var prevHash [32]byte
		if p := g.prevFor(rec); p != nil {
			s, e, _ := format.ParseSignedEntry(p)
			prev, prevHash = e, format.EntryHash(s.Entry)
		}
		want := refDecide(g.rules, prev, prevHash, rec)
		_, err := Check(g.rules, g.prevFor(rec), rec)
		var rej *Rejection
		got := RejectCode(0)
		if errors.As(err, &rej) {
			got = rej.Code
		} else if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("Check says %v, reference %v", got, want)
		}
		g.decide(1, rec)
	}
}
