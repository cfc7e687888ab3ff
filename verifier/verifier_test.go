package verifier

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

// scenario cuts a varied run of honest epochs after the genesis:
// registrations, key changes, a user changing twice in one epoch, records
// the statemachine rejects (a replayed registration, a key change signed
// by a stranger), an empty epoch, an erasure and a revival.
func scenario(s *honest) {
	var regs [][]byte
	for i := range 10 {
		regs = append(regs, s.register(i, i))
	}
	s.cut(regs...) // 1
	s.cut(
		s.update(0, 100), s.update(1, 101), s.update(2, 102),
		s.update(5, 105), s.update(5, 205), // twice in one epoch
		regs[6], // replayed registration: already-registered
	) // 2
	s.cut() // 3: empty
	var recs [][]byte
	recs = append(recs, s.entry(7, 7, []int{7}, true)) // erase user 7
	for i := 10; i < 15; i++ {
		recs = append(recs, s.register(i, i))
	}
	recs = append(recs, s.rogue(8, attackerKey, attackerKey)) // quorum-old
	s.cut(recs...)                                            // 4
	s.cut(s.update(7, 107), s.update(10, 110))                // 5: revive user 7
}

// verifyAll offers every epoch of s from v.Next() on.
func verifyAll(t *testing.T, v *Verifier, s *honest) {
	t.Helper()
	for n := v.Next(); n < s.epochs(); n++ {
		if err := v.VerifyBundle(context.Background(), n, s.bundle(n)); err != nil {
			t.Fatalf("epoch %d: %v", n, err)
		}
	}
}

// checkCosigned checks that v co-signed every epoch of s, over exactly
// the keyserver's checkpoint text.
func checkCosigned(t *testing.T, v *Verifier, s *honest) {
	t.Helper()
	for n := range s.epochs() {
		line, ok, err := v.Cosignature(n)
		if err != nil || !ok {
			t.Fatalf("epoch %d: no cosignature (%v)", n, err)
		}
		if err := s.checkCosignature(n, line); err != nil {
			t.Fatalf("epoch %d: %v", n, err)
		}
	}
}

func TestHonestReplay(t *testing.T) {
	s := newHonest(t)
	scenario(s)
	v := openTest(t, s, t.TempDir())
	ctx := context.Background()
	for n := range s.epochs() {
		if err := v.VerifyBundle(ctx, n, s.bundle(n)); err != nil {
			t.Fatalf("epoch %d: %v", n, err)
		}
		if v.Next() != n+1 {
			t.Fatalf("after epoch %d, Next = %d", n, v.Next())
		}
		// The verifier's user state equals the keyserver's, at every
		// epoch so far.
		var indexes [][32]byte
		for i := range 16 {
			indexes = append(indexes, indexOf(i))
		}
		slices.SortFunc(indexes, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
		for e := uint64(0); e <= n; e++ {
			got, err := v.db.Latest(ctx, e, indexes)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := s.entries.Latest(ctx, e, indexes)
			if !mapsEqual(got, want) {
				t.Fatalf("state at epoch %d after verifying %d differs from the keyserver's", e, n)
			}
		}
	}
	checkCosigned(t, v, s)
	// A duplicate of a verified epoch is accepted and changes nothing.
	if err := v.VerifyBundle(ctx, 2, s.bundle(2)); err != nil {
		t.Fatalf("duplicate: %v", err)
	}
	// An epoch past the next one is refused without judging it.
	if err := v.VerifyBundle(ctx, s.epochs()+1, s.bundle(1)); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("out of order: %v", err)
	}
	if v.Halted() != nil {
		t.Fatal("halted on honest input")
	}
}

func mapsEqual(a, b map[[32]byte]statemachine.Latest) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || !bytes.Equal(x.LeafRecord, y.LeafRecord) || !bytes.Equal(x.SignedEntry, y.SignedEntry) {
			return false
		}
	}
	return true
}

// rawSigner signs notes with the log key under any text, as a keyserver
// holding its key can (the LogSigner refuses what is not a checkpoint of
// its realm).
type rawSigner struct{}

func (rawSigner) Name() string { return testRealm }
func (rawSigner) KeyHash() uint32 {
	return checkpoint.KeyHash(testRealm, checkpoint.AlgEd25519, pub(logKeyIndex))
}
func (rawSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(key(logKeyIndex), msg), nil }

// signerOf signs notes as key k named testRealm.
type signerOf int

func (signerOf) Name() string { return testRealm }
func (k signerOf) KeyHash() uint32 {
	return checkpoint.KeyHash(testRealm, checkpoint.AlgEd25519, pub(int(k)))
}
func (k signerOf) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(key(int(k)), msg), nil }

func signRaw(t testing.TB, text string, s note.Signer) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMisbehaviour(t *testing.T) {
	type tc struct {
		name  string
		check Check
		// make cuts the forged epoch on s, whose honest epochs the
		// verifier has verified.
		make func(t *testing.T, s *honest) uint64
		// signed: the evidence's checkpoint carries a valid log signature.
		signed bool
	}
	honestRecs := func(s *honest) [][]byte {
		return [][]byte{s.update(3, 303), s.update(4, 304), s.update(3, 403)}
	}
	forged := func(f *forge) func(t *testing.T, s *honest) uint64 {
		return func(t *testing.T, s *honest) uint64 { return s.cutForged(f, honestRecs(s)...) }
	}
	cases := []tc{
		{"wrong tree root", CheckTreeRoot, forged(&forge{head: func(h *format.EpochHead) { h.TreeRoot[0] ^= 1 }}), true},
		{"wrong updates root", CheckUpdatesRoot, forged(&forge{head: func(h *format.EpochHead) { h.UpdatesRoot[0] ^= 1 }}), true},
		{"dropped record", CheckCount, forged(&forge{records: func(r [][]byte) [][]byte { return r[:len(r)-1] }}), true},
		{"hidden record", CheckTreeRoot, func(t *testing.T, s *honest) uint64 {
			// The keyserver applies every record but publishes, counts
			// and commits to all but the last.
			recs := honestRecs(s)
			return s.cutForged(&forge{
				head: func(h *format.EpochHead) {
					h.UpdateCount--
					h.UpdatesRoot = format.UpdatesRoot(recs[:len(recs)-1])
				},
				records: func(r [][]byte) [][]byte { return r[:len(r)-1] },
			}, recs...)
		}, true},
		{"reordered records", CheckUpdatesRoot, forged(&forge{records: func(r [][]byte) [][]byte {
			r[0], r[2] = r[2], r[0]
			return r
		}}), true},
		{"reordered records, head to match", CheckTreeRoot, func(t *testing.T, s *honest) uint64 {
			// User 3 changes twice; in the other order the second change
			// comes first and is refused (version gap), so the replay
			// ends elsewhere than the keyserver's tree.
			recs := honestRecs(s)
			swapped := [][]byte{recs[2], recs[1], recs[0]}
			return s.cutForged(&forge{
				head:    func(h *format.EpochHead) { h.UpdatesRoot = format.UpdatesRoot(swapped) },
				records: func([][]byte) [][]byte { return swapped },
			}, recs...)
		}, true},
		{"wrong count", CheckCount, forged(&forge{head: func(h *format.EpochHead) { h.UpdateCount++ }}), true},
		{"corrupted log signature", CheckLogSignature, forged(&forge{note: func(s *honest, head []byte) []byte {
			nb := s.sign(checkpoint.Checkpoint{Origin: testRealm, Size: uint64(len(s.heads)) + 1, Hash: s.rootWith(append(slices.Clone(s.heads), head))})
			return flipSignature(t, nb)
		}}), false},
		{"signed by another key", CheckLogSignature, forged(&forge{note: func(s *honest, head []byte) []byte {
			root := s.rootWith(append(slices.Clone(s.heads), head))
			return signRaw(t, cpText(testRealm, uint64(len(s.heads))+1, root), signerOf(attackerKey))
		}}), false},
		{"wrong origin", CheckOrigin, forged(&forge{note: func(s *honest, head []byte) []byte {
			root := s.rootWith(append(slices.Clone(s.heads), head))
			return signRaw(t, cpText("other.example/conifer", uint64(len(s.heads))+1, root), rawSigner{})
		}}), true},
		{"extension line", CheckCheckpoint, forged(&forge{note: func(s *honest, head []byte) []byte {
			root := s.rootWith(append(slices.Clone(s.heads), head))
			return signRaw(t, cpText(testRealm, uint64(len(s.heads))+1, root)+"extension\n", rawSigner{})
		}}), true},
		{"wrong size", CheckSize, forged(&forge{note: func(s *honest, head []byte) []byte {
			root := s.rootWith(append(slices.Clone(s.heads), head))
			return s.sign(checkpoint.Checkpoint{Origin: testRealm, Size: uint64(len(s.heads)) + 2, Hash: root})
		}}), true},
		{"fork: an earlier head rewritten", CheckLogRoot, forged(&forge{note: func(s *honest, head []byte) []byte {
			heads := slices.Clone(s.heads)
			h, err := format.ParseEpochHead(heads[1])
			if err != nil {
				t.Fatal(err)
			}
			h.Time++
			if heads[1], err = h.Marshal(); err != nil {
				t.Fatal(err)
			}
			return s.sign(checkpoint.Checkpoint{Origin: testRealm, Size: uint64(len(heads)) + 1, Hash: s.rootWith(append(heads, head))})
		}}), true},
		{"rollback: the last verified epoch replaced", CheckLogRoot, forged(&forge{note: func(s *honest, head []byte) []byte {
			// The keyserver rolled its log back by one epoch and
			// published another epoch there (a copy of the one before).
			heads := slices.Clone(s.heads)
			heads[len(heads)-1] = heads[len(heads)-2]
			heads = append(heads, head)
			return s.sign(checkpoint.Checkpoint{Origin: testRealm, Size: uint64(len(heads)), Hash: s.rootWith(heads)})
		}}), true},
		{"stale root", CheckLogRoot, forged(&forge{note: func(s *honest, head []byte) []byte {
			return s.sign(checkpoint.Checkpoint{Origin: testRealm, Size: uint64(len(s.heads)) + 1, Hash: s.rootWith(s.heads)})
		}}), true},
		{"key swapped without the user's signature", CheckTreeRoot, func(t *testing.T, s *honest) uint64 {
			// The keyserver applies a change of user 8's key that only
			// the attacker signed, and publishes the tree it made.
			n := s.epochs()
			swap := s.rogue(8, attackerKey, attackerKey)
			recs := append(honestRecs(s), swap)
			return s.cutForged(&forge{head: func(h *format.EpochHead) {
				h.TreeRoot = forcedRoot(t, s, n, recs)
			}}, recs...)
		}, true},
		{"wrong head realm", CheckRealm, forged(&forge{head: func(h *format.EpochHead) { h.Realm = "other.example/conifer" }}), true},
		{"wrong head epoch", CheckEpoch, forged(&forge{head: func(h *format.EpochHead) { h.Epoch++ }}), true},
		{"time going back", CheckTime, forged(&forge{head: func(h *format.EpochHead) { h.Time -= 5000 }}), true},
		{"non-canonical head", CheckHead, forged(&forge{rawHead: func(b []byte) []byte { return append(b, 0) }}), true},
		{"malformed record", CheckRecords, func(t *testing.T, s *honest) uint64 {
			recs := append(honestRecs(s), []byte("not a record"))
			return s.cutForged(&forge{}, recs...)
		}, true},
		{"record of another realm", CheckRecords, func(t *testing.T, s *honest) uint64 {
			other := otherRealmRecord(t)
			recs := append(honestRecs(s), other)
			return s.cutForged(&forge{}, recs...)
		}, true},
		// Nothing can be read out of a bundle that does not split, so the
		// evidence cannot attribute it.
		{"trailing bytes", CheckBundle, forged(&forge{bundle: func(b []byte) []byte { return append(b, 0) }}), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newHonest(t)
			scenario(s)
			dir := t.TempDir()
			v := openTest(t, s, dir)
			verifyAll(t, v, s)
			before := v.Next()
			n := c.make(t, s)
			err := v.VerifyBundle(context.Background(), n, s.bundle(n))
			checkHalted(t, v, dir, err, n, c.check, s.bundle(n), c.signed)
			if v.Next() != before {
				t.Fatalf("Next moved to %d", v.Next())
			}
			// The honest counterpart of the forged epoch is fine: the
			// forgery is what failed. (A fresh verifier: this one is
			// halted for good.)
		})
	}
}

// checkHalted checks a verifier that must have caught check at epoch n.
func checkHalted(t *testing.T, v *Verifier, dir string, err error, n uint64, check Check, bundle []byte, signed bool) {
	t.Helper()
	var m *Misbehaviour
	if !errors.As(err, &m) || !errors.Is(err, ErrMisbehaviour) {
		t.Fatalf("VerifyBundle = %v, want a misbehaviour", err)
	}
	if m.Check != check || m.Epoch != n {
		t.Fatalf("caught %s at epoch %d (%s), want %s at %d", m.Check, m.Epoch, m.Detail, check, n)
	}
	if _, ok, _ := v.Cosignature(n); ok && n >= v.Next() {
		t.Fatal("co-signed a bad epoch")
	}
	if h := v.Halted(); h == nil || h.Check != check {
		t.Fatalf("Halted = %v", h)
	}
	// Evidence: on disk, naming the check, carrying the bundle.
	b, err := os.ReadFile(filepath.Join(dir, m.Evidence))
	if err != nil {
		t.Fatalf("evidence: %v", err)
	}
	var e Evidence
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	if e.Check != check || e.Epoch != n || !bytes.Equal(e.Bundle, bundle) || e.Realm != testRealm || e.Verifier != verifierName {
		t.Fatalf("evidence = %s", b)
	}
	if e.LogSignatureValid != signed {
		t.Fatalf("evidence says log signature valid = %v, want %v", e.LogSignatureValid, signed)
	}
	if f, err := splitBundle(bundle); err == nil && !bytes.Equal(e.Checkpoint, f.checkpoint) {
		t.Fatal("evidence lacks the offending checkpoint")
	}
	st := v.Status()
	if st.Signing || st.Halt == nil || len(st.Evidence) != 1 || st.Evidence[0] != m.Evidence {
		t.Fatalf("status = %+v", st)
	}
	// Halted for good: nothing more is verified or signed, here or after
	// a restart.
	if err := v.VerifyBundle(context.Background(), n, bundle); !errors.Is(err, ErrHalted) {
		t.Fatalf("after halting: %v", err)
	}
	cfg := v.cfg
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v2, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if h := v2.Halted(); h == nil || *h != *m {
		t.Fatalf("after restart, Halted = %v", h)
	}
	if err := v2.Run(context.Background(), nil); !errors.Is(err, ErrHalted) || !errors.Is(err, ErrMisbehaviour) {
		t.Fatalf("Run after restart = %v", err)
	}
}

// flipSignature flips a bit of the (first) signature of a signed note,
// keeping its encoding canonical.
func flipSignature(t testing.TB, nb []byte) []byte {
	t.Helper()
	text, sigs, _ := bytes.Cut(nb, []byte("\n\n"))
	line, rest, _ := bytes.Cut(sigs, []byte("\n"))
	i := bytes.LastIndexByte(line, ' ')
	raw, err := base64.StdEncoding.DecodeString(string(line[i+1:]))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	out := append(slices.Clone(text), "\n\n"...)
	out = append(out, line[:i+1]...)
	out = append(out, base64.StdEncoding.EncodeToString(raw)...)
	out = append(out, '\n')
	return append(out, rest...)
}

// cpText is a checkpoint body.
func cpText(origin string, size uint64, root [32]byte) string {
	c := checkpoint.Checkpoint{Origin: origin, Size: size, Hash: root}
	b, err := c.Marshal()
	if err != nil {
		panic(err)
	}
	return string(b)
}

// forcedRoot is the tree root a keyserver gets for epoch n by applying
// every record in recs without checking a signature: each record's
// entry becomes its user's newest, chained to the stored leaf record.
func forcedRoot(t *testing.T, s *honest, n uint64, recs [][]byte) [32]byte {
	t.Helper()
	ctx := context.Background()
	leaves := map[[32]byte][32]byte{}
	for _, r := range recs {
		_, e, err := format.ParseLogRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		prev, ok := leaves[e.Index]
		if !ok {
			l, err := s.entries.Latest(ctx, n-1, [][32]byte{e.Index})
			if err != nil {
				t.Fatal(err)
			}
			if cur, ok := l[e.Index]; ok {
				prev = format.LeafRecordHash(cur.LeafRecord)
			}
		}
		se, _, _ := format.ParseSignedEntry(mustSignedEntry(t, r))
		lr := format.LeafRecord{EntryHash: format.EntryHash(se.Entry), Epoch: n, Prev: prev}
		lb, err := lr.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		leaves[e.Index] = format.LeafRecordHash(lb)
	}
	var changes []tree.Change
	for k, v := range leaves {
		changes = append(changes, tree.Change{Key: k, Value: v})
	}
	root, err := s.tree.Update(ctx, n-1, changes)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func mustSignedEntry(t *testing.T, rec []byte) []byte {
	t.Helper()
	l, _, err := format.ParseLogRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.SignedEntry.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// otherRealmRecord is a well-formed, signed registration in another realm.
func otherRealmRecord(t *testing.T) []byte {
	t.Helper()
	e := &format.Entry{Realm: "other.example", Index: indexOf(99), Version: 1,
		Policy: format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{pub(99)}}, Commitment: [32]byte{1}}
	eb, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h := format.EntryHash(eb)
	rec := format.LogRecord{
		SignedEntry:  format.SignedEntry{Entry: eb, Signatures: []format.Signature{format.SignEntry(key(99), h)}},
		Registration: &format.Registration{Kind: format.RegistrationRegistrar, Registrar: format.SignRegistration(key(registrarKey), h)},
	}
	b, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenesisTreeRoot(t *testing.T) {
	// A keyserver whose genesis claims a non-empty tree.
	s := newHonest(t)
	hb, err := (&format.EpochHead{Realm: testRealm, Epoch: 0, Time: 1, TreeRoot: [32]byte{1}, UpdatesRoot: format.UpdatesRoot(nil)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	nb := s.sign(checkpoint.Checkpoint{Origin: testRealm, Size: 1, Hash: checkpoint.LeafHash(hb)})
	bundle := encodeBundle(hb, nb, nil)
	dir := t.TempDir()
	v := openTest(t, s, dir)
	err = v.VerifyBundle(context.Background(), 0, bundle)
	checkHalted(t, v, dir, err, 0, CheckTreeRoot, bundle, true)
}

func TestRejectedSwapEvidence(t *testing.T) {
	// The evidence of a key swapped without the user's signature shows
	// the statemachine's rejection of that record.
	s := newHonest(t)
	scenario(s)
	dir := t.TempDir()
	v := openTest(t, s, dir)
	verifyAll(t, v, s)
	n := s.epochs()
	swap := s.rogue(8, attackerKey, attackerKey)
	s.cutForged(&forge{head: func(h *format.EpochHead) { h.TreeRoot = forcedRoot(t, s, n, [][]byte{swap}) }}, swap)
	err := v.VerifyBundle(context.Background(), n, s.bundle(n))
	var m *Misbehaviour
	if !errors.As(err, &m) || m.Check != CheckTreeRoot {
		t.Fatalf("VerifyBundle = %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, m.Evidence))
	if err != nil {
		t.Fatal(err)
	}
	var e Evidence
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Rejections) != 1 || e.Rejections[0].Position != 0 || e.Rejections[0].Code != statemachine.QuorumOld.String() {
		t.Fatalf("rejections = %+v", e.Rejections)
	}
	rh, err := format.ParseEpochHead(e.ReplayedHead)
	if err != nil {
		t.Fatal(err)
	}
	prev, _ := format.ParseEpochHead(e.PreviousHead)
	if rh.TreeRoot != prev.TreeRoot {
		t.Fatal("the replayed tree should be unchanged: the only record was refused")
	}
	if !bytes.Equal(e.PreviousCheckpoint, s.notes[n-1]) {
		t.Fatal("evidence lacks the previous checkpoint")
	}
}

func TestEquivocation(t *testing.T) {
	s := newHonest(t)
	scenario(s)
	dir := t.TempDir()
	v := openTest(t, s, dir)
	verifyAll(t, v, s)
	ctx := context.Background()
	n := uint64(2)

	// Benign: the same epoch with a cosignature merged into its note has
	// another digest but the same head and checkpoint text.
	line, _, _ := v.Cosignature(n)
	withCosig := append(slices.Clone(s.notes[n]), line...)
	f, err := splitBundle(s.bundle(n))
	if err != nil {
		t.Fatal(err)
	}
	benign := encodeBundle(f.head, withCosig, f.records)
	if bytes.Equal(benign, s.bundle(n)) {
		t.Fatal("test bundle is not different")
	}
	if err := v.VerifyBundle(ctx, n, benign); err != nil {
		t.Fatalf("benign duplicate: %v", err)
	}

	// A second, validly signed bundle for epoch 2 with another head.
	h, err := format.ParseEpochHead(f.head)
	if err != nil {
		t.Fatal(err)
	}
	h.Time += 7
	hb, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	heads := append(slices.Clone(s.heads[:n]), hb)
	nb := s.sign(checkpoint.Checkpoint{Origin: testRealm, Size: n + 1, Hash: s.rootWith(heads)})
	other := encodeBundle(hb, nb, f.records)
	err = v.VerifyBundle(ctx, n, other)
	checkHalted(t, v, dir, err, n, CheckEquivocation, other, true)
	b, _ := os.ReadFile(filepath.Join(dir, v.Halted().Evidence))
	var e Evidence
	json.Unmarshal(b, &e)
	if !bytes.Equal(e.VerifiedHead, s.heads[n]) || !bytes.Equal(e.VerifiedCheckpoint, s.notes[n]) || !bytes.Equal(e.Checkpoint, nb) {
		t.Fatal("evidence lacks the two conflicting checkpoints")
	}
}

func TestEquivocationBadBundle(t *testing.T) {
	// A different bundle for a verified epoch fails the first check it
	// breaks, like any bundle.
	s := newHonest(t)
	scenario(s)
	dir := t.TempDir()
	v := openTest(t, s, dir)
	verifyAll(t, v, s)
	bad := flipSignature(t, s.notes[1])
	f, _ := splitBundle(s.bundle(1))
	b := encodeBundle(f.head, bad, f.records)
	err := v.VerifyBundle(context.Background(), 1, b)
	checkHalted(t, v, dir, err, 1, CheckLogSignature, b, false)
}

// TestRestart verifies in two runs with a restart between them, and
// checks that the cosigned checkpoint texts are those of one run.
func TestRestart(t *testing.T) {
	s := newHonest(t)
	scenario(s)
	for i := range 3 {
		s.cut(s.update(i, 300+i))
	}
	dir := t.TempDir()
	cfg := testConfig(t, s, dir)
	for stop := uint64(3); ; stop += 3 {
		v, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for n := v.Next(); n < min(stop, s.epochs()); n++ {
			if err := v.VerifyBundle(context.Background(), n, s.bundle(n)); err != nil {
				t.Fatalf("epoch %d: %v", n, err)
			}
		}
		if v.Next() != min(stop, s.epochs()) {
			t.Fatalf("resumed at %d", v.Next())
		}
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		if stop >= s.epochs() {
			break
		}
	}
	v, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	checkCosigned(t, v, s)
	ref := openTest(t, s, t.TempDir())
	verifyAll(t, ref, s)
	for n := range s.epochs() {
		a, _ := v.db.epoch(n)
		b, _ := ref.db.epoch(n)
		if a.digest != b.digest || !bytes.Equal(a.head, b.head) || !bytes.Equal(a.note, b.note) {
			t.Fatalf("epoch %d stored differently after restarts", n)
		}
	}
}

// TestCrash fails each durable step of an epoch (as a crash there would),
// reopens, and checks that the verifier resumes where it must and ends
// with the state and cosignatures of an uninterrupted run.
func TestCrash(t *testing.T) {
	s := newHonest(t)
	scenario(s)
	const k = 4 // the epoch that crashes
	for _, c := range []struct {
		step      string
		persisted bool // the epoch counts as verified after the restart
	}{
		{stepBeforeState, false},
		{stepBeforeTree, true},
		{stepBeforeSign, true},
	} {
		t.Run(c.step, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, s, dir)
			v, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			crash := errors.New("crash")
			v.hook = func(step string, n uint64) error {
				if step == c.step && n == k {
					return crash
				}
				return nil
			}
			for n := range uint64(k) {
				if err := v.VerifyBundle(context.Background(), n, s.bundle(n)); err != nil {
					t.Fatal(err)
				}
			}
			if err := v.VerifyBundle(context.Background(), k, s.bundle(k)); !errors.Is(err, crash) {
				t.Fatalf("crash: %v", err)
			}
			v.Close()
			v, err = Open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer v.Close()
			want := uint64(k)
			if c.persisted {
				want = k + 1
			}
			if v.Next() != want {
				t.Fatalf("resumed at %d, want %d", v.Next(), want)
			}
			if tv, root, _ := v.store.Latest(context.Background()); tv != want-1 {
				t.Fatalf("tree at %d", tv)
			} else if h, _ := format.ParseEpochHead(s.heads[want-1]); root != h.TreeRoot {
				t.Fatal("tree root differs from the head's")
			}
			verifyAll(t, v, s)
			checkCosigned(t, v, s)
		})
	}
}

func TestRunChunks(t *testing.T) {
	s := newHonest(t)
	scenario(s)
	for i := range 8 {
		s.cut(s.update(i%4, 400+i), s.register(50+i, 50+i))
	}
	total := s.epochs()
	s.feedLimit = 1 // the feed has only the genesis at first
	srv := httptest.NewServer(s)
	defer srv.Close()
	v := openTest(t, s, t.TempDir(), func(c *Config) {
		c.FeedURL, c.RatifyURL = srv.URL, srv.URL+"/Ratify"
		c.PollInterval = 1 << 40 // never poll: gaps are found from Pub/Sub
	})
	// Deliver epochs 1.. as Pub/Sub would misbehave: every chunk twice,
	// shuffled within a window of two epochs; epoch 4 never; one part of
	// epoch 6 never. The last epoch arrives whole.
	var msgs []Message
	var acks, nacks, count countMap
	rng := rand.New(rand.NewPCG(1, 2))
	for n := uint64(1); n < total; n++ {
		cs := s.chunks(n, 200)
		if len(cs) < 2 {
			t.Fatalf("epoch %d has %d chunks", n, len(cs))
		}
		for p, c := range cs {
			if n == 4 || n == 6 && p == 1 {
				continue
			}
			for range 2 {
				id := len(msgs)
				msgs = append(msgs, Message{Data: c, Ack: func() { acks.inc(id) }, Nack: func() { nacks.inc(id) }})
				count.inc(id)
			}
		}
	}
	// Shuffle within windows, but keep the last epoch's chunks last
	// (they end the gaps).
	last := len(s.chunks(total-1, 200)) * 2
	for i := 0; i < len(msgs)-last; i += 16 {
		w := msgs[i:min(i+16, len(msgs)-last)]
		rng.Shuffle(len(w), func(a, b int) { w[a], w[b] = w[b], w[a] })
	}
	ch := make(chan Message)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx, ch) }()
	s.waitRatified(t, 1) // the genesis, from the feed
	s.mu.Lock()
	s.feedLimit = -1 // now the feed can backfill
	s.mu.Unlock()
	for _, m := range msgs {
		ch <- m
	}
	s.waitRatified(t, total)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if v.Next() != total {
		t.Fatalf("Next = %d, want %d", v.Next(), total)
	}
	checkCosigned(t, v, s)
	// The lost epoch and the one with a lost part came from the feed;
	// most came from the messages.
	served := s.served()
	t.Logf("the feed served epochs %v of %d", served, total)
	if !slices.Contains(served, 4) || !slices.Contains(served, 6) || len(served) > int(total)/2 {
		t.Fatalf("the feed served epochs %v", served)
	}
	for id := range msgs {
		if acks.get(id) != 1 || nacks.get(id) != 0 {
			t.Fatalf("message %d acked %d times, nacked %d times", id, acks.get(id), nacks.get(id))
		}
	}
	if st := v.Status(); st.VerifiedEpochs != total || st.LagEpochs != 0 || !st.Signing || st.CatchingUp {
		t.Fatalf("status = %+v", st)
	}
}

type countMap struct {
	mu sync.Mutex
	m  map[int]int
}

func (c *countMap) inc(id int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int]int{}
	}
	c.m[id]++
}

func (c *countMap) get(id int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func TestRunCatchUpAndRetries(t *testing.T) {
	// Catch-up from the feed alone, through feed and ratify failures.
	s := newHonest(t)
	scenario(s)
	s.feedFails, s.ratifyFails = 3, 5
	srv := httptest.NewServer(s)
	defer srv.Close()
	v := openTest(t, s, t.TempDir(), func(c *Config) {
		c.FeedURL, c.RatifyURL = srv.URL+"/Feed", srv.URL
		c.PollInterval = 1 << 40
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx, nil) }()
	s.waitRatified(t, s.epochs())
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkCosigned(t, v, s)
}

func TestRatifyRefused(t *testing.T) {
	// A Ratify that refuses the cosignature (400) makes the verifier give
	// it up, not retry forever.
	s := newHonest(t)
	var hits countMap
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Ratify") {
			hits.inc(0)
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"code":"bad_signature","error":"no"}`))
			return
		}
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()
	v := openTest(t, s, t.TempDir(), func(c *Config) {
		c.FeedURL, c.RatifyURL = srv.URL, srv.URL
		c.PollInterval = 1 << 40
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx, nil) }()
	for {
		c, err := v.db.cosig(0)
		if err != nil {
			t.Fatal(err)
		}
		if c != nil && c.state == cosigAbandoned {
			break
		}
		waitABit(t)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if hits.get(0) != 1 {
		t.Fatalf("Ratify called %d times, want once", hits.get(0))
	}
}

func TestStatusEndpoint(t *testing.T) {
	s := newHonest(t)
	scenario(s)
	dir := t.TempDir()
	v := openTest(t, s, dir)
	verifyAll(t, v, s)
	rec := httptest.NewRecorder()
	v.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != 200 {
		t.Fatalf("status %d: %v", rec.Code, err)
	}
	if st.Realm != testRealm || st.VerifiedEpochs != s.epochs() || st.NewestEpoch == nil || *st.NewestEpoch != s.epochs()-1 ||
		!st.Signing || len(st.Evidence) != 0 || st.VerifierKey != v.VerifierKey() || st.NewestHeadTime == "" {
		t.Fatalf("status = %s", rec.Body)
	}
	// Halted: 500, with the evidence.
	n := s.cutForged(&forge{head: func(h *format.EpochHead) { h.TreeRoot[5] ^= 1 }})
	if err := v.VerifyBundle(context.Background(), n, s.bundle(n)); !errors.Is(err, ErrMisbehaviour) {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	v.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != 500 || st.Signing || st.Halt == nil || st.Halt.Check != CheckTreeRoot || len(st.Evidence) != 1 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	v.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}

func TestWrongDirectory(t *testing.T) {
	s := newHonest(t)
	dir := t.TempDir()
	v := openTest(t, s, dir)
	v.Close()
	cfg := testConfig(t, s, dir)
	cfg.Name = "another.verifier/v1"
	if _, err := Open(context.Background(), cfg); !errors.Is(err, ErrWrongDirectory) {
		t.Fatalf("Open with another name: %v", err)
	}
}

func TestConfigRefused(t *testing.T) {
	s := newHonest(t)
	for name, mod := range map[string]func(*Config){
		"no realm":    func(c *Config) { c.Realm = nil },
		"no dir":      func(c *Config) { c.Dir = "" },
		"no signer":   func(c *Config) { c.Signer = nil },
		"bad name":    func(c *Config) { c.Name = "has space" },
		"feed query":  func(c *Config) { c.FeedURL = "https://x.example/?a=b" },
		"feed scheme": func(c *Config) { c.FeedURL = "ftp://x.example/" },
		"log key of another realm": func(c *Config) {
			r := *c.Realm
			r.Realm = "other.example"
			c.Realm = &r
		},
	} {
		if _, err := Open(context.Background(), testConfig(t, s, t.TempDir(), mod)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for in, want := range map[string]string{
		"https://f.example":             "https://f.example/Feed",
		"https://f.example/":            "https://f.example/Feed",
		"https://f.example/Feed":        "https://f.example/Feed",
		"http://127.0.0.1:8080/api/":    "http://127.0.0.1:8080/api/Feed",
		"https://f.example/x/Feed":      "https://f.example/x/Feed",
		"https://f.example/Feedback":    "https://f.example/Feedback/Feed",
		"https://f.example/a%2Fb/Feed/": "https://f.example/a%2Fb/Feed/Feed",
	} {
		got, err := endpoint(in, "Feed")
		if err != nil || got != want {
			t.Errorf("endpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// waitABit sleeps briefly between polls of a condition (never as an
// assertion: the test's own deadline bounds the wait).
func waitABit(t *testing.T) {
	t.Helper()
	select {
	case <-time.After(5 * time.Millisecond):
	case <-t.Context().Done():
		t.Fatal("test ended while waiting")
	}
}

func TestRunPolls(t *testing.T) {
	// Without Pub/Sub, the verifier asks the feed after PollInterval of
	// silence, and then takes every epoch the feed has.
	s := newHonest(t)
	srv := httptest.NewServer(s)
	defer srv.Close()
	v := openTest(t, s, t.TempDir(), func(c *Config) {
		c.FeedURL, c.RatifyURL = srv.URL, srv.URL
		c.PollInterval = 10 * time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx, nil) }()
	s.waitRatified(t, 1)
	scenario(s)
	s.waitRatified(t, s.epochs())
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkCosigned(t, v, s)
}

func TestRatifyNewestFirst(t *testing.T) {
	// Cosignatures made while Ratify was unreachable (or before Run) are
	// sent newest first, then the rest, and survive a restart.
	s := newHonest(t)
	scenario(s)
	srv := httptest.NewServer(s)
	defer srv.Close()
	dir := t.TempDir()
	mod := func(c *Config) { c.FeedURL, c.RatifyURL, c.PollInterval = srv.URL, srv.URL, 1<<40 }
	v := openTest(t, s, dir, mod)
	verifyAll(t, v, s)
	v.Close()
	v = openTest(t, s, dir, mod)
	if st := v.Status(); st.RatifyQueue != int(s.epochs()) {
		t.Fatalf("queue of %d after restart, want %d", st.RatifyQueue, s.epochs())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx, nil) }()
	first := <-s.ratifyCh
	s.waitRatified(t, s.epochs())
	for v.Status().RatifyQueue != 0 {
		waitABit(t)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if first != s.epochs()-1 {
		t.Fatalf("first ratified epoch %d, want the newest, %d", first, s.epochs()-1)
	}
}
