package spanstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
	"github.com/conifer-kt/conifer/tree"
)

// TestQueryReads checks the tree read meant for real Spanner (one query,
// a seek per position) against the emulator's key-range read, on a tree
// built over several versions with updates and removals.
func TestQueryReads(t *testing.T) {
	ctx := context.Background()
	db := spantest.NewDatabase(t)
	ranged := spantest.Open(t, db, nil)
	queried := spantest.Open(t, db, nil)
	spanstore.SetQueryReads(queried, true)
	tr := tree.New(ranged.Tree())
	r := rand.New(rand.NewPCG(3, 4))
	var keys []tree.Key
	var ids []tree.NodeID
	for v := uint64(0); v < 4; v++ {
		var ch []tree.Change
		for range 30 {
			var k tree.Key
			for i := range k {
				k[i] = byte(r.Uint32())
			}
			k[0] &= 0x0f // shared prefixes: deeper branch points
			keys = append(keys, k)
			ch = append(ch, tree.Change{Key: k, Value: tree.Hash{byte(v), 1}})
		}
		if v > 1 { // remove a few: deletion markers
			for _, k := range keys[:3] {
				if !slices.ContainsFunc(ch, func(c tree.Change) bool { return c.Key == k }) {
					ch = append(ch, tree.Change{Key: k, Remove: true})
				}
			}
			keys = keys[3:]
		}
		root, err := tr.Update(ctx, v, ch)
		if err != nil {
			t.Fatal(err)
		}
		if err := ranged.Tree().Commit(ctx, v+1, root); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		for d := 0; d <= 256; d += 1 + r.IntN(12) {
			ids = append(ids, tree.Position(k, d))
		}
	}
	ids = append(ids, tree.NodeID{}, ids[0]) // the root, and a repeat
	for v := uint64(0); v <= 4; v++ {
		a, err := ranged.Tree().ReadNodes(ctx, v, ids)
		if err != nil {
			t.Fatal(err)
		}
		b, err := queried.Tree().ReadNodes(ctx, v, ids)
		if err != nil {
			t.Fatal(err)
		}
		present := 0
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("version %d, %v: ranged read %+v, query %+v", v, ids[i], a[i], b[i])
			}
			if a[i].Kind != tree.Absent {
				present++
			}
		}
		if v > 0 && present == 0 {
			t.Fatalf("version %d: no node found; the comparison proves nothing", v)
		}
	}
	if _, err := queried.Tree().ReadNodes(ctx, 5, ids[:1]); err == nil {
		t.Error("query read at an uncommitted version succeeded")
	}
}

func FuzzParseSignatureLine(f *testing.F) {
	f.Add([]byte("— verifier.example/v1 zmcbWgAAAABpVbkAQdRPopWMr5a4tt1cOHypTAIO8nKu+sbbiovAm8WaTZmq1tbOdLEl3Q4sym9PrKFSyw7ucBY6/f60hI7PUZbfCQ==\n"))
	f.Add([]byte("— a AQIDBAU=\n"))
	f.Add([]byte("— a AQIDBAU\n"))
	f.Add([]byte("— a  AQIDBAU=\n"))
	f.Add([]byte("- a AQIDBAU=\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		name, sig, err := spanstore.ParseSignatureLine(line)
		if err != nil {
			return
		}
		again := []byte("— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
		if !bytes.Equal(again, line) {
			t.Fatalf("parse(%q) re-encodes as %q", line, again)
		}
	})
}

func FuzzPosition(f *testing.F) {
	f.Add(spanstore.EncodePosition(tree.NodeID{}))
	f.Add(spanstore.EncodePosition(tree.Position(tree.Key{0xff, 0x80}, 9)))
	f.Add(spanstore.EncodePosition(tree.Position(tree.Key{0xff, 0x80}, 256)))
	f.Add(append(bytes.Repeat([]byte{0xff}, 32), 0, 0)) // the marker: not a position
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := spanstore.DecodePosition(b)
		if err != nil {
			return
		}
		if got := spanstore.EncodePosition(id); !bytes.Equal(got, b) {
			t.Fatalf("decode(%x) re-encodes as %x", b, got)
		}
	})
}
