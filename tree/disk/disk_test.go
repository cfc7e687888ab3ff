package disk

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/tree/treetest"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	treetest.Run(t, func(t *testing.T) (tree.Store, func() tree.Store) {
		dir := t.TempDir()
		s := open(t, dir)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s, func() tree.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, dir)
			return s
		}
	})
}

// TestCrash simulates power loss at each durable step on a file system
// that keeps only what was synced (plus a random share of what was not):
// before Commit, after Commit, and during a Discard. After every crash the
// store must reopen at a committed version with exactly its content,
// and a redone version must show nothing of the lost attempt.
func TestCrash(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fs := vfs.NewCrashableMem()
	s, err := openFS("db", fs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tr := tree.New(s)
	models := []map[tree.Key]tree.Hash{{}}
	roots := []tree.Hash{tree.Empty}
	var keys []tree.Key

	// crash opens a crash-time copy of the store and checks it holds
	// version want exactly, then redoes version want+1 there.
	crash := func(want uint64, step string) {
		t.Helper()
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: r.IntN(101), RNG: rand.New(rand.NewPCG(r.Uint64(), 0))})
		c, err := openFS("db", clone)
		if err != nil {
			t.Fatalf("%s: reopen after crash: %v", step, err)
		}
		defer c.Close()
		v, root, err := c.Latest(ctx)
		if err != nil || v != want || root != roots[want] {
			t.Fatalf("%s: after crash Latest = %d, %v, %v; want %d, %v", step, v, root, err, want, roots[want])
		}
		ctr := tree.New(c)
		checkTree(t, ctr, want, roots[want], models[want], keys)
		ch := []tree.Change{{Key: randKey(r), Value: randHash(r)}}
		next := maps.Clone(models[want])
		next[ch[0].Key] = ch[0].Value
		redo, err := ctr.Update(ctx, want, ch)
		if err != nil {
			t.Fatalf("%s: redo after crash: %v", step, err)
		}
		if err := c.Commit(ctx, want+1, redo); err != nil {
			t.Fatal(err)
		}
		checkTree(t, ctr, want+1, redo, next, append(keys, ch[0].Key))
	}

	versions := uint64(8)
	if testing.Short() {
		versions = 3
	}
	for v := uint64(0); v < versions; v++ {
		var ch []tree.Change
		for range 300 {
			k := randKey(r)
			if len(keys) > 0 && r.IntN(4) == 0 {
				k = keys[r.IntN(len(keys))]
			}
			if !slices.ContainsFunc(ch, func(c tree.Change) bool { return c.Key == k }) {
				keys = append(keys, k)
				_, present := models[v][k]
				ch = append(ch, tree.Change{Key: k, Value: randHash(r), Remove: present && r.IntN(6) == 0})
			}
		}
		// A failed attempt, discarded by the next Update, with a crash in between.
		if _, err := tr.Update(ctx, v, ch[:100]); err != nil {
			t.Fatal(err)
		}
		crash(v, fmt.Sprintf("version %d, after a failed attempt", v+1))
		root, err := tr.Update(ctx, v, ch)
		if err != nil {
			t.Fatal(err)
		}
		crash(v, fmt.Sprintf("version %d, before commit", v+1))
		if err := s.Commit(ctx, v+1, root); err != nil {
			t.Fatal(err)
		}
		next := maps.Clone(models[v])
		for _, c := range ch {
			if c.Remove {
				delete(next, c.Key)
			} else {
				next[c.Key] = c.Value
			}
		}
		models, roots = append(models, next), append(roots, root)
		crash(v+1, fmt.Sprintf("version %d, after commit", v+1))
	}
}

var ctx = context.Background()

func randKey(r *rand.Rand) tree.Key {
	var k tree.Key
	for i := range k {
		k[i] = byte(r.Uint32())
	}
	return k
}

func randHash(r *rand.Rand) tree.Hash { return tree.Hash(randKey(r)) }

// checkTree verifies proofs of keys (present or not) at version v.
func checkTree(t *testing.T, tr *tree.Tree, v uint64, root tree.Hash, model map[tree.Key]tree.Hash, keys []tree.Key) {
	t.Helper()
	if got, err := tr.Root(ctx, v); err != nil || got != root {
		t.Fatalf("Root(%d) = %v, %v; want %v", v, got, err, root)
	}
	proofs, err := tr.ProveBatch(ctx, v, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if value, ok := model[k]; ok {
			err = tree.VerifyInclusion(root, k, value, proofs[i])
		} else {
			err = tree.VerifyAbsence(root, k, proofs[i])
		}
		if err != nil {
			t.Fatalf("version %d, key %v: %v", v, k, err)
		}
	}
}
