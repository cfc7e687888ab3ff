// Package treetest is the conformance suite for tree.Store implementations:
// every backend (memory, the embedded on-disk store, Spanner) runs Run and
// must pass all of it. It uses only the Store interface and the public Tree
// API, never a backend's internals.
//
// Each promise in the tree.Store documentation has a subtest: fresh-store
// state and version errors, exact node round trips, versioned reads against
// a model over many versions, invisibility of uncommitted writes,
// idempotent rewrites, commit atomicity under concurrent readers,
// crash-before-commit and reopen, Discard (which must not touch older
// versions), immutability of committed versions, large batched reads, and
// full tree runs with proofs through tree.Tree.
//
// Usage, in a backend's test:
//
//	func TestConformance(t *testing.T) {
//		treetest.Run(t, func(t *testing.T) (tree.Store, func() tree.Store) {
//			dir := t.TempDir()
//			s := mustOpen(t, dir)
//			reopen := func() tree.Store { s.Close(); s = mustOpen(t, dir); return s }
//			t.Cleanup(func() { s.Close() })
//			return s, reopen
//		})
//	}
package treetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/conifer-kt/conifer/tree"
)

// Opener returns a new, empty store for one subtest, and a reopen function
// that closes it without committing anything pending (as a crash or
// restart would) and opens the same storage again. The suite never uses a
// store after reopening it. A backend without persistence may return the
// same store from reopen. The opener registers its own cleanup.
type Opener func(t *testing.T) (s tree.Store, reopen func() tree.Store)

// Run runs the whole conformance suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		f    func(*testing.T, Opener)
	}{
		{"Fresh", testFresh},
		{"NodeRoundTrip", testNodeRoundTrip},
		{"VersionedReads", testVersionedReads},
		{"Invisible", testInvisible},
		{"Idempotent", testIdempotent},
		{"CommitAtomic", testCommitAtomic},
		{"CrashBeforeCommit", testCrashBeforeCommit},
		{"Durable", testDurable},
		{"Discard", testDiscard},
		{"Immutable", testImmutable},
		{"LargeBatch", testLargeBatch},
		{"RejectsInvalid", testRejectsInvalid},
		{"TreeRun", testTreeRun},
		{"TreeCrash", testTreeCrash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.f(t, open) })
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

// randID returns a random position, often at the edges (depth 0, 255, 256).
func randID(r *rand.Rand) tree.NodeID {
	d := r.IntN(257)
	switch r.IntN(8) {
	case 0:
		d = 0
	case 1:
		d = 256
	case 2:
		d = 255
	}
	return tree.Position(randKey(r), d)
}

// randIDs returns n distinct random positions.
func randIDs(r *rand.Rand, n int) []tree.NodeID {
	seen := map[tree.NodeID]bool{}
	var ids []tree.NodeID
	for len(ids) < n {
		if id := randID(r); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// randNode returns a random valid node stored at id (Deleted rarely).
func randNode(r *rand.Rand, id tree.NodeID) tree.Node {
	// A key inside id's subtree.
	k := randKey(r)
	for i := range int(id.Depth) {
		bit := id.Prefix[i/8] & (0x80 >> (i % 8))
		k[i/8] = k[i/8]&^(0x80>>(i%8)) | bit
	}
	switch x := r.IntN(10); {
	case x < 1:
		return tree.Node{ID: id, Kind: tree.Deleted}
	case x < 5 && id.Depth < 256:
		bd := int(id.Depth) + r.IntN(256-int(id.Depth))
		if r.IntN(2) == 0 {
			bd = int(id.Depth)
		}
		return tree.Node{ID: id, Kind: tree.Internal, Branch: tree.Position(k, bd), Left: randHash(r), Right: randHash(r)}
	default:
		return tree.Node{ID: id, Kind: tree.Leaf, Key: k, Value: randHash(r)}
	}
}

// model is the expected content of every version: state[v] maps each
// position to its visible node (absent positions omitted).
type model struct {
	state []map[tree.NodeID]tree.Node
}

func newModel() *model { return &model{state: []map[tree.NodeID]tree.Node{{}}} }

func (m *model) commit(nodes []tree.Node) {
	next := maps.Clone(m.state[len(m.state)-1])
	for _, n := range nodes {
		if n.Kind == tree.Deleted {
			delete(next, n.ID)
		} else {
			next[n.ID] = n
		}
	}
	m.state = append(m.state, next)
}

// check reads ids at every version and compares with the model.
func (m *model) check(t *testing.T, s tree.Store, ids []tree.NodeID) {
	t.Helper()
	for v := range m.state {
		checkRead(t, s, uint64(v), ids, m.state[v])
	}
}

func checkRead(t *testing.T, s tree.Store, v uint64, ids []tree.NodeID, want map[tree.NodeID]tree.Node) {
	t.Helper()
	got, err := s.ReadNodes(ctx, v, ids)
	if err != nil {
		t.Fatalf("ReadNodes(%d): %v", v, err)
	}
	if len(got) != len(ids) {
		t.Fatalf("ReadNodes(%d) returned %d nodes for %d ids", v, len(got), len(ids))
	}
	for i, id := range ids {
		w, ok := want[id]
		if !ok {
			w = tree.Node{ID: id}
		}
		if got[i] != w {
			t.Fatalf("ReadNodes(%d) at %v = %+v, want %+v", v, id, got[i], w)
		}
	}
}

func mustWrite(t *testing.T, s tree.Store, v uint64, nodes []tree.Node) {
	t.Helper()
	for len(nodes) > 0 {
		n := min(len(nodes), tree.MaxWriteBatch)
		if err := s.WriteNodes(ctx, v, nodes[:n]); err != nil {
			t.Fatalf("WriteNodes(%d): %v", v, err)
		}
		nodes = nodes[n:]
	}
}

func mustCommit(t *testing.T, s tree.Store, v uint64, root tree.Hash) {
	t.Helper()
	if err := s.Commit(ctx, v, root); err != nil {
		t.Fatalf("Commit(%d): %v", v, err)
	}
}

func checkLatest(t *testing.T, s tree.Store, wantV uint64, wantRoot tree.Hash) {
	t.Helper()
	v, root, err := s.Latest(ctx)
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	if v != wantV || root != wantRoot {
		t.Fatalf("Latest = %d, %v; want %d, %v", v, root, wantV, wantRoot)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// rootOf is a stand-in root for version v in store-level tests (the store
// does not check roots).
func rootOf(v uint64) tree.Hash {
	var h tree.Hash
	h[0], h[1] = 0xc0, byte(v)
	h[31] = byte(v >> 8)
	return h
}

func testFresh(t *testing.T, open Opener) {
	s, _ := open(t)
	checkLatest(t, s, 0, tree.Empty)
	r := rand.New(rand.NewPCG(1, 1))
	ids := []tree.NodeID{{}, randID(r), randID(r), {}}
	checkRead(t, s, 0, ids, nil)
	_, err := s.ReadNodes(ctx, 1, ids)
	wantErr(t, "ReadNodes(1) on a fresh store", err, tree.ErrNotCommitted)
	if err := s.Commit(ctx, 0, tree.Empty); err != nil {
		t.Fatalf("repeating the genesis commit: %v", err)
	}
	wantErr(t, "Commit(0) with another root", s.Commit(ctx, 0, rootOf(0)), tree.ErrCommitted)
	wantErr(t, "WriteNodes(0)", s.WriteNodes(ctx, 0, []tree.Node{randNode(r, ids[1])}), tree.ErrCommitted)
	wantErr(t, "WriteNodes(2)", s.WriteNodes(ctx, 2, []tree.Node{randNode(r, ids[1])}), tree.ErrVersionGap)
	wantErr(t, "Commit(2)", s.Commit(ctx, 2, rootOf(2)), tree.ErrVersionGap)
	wantErr(t, "Discard(0)", s.Discard(ctx, 0), tree.ErrCommitted)
	if err := s.Discard(ctx, 1); err != nil {
		t.Fatalf("Discard(1) with nothing written: %v", err)
	}
	if err := s.WriteNodes(ctx, 1, nil); err != nil {
		t.Fatalf("WriteNodes with no nodes: %v", err)
	}
	// A version may be committed with no nodes at all.
	mustCommit(t, s, 1, rootOf(1))
	checkLatest(t, s, 1, rootOf(1))
	checkRead(t, s, 1, ids, nil)
}

func testNodeRoundTrip(t *testing.T, open Opener) {
	s, _ := open(t)
	var ones [32]byte
	for i := range ones {
		ones[i] = 0xff
	}
	h := tree.Hash{0x11}
	nodes := []tree.Node{
		{ID: tree.NodeID{}, Kind: tree.Internal, Branch: tree.NodeID{Depth: 9, Prefix: [32]byte{0x12, 0x80}}, Left: h, Right: tree.Hash{0x22}},
		{ID: tree.NodeID{Depth: 1}, Kind: tree.Leaf, Key: tree.Key{0x01}, Value: h},
		{ID: tree.NodeID{Depth: 2}, Kind: tree.Leaf, Key: tree.Key{0x02}, Value: h},
		{ID: tree.NodeID{Depth: 256, Prefix: ones}, Kind: tree.Leaf, Key: ones, Value: tree.Hash{0x33}},
		{ID: tree.Position(ones, 255), Kind: tree.Internal, Branch: tree.Position(ones, 255), Left: h, Right: h},
		{ID: tree.Position(ones, 8), Kind: tree.Internal, Branch: tree.Position(ones, 200), Left: h, Right: tree.Hash{0x44}},
		{ID: tree.Position(ones, 7), Kind: tree.Deleted},
	}
	mustWrite(t, s, 1, nodes)
	mustCommit(t, s, 1, rootOf(1))
	m := newModel()
	m.commit(nodes)
	ids := []tree.NodeID{{Depth: 3}, {Depth: 256}, tree.Position(ones, 254), tree.Position(ones, 9)}
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	m.check(t, s, ids)
	// Random nodes of every kind and depth.
	r := rand.New(rand.NewPCG(2, 2))
	var more []tree.Node
	pool := randIDs(r, 500)
	for _, id := range pool {
		more = append(more, randNode(r, id))
	}
	mustWrite(t, s, 2, more)
	mustCommit(t, s, 2, rootOf(2))
	m.commit(more)
	m.check(t, s, slices.Concat(ids, pool))
}

func testVersionedReads(t *testing.T, open Opener) {
	s, _ := open(t)
	r := rand.New(rand.NewPCG(3, 3))
	pool := randIDs(r, 300)
	m := newModel()
	for v := uint64(1); v <= 40; v++ {
		var nodes []tree.Node
		written := map[tree.NodeID]bool{}
		if v%7 != 0 { // some versions write nothing
			for range r.IntN(60) {
				id := pool[r.IntN(len(pool))]
				if !written[id] {
					written[id] = true
					nodes = append(nodes, randNode(r, id))
				}
			}
		}
		mustWrite(t, s, v, nodes)
		// Reads while a version is being written, and right after it is
		// committed, at the latest version and an older one (a store may
		// cache what it reads).
		old := uint64(r.IntN(int(v)))
		checkRead(t, s, v-1, pool, m.state[v-1])
		checkRead(t, s, old, pool[:100], m.state[old])
		mustCommit(t, s, v, rootOf(v))
		m.commit(nodes)
		checkRead(t, s, v, pool, m.state[v])
		checkRead(t, s, old, pool[100:], m.state[old])
	}
	checkLatest(t, s, 40, rootOf(40))
	m.check(t, s, pool)
	// Repeated and shuffled ids.
	ids := slices.Concat(pool, pool[:50])
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	m.check(t, s, ids)
}

func testInvisible(t *testing.T, open Opener) {
	s, _ := open(t)
	r := rand.New(rand.NewPCG(4, 4))
	m := newModel()
	ids := randIDs(r, 50)
	var first []tree.Node
	for _, id := range ids {
		first = append(first, tree.Node{ID: id, Kind: tree.Leaf, Key: keyIn(r, id), Value: randHash(r)})
	}
	mustWrite(t, s, 1, first)
	mustCommit(t, s, 1, rootOf(1))
	m.commit(first)
	var second []tree.Node
	for _, id := range ids[:30] {
		second = append(second, randNode(r, id))
	}
	mustWrite(t, s, 2, second)
	checkLatest(t, s, 1, rootOf(1))
	m.check(t, s, ids)
	_, err := s.ReadNodes(ctx, 2, ids)
	wantErr(t, "ReadNodes(2) before Commit(2)", err, tree.ErrNotCommitted)
	mustCommit(t, s, 2, rootOf(2))
	m.commit(second)
	m.check(t, s, ids)
}

func keyIn(r *rand.Rand, id tree.NodeID) tree.Key {
	n := randNode(r, id)
	for n.Kind != tree.Leaf {
		n = randNode(r, id)
	}
	return n.Key
}

func testIdempotent(t *testing.T, open Opener) {
	s, _ := open(t)
	r := rand.New(rand.NewPCG(5, 5))
	ids := randIDs(r, 100)
	var nodes []tree.Node
	for _, id := range ids {
		nodes = append(nodes, randNode(r, id))
	}
	mustWrite(t, s, 1, nodes)
	mustWrite(t, s, 1, nodes) // a retried batch
	// Replacing nodes within the uncommitted version: the last write wins,
	// including a Deleted marker replaced by a node and the reverse.
	var replaced []tree.Node
	for _, n := range nodes[:40] {
		replaced = append(replaced, randNode(r, n.ID))
	}
	replaced = append(replaced, tree.Node{ID: nodes[41].ID, Kind: tree.Deleted})
	mustWrite(t, s, 1, replaced)
	mustCommit(t, s, 1, rootOf(1))
	mustCommit(t, s, 1, rootOf(1)) // a retried commit
	wantErr(t, "Commit(1) again with another root", s.Commit(ctx, 1, rootOf(7)), tree.ErrCommitted)
	want := map[tree.NodeID]tree.Node{}
	for _, n := range slices.Concat(nodes, replaced) {
		if n.Kind == tree.Deleted {
			delete(want, n.ID)
		} else {
			want[n.ID] = n
		}
	}
	checkRead(t, s, 1, ids, want)
	checkLatest(t, s, 1, rootOf(1))
}

// testCommitAtomic commits versions that rewrite every position while
// readers check that whatever version Latest reports is complete.
func testCommitAtomic(t *testing.T, open Opener) {
	s, _ := open(t)
	r := rand.New(rand.NewPCG(6, 6))
	ids := make([]tree.NodeID, 400)
	keys := make([]tree.Key, len(ids))
	for i := range ids {
		keys[i] = randKey(r)
		ids[i] = tree.Position(keys[i], 12+r.IntN(20))
	}
	valueFor := func(v uint64, i int) tree.Hash {
		return tree.Hash{byte(v), byte(v >> 8), byte(i), byte(i >> 8), 1}
	}
	versions := uint64(25)
	if testing.Short() {
		versions = 10
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 2 {
		wg.Go(func() {
			for !done.Load() {
				v, root, err := s.Latest(ctx)
				if err != nil {
					errs <- err
					return
				}
				if root != rootOf(v) && v != 0 {
					errs <- fmt.Errorf("latest version %d has the root of another version", v)
					return
				}
				got, err := s.ReadNodes(ctx, v, ids)
				if err != nil {
					errs <- fmt.Errorf("ReadNodes(%d) after Latest said %d: %w", v, v, err)
					return
				}
				for i := range got {
					want := tree.Node{ID: ids[i]}
					if v > 0 {
						want = tree.Node{ID: ids[i], Kind: tree.Leaf, Key: keys[i], Value: valueFor(v, i)}
					}
					if got[i] != want {
						errs <- fmt.Errorf("version %d partly visible: node %d is %+v", v, i, got[i])
						return
					}
				}
			}
		})
	}
	for v := uint64(1); v <= versions; v++ {
		nodes := make([]tree.Node, len(ids))
		for i := range ids {
			nodes[i] = tree.Node{ID: ids[i], Kind: tree.Leaf, Key: keys[i], Value: valueFor(v, i)}
		}
		// Several calls per version, as a big version would need.
		for c := range slices.Chunk(nodes, 90) {
			if err := s.WriteNodes(ctx, v, c); err != nil {
				t.Fatalf("WriteNodes(%d): %v", v, err)
			}
		}
		if err := s.Commit(ctx, v, rootOf(v)); err != nil {
			t.Fatalf("Commit(%d): %v", v, err)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// testCrashBeforeCommit writes a version, "crashes" (reopens without
// committing), and redoes the version with different content: nothing of
// the first attempt may become visible.
func testCrashBeforeCommit(t *testing.T, open Opener) {
	s, reopen := open(t)
	r := rand.New(rand.NewPCG(7, 7))
	m := newModel()
	pool := randIDs(r, 200)
	var a []tree.Node
	for _, id := range pool[:100] {
		a = append(a, randNode(r, id))
	}
	mustWrite(t, s, 1, a)
	mustCommit(t, s, 1, rootOf(1))
	m.commit(a)

	// The failed attempt: overwrites half of a, deletes some, adds more.
	var b []tree.Node
	for _, id := range pool[50:] {
		b = append(b, randNode(r, id))
	}
	for _, id := range pool[:10] {
		b = append(b, tree.Node{ID: id, Kind: tree.Deleted})
	}
	mustWrite(t, s, 2, b)
	s = reopen()
	checkLatest(t, s, 1, rootOf(1))
	m.check(t, s, pool)
	_, err := s.ReadNodes(ctx, 2, pool)
	wantErr(t, "ReadNodes(2) after the crash", err, tree.ErrNotCommitted)

	// The redo touches other positions.
	if err := s.Discard(ctx, 2); err != nil {
		t.Fatalf("Discard(2): %v", err)
	}
	var c []tree.Node
	for _, id := range pool[90:130] {
		c = append(c, randNode(r, id))
	}
	mustWrite(t, s, 2, c)
	mustCommit(t, s, 2, rootOf(2))
	m.commit(c)
	m.check(t, s, pool)
	s = reopen()
	checkLatest(t, s, 2, rootOf(2))
	m.check(t, s, pool)
}

// testDurable checks that committed versions survive a reopen (trivially
// true for a store without persistence, whose reopen returns it).
func testDurable(t *testing.T, open Opener) {
	s, reopen := open(t)
	r := rand.New(rand.NewPCG(8, 8))
	m := newModel()
	var ids []tree.NodeID
	for v := uint64(1); v <= 5; v++ {
		var nodes []tree.Node
		for range 30 {
			id := randID(r)
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
			if !slices.ContainsFunc(nodes, func(n tree.Node) bool { return n.ID == id }) {
				nodes = append(nodes, randNode(r, id))
			}
		}
		mustWrite(t, s, v, nodes)
		mustCommit(t, s, v, rootOf(v))
		m.commit(nodes)
		s = reopen()
		checkLatest(t, s, v, rootOf(v))
		m.check(t, s, ids)
	}
}

func testDiscard(t *testing.T, open Opener) {
	s, _ := open(t)
	r := rand.New(rand.NewPCG(9, 9))
	m := newModel()
	pool := randIDs(r, 120)
	var a []tree.Node
	for _, id := range pool[:80] {
		a = append(a, randNode(r, id))
	}
	mustWrite(t, s, 1, a)
	mustCommit(t, s, 1, rootOf(1))
	m.commit(a)
	for attempt := range 3 {
		// Overwrite committed positions (Discard must keep their version-1
		// nodes) and new ones, in several calls, some twice.
		var b []tree.Node
		for _, id := range pool[attempt*20 : attempt*20+60] {
			b = append(b, randNode(r, id))
		}
		mustWrite(t, s, 2, b[:30])
		mustWrite(t, s, 2, b)
		if err := s.Discard(ctx, 2); err != nil {
			t.Fatalf("Discard(2): %v", err)
		}
		checkLatest(t, s, 1, rootOf(1))
		m.check(t, s, pool)
	}
	if err := s.Discard(ctx, 2); err != nil {
		t.Fatalf("Discard(2) twice: %v", err)
	}
	if err := s.Discard(ctx, 9); err != nil {
		t.Fatalf("Discard(9): %v", err)
	}
	var c []tree.Node
	for _, id := range pool[70:] {
		c = append(c, randNode(r, id))
	}
	mustWrite(t, s, 2, c)
	mustCommit(t, s, 2, rootOf(2))
	m.commit(c)
	m.check(t, s, pool)
	wantErr(t, "Discard(2) after Commit(2)", s.Discard(ctx, 2), tree.ErrCommitted)
	m.check(t, s, pool)
}

func testImmutable(t *testing.T, open Opener) {
	s, _ := open(t)
	r := rand.New(rand.NewPCG(10, 10))
	m := newModel()
	pool := randIDs(r, 50)
	for v := uint64(1); v <= 3; v++ {
		var nodes []tree.Node
		for _, id := range pool {
			nodes = append(nodes, randNode(r, id))
		}
		mustWrite(t, s, v, nodes)
		mustCommit(t, s, v, rootOf(v))
		m.commit(nodes)
	}
	for v := uint64(0); v <= 3; v++ {
		wantErr(t, fmt.Sprintf("WriteNodes(%d)", v), s.WriteNodes(ctx, v, []tree.Node{randNode(r, pool[0])}), tree.ErrCommitted)
		wantErr(t, fmt.Sprintf("Discard(%d)", v), s.Discard(ctx, v), tree.ErrCommitted)
		if v < 3 {
			wantErr(t, fmt.Sprintf("Commit(%d)", v), s.Commit(ctx, v, rootOf(v)), tree.ErrCommitted)
		}
	}
	wantErr(t, "WriteNodes(5)", s.WriteNodes(ctx, 5, []tree.Node{randNode(r, pool[0])}), tree.ErrVersionGap)
	checkLatest(t, s, 3, rootOf(3))
	m.check(t, s, pool)
}

func testLargeBatch(t *testing.T, open Opener) {
	s, _ := open(t)
	r := rand.New(rand.NewPCG(11, 11))
	m := newModel()
	var ids []tree.NodeID
	for v := uint64(1); v <= 2; v++ {
		var nodes []tree.Node
		n := 15000
		if testing.Short() {
			n = 4000
		}
		for range n {
			id := tree.Position(randKey(r), 10+r.IntN(30))
			ids = append(ids, id)
			nodes = append(nodes, randNode(r, id))
		}
		slices.SortFunc(nodes, func(a, b tree.Node) int { return compareIDs(a.ID, b.ID) })
		nodes = slices.CompactFunc(nodes, func(a, b tree.Node) bool { return a.ID == b.ID })
		r.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		mustWrite(t, s, v, nodes)
		mustCommit(t, s, v, rootOf(v))
		m.commit(nodes)
	}
	for range 10000 {
		ids = append(ids, tree.Position(randKey(r), r.IntN(257)))
	}
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	m.check(t, s, ids) // one call per version, 40,000 ids each
}

func compareIDs(a, b tree.NodeID) int {
	if a.Depth != b.Depth {
		return int(a.Depth) - int(b.Depth)
	}
	return slices.Compare(a.Prefix[:], b.Prefix[:])
}

func testRejectsInvalid(t *testing.T, open Opener) {
	s, _ := open(t)
	id := tree.NodeID{Depth: 1, Prefix: [32]byte{0x80}}
	bad := []tree.Node{
		{ID: id},          // Absent is never written
		{ID: id, Kind: 9}, // unknown kind
		{ID: id, Kind: tree.Leaf, Key: tree.Key{0x01}}, // key outside the subtree
		{ID: tree.NodeID{Depth: 300}, Kind: tree.Deleted},
		{ID: id, Kind: tree.Internal, Branch: id, Left: tree.Empty, Right: tree.Hash{1}},
	}
	for _, n := range bad {
		if err := s.WriteNodes(ctx, 1, []tree.Node{n}); !errors.Is(err, tree.ErrMalformedNode) {
			t.Errorf("WriteNodes(%+v): %v, want ErrMalformedNode", n, err)
		}
	}
	if err := s.Discard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, 1, rootOf(1))
	checkRead(t, s, 1, []tree.NodeID{id, {Depth: 256}}, nil)
}

// treeModel drives a tree.Tree over the store and checks it against maps.
type treeModel struct {
	versions []map[tree.Key]tree.Hash
	roots    []tree.Hash
	keys     []tree.Key
}

func (tm *treeModel) randomChanges(r *rand.Rand, n int) []tree.Change {
	cur := tm.versions[len(tm.versions)-1]
	var ch []tree.Change
	seen := map[tree.Key]bool{}
	for range n {
		var k tree.Key
		if len(tm.keys) == 0 || r.IntN(10) < 6 {
			k = randKey(r)
			if r.IntN(10) == 0 && len(tm.keys) > 0 {
				k = tm.keys[r.IntN(len(tm.keys))]
				k[31] ^= byte(1 + r.IntN(255)) // a near neighbour
			}
			tm.keys = append(tm.keys, k)
		} else {
			k = tm.keys[r.IntN(len(tm.keys))]
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		_, present := cur[k]
		ch = append(ch, tree.Change{Key: k, Value: randHash(r), Remove: present && r.IntN(5) == 0})
	}
	return ch
}

func (tm *treeModel) apply(ch []tree.Change, root tree.Hash) {
	next := maps.Clone(tm.versions[len(tm.versions)-1])
	for _, c := range ch {
		if c.Remove {
			delete(next, c.Key)
		} else {
			next[c.Key] = c.Value
		}
	}
	tm.versions = append(tm.versions, next)
	tm.roots = append(tm.roots, root)
}

// check verifies, at every version, a proof for every key ever used and
// for random absent keys, and that Root and Get agree.
func (tm *treeModel) check(t *testing.T, tr *tree.Tree, r *rand.Rand) {
	t.Helper()
	for v, want := range tm.versions {
		root, err := tr.Root(ctx, uint64(v))
		if err != nil {
			t.Fatalf("Root(%d): %v", v, err)
		}
		if root != tm.roots[v] {
			t.Fatalf("Root(%d) = %v, committed %v", v, root, tm.roots[v])
		}
		probe := slices.Clone(tm.keys)
		for range 10 {
			probe = append(probe, randKey(r))
		}
		proofs, err := tr.ProveBatch(ctx, uint64(v), probe)
		if err != nil {
			t.Fatalf("ProveBatch(%d): %v", v, err)
		}
		for i, k := range probe {
			p, err := tree.ParseProof(proofs[i].Marshal())
			if err != nil {
				t.Fatalf("proof round trip: %v", err)
			}
			if value, ok := want[k]; ok {
				err = tree.VerifyInclusion(root, k, value, p)
			} else {
				err = tree.VerifyAbsence(root, k, p)
			}
			if err != nil {
				t.Fatalf("version %d, key %v: %v", v, k, err)
			}
		}
		for _, k := range probe[:min(len(probe), 20)] {
			value, found, err := tr.Get(ctx, uint64(v), k)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if w, ok := want[k]; found != ok || value != w {
				t.Fatalf("Get(%d, %v) = %v, %v; want %v, %v", v, k, value, found, w, ok)
			}
		}
	}
}

func testTreeRun(t *testing.T, open Opener) {
	s, reopen := open(t)
	r := rand.New(rand.NewPCG(12, 12))
	tr := tree.New(s)
	tm := &treeModel{versions: []map[tree.Key]tree.Hash{{}}, roots: []tree.Hash{tree.Empty}}
	versions := uint64(30)
	if testing.Short() {
		versions = 12
	}
	for v := uint64(0); v < versions; v++ {
		ch := tm.randomChanges(r, 1+r.IntN(80))
		root, err := tr.Update(ctx, v, ch)
		if err != nil {
			t.Fatalf("Update(%d): %v", v, err)
		}
		mustCommit(t, s, v+1, root)
		tm.apply(ch, root)
		if v == versions/2 {
			s = reopen()
			tr = tree.New(s)
		}
	}
	checkLatest(t, s, versions, tm.roots[versions])
	tm.check(t, tr, r)
}

// testTreeCrash runs Update for a version, reopens without committing,
// and runs Update again for the same version with other changes.
func testTreeCrash(t *testing.T, open Opener) {
	s, reopen := open(t)
	r := rand.New(rand.NewPCG(13, 13))
	tr := tree.New(s)
	tm := &treeModel{versions: []map[tree.Key]tree.Hash{{}}, roots: []tree.Hash{tree.Empty}}
	versions := uint64(6)
	if testing.Short() {
		versions = 3
	}
	for v := uint64(0); v < versions; v++ {
		// A failed attempt first, then a restart.
		if _, err := tr.Update(ctx, v, tm.randomChanges(r, 200)); err != nil {
			t.Fatalf("Update(%d), first attempt: %v", v, err)
		}
		s = reopen()
		tr = tree.New(s)
		ch := tm.randomChanges(r, 50+r.IntN(50))
		root, err := tr.Update(ctx, v, ch)
		if err != nil {
			t.Fatalf("Update(%d): %v", v, err)
		}
		mustCommit(t, s, v+1, root)
		tm.apply(ch, root)
	}
	tm.check(t, tr, r)
}
