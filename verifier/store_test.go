package verifier

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/compact"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/statemachine"
)

func openTestDB(t *testing.T) *stateDB {
	t.Helper()
	db, err := openStateDB(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.close() })
	return db
}

// TestLatestModel commits random user changes over many epochs and
// compares Latest at every epoch with a plain map model.
func TestLatestModel(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	const users, epochs = 40, 60
	// model[e][i] is user i's state after epoch e (nil: none yet).
	model := make([][]*statemachine.Latest, epochs)
	cur := make([]*statemachine.Latest, users)
	idx := func(i int) [32]byte { return indexOf(i) }
	for e := range uint64(epochs) {
		c := &epochCommit{epoch: e, record: epochRecord{head: []byte{byte(e)}, note: []byte("note")}}
		if e > 0 {
			for range rng.IntN(12) {
				i := rng.IntN(users)
				leaf := make([]byte, leafLen)
				binary.BigEndian.PutUint64(leaf, rng.Uint64())
				se := binary.BigEndian.AppendUint64(nil, rng.Uint64())[:1+rng.IntN(8)]
				c.users = append(c.users, statemachine.Applied{Index: idx(i), LeafRecord: leaf, SignedEntry: se})
				cur[i] = &statemachine.Latest{LeafRecord: leaf, SignedEntry: se} // the last one of the epoch wins
			}
		}
		if err := db.commitEpoch(c); err != nil {
			t.Fatal(err)
		}
		model[e] = slices.Clone(cur)
	}
	var all [][32]byte
	for i := range users + 5 { // and some that never existed
		all = append(all, idx(i))
	}
	slices.SortFunc(all, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	for e := range uint64(epochs) {
		sub := all[:0:0]
		for _, x := range all {
			if rng.IntN(3) > 0 {
				sub = append(sub, x)
			}
		}
		got, err := db.Latest(ctx, e, sub)
		if err != nil {
			t.Fatal(err)
		}
		want := map[[32]byte]statemachine.Latest{}
		for i := range users {
			if l := model[e][i]; l != nil && slices.Contains(sub, idx(i)) {
				want[idx(i)] = *l
			}
		}
		if !mapsEqual(got, want) {
			t.Fatalf("epoch %d: Latest differs from the model", e)
		}
	}
	if n, err := db.size(); err != nil || n != epochs {
		t.Fatalf("size = %d, %v", n, err)
	}
}

// TestLogNodes builds the epoch log through the state database and
// compares every root with checkpoint.MemoryLog.
func TestLogNodes(t *testing.T) {
	db := openTestDB(t)
	ref := checkpoint.NewMemoryLog()
	for n := range uint64(70) {
		leaf := checkpoint.LeafHash(binary.BigEndian.AppendUint64(nil, n))
		nodes, root, err := checkpoint.AppendLeaf(n, leaf, db)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ref.Append(leaf)
		if root != want {
			t.Fatalf("size %d: root differs", n+1)
		}
		if err := db.commitEpoch(&epochCommit{epoch: n, nodes: nodes}); err != nil {
			t.Fatal(err)
		}
		got, err := checkpoint.Root(n+1, db)
		if err != nil || got != want {
			t.Fatalf("size %d: stored root differs (%v)", n+1, err)
		}
	}
	if _, err := db.ReadHashes([]compact.NodeID{{Level: 0, Index: 70}}); err == nil {
		t.Fatal("read a node never written")
	}
}

func TestEpochRecordRoundTrip(t *testing.T) {
	e := &epochRecord{digest: [32]byte{1, 2}, head: []byte("head"), note: []byte("note\n\n— sig\n")}
	got, err := parseEpochRecord(e.marshal())
	if err != nil || got.digest != e.digest || !bytes.Equal(got.head, e.head) || !bytes.Equal(got.note, e.note) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	b := e.marshal()
	for i := range len(b) {
		if _, err := parseEpochRecord(b[:i]); err == nil {
			t.Fatalf("truncated at %d: parsed", i)
		}
	}
	if _, err := parseEpochRecord(append(b, 0)); err == nil {
		t.Fatal("trailing byte: parsed")
	}
}

func FuzzParseEpochRecord(f *testing.F) {
	f.Add((&epochRecord{head: []byte("h"), note: []byte("n")}).marshal())
	f.Add((&epochRecord{}).marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEpochRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.marshal(), b) {
			t.Fatal("encode(parse(b)) != b")
		}
		e2, err := parseEpochRecord(e.marshal())
		if err != nil || e2.digest != e.digest || !bytes.Equal(e2.head, e.head) || !bytes.Equal(e2.note, e.note) {
			t.Fatal("parse(encode(x)) != x")
		}
	})
}

func FuzzParseMeta(f *testing.F) {
	f.Add(meta{testRealm, "example.com/conifer+01020304+AQ==", verifierName}.marshal())
	f.Add(meta{}.marshal())
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMeta(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.marshal(), b) {
			t.Fatal("encode(parse(b)) != b")
		}
		if m2, err := parseMeta(m.marshal()); err != nil || m2 != m {
			t.Fatal("parse(encode(x)) != x")
		}
	})
}
