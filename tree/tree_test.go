package tree

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"testing"
)

var ctx = context.Background()

func randKey(r *rand.Rand) Key {
	var k Key
	for i := 0; i < 32; i += 8 {
		x := r.Uint64()
		for j := range 8 {
			k[i+j] = byte(x >> (8 * j))
		}
	}
	return k
}

func randHash(r *rand.Rand) Hash { return Hash(randKey(r)) }

// flip returns k with bit i inverted.
func flip(k Key, i int) Key {
	k[i/8] ^= 0x80 >> (i % 8)
	return k
}

func valueOf(i, version int) Hash {
	return sha256.Sum256(fmt.Appendf(nil, "value %d at %d", i, version))
}

// update runs Update and Commit, failing the test on error.
func update(t testing.TB, tr *Tree, s Store, base uint64, ch []Change) Hash {
	t.Helper()
	root, err := tr.Update(ctx, base, ch)
	if err != nil {
		t.Fatalf("Update(%d): %v", base, err)
	}
	if err := s.Commit(ctx, base+1, root); err != nil {
		t.Fatalf("Commit(%d): %v", base+1, err)
	}
	return root
}

// applyModel returns m with ch applied.
func applyModel(m map[Key]Hash, ch []Change) map[Key]Hash {
	out := maps.Clone(m)
	if out == nil {
		out = make(map[Key]Hash)
	}
	for _, c := range ch {
		if c.Remove {
			delete(out, c.Key)
		} else {
			out[c.Key] = c.Value
		}
	}
	return out
}

// checkProof proves key at v and checks the proof against the model and
// the root, by verification and, if exact, against the reference proof.
func checkProof(t testing.TB, tr *Tree, v uint64, root Hash, model map[Key]Hash, key Key, exact bool) {
	t.Helper()
	p, err := tr.Prove(ctx, v, key)
	if err != nil {
		t.Fatalf("Prove(%d, %v): %v", v, key, err)
	}
	q, err := ParseProof(p.Marshal())
	if err != nil {
		t.Fatalf("ParseProof(Marshal()) of %v proof at depth %d: %v", p.Kind, p.Depth(), err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("proof changed in Marshal/ParseProof round trip")
	}
	if exact {
		if want := refProof(model, key); !reflect.DeepEqual(p, want) {
			t.Fatalf("Prove(%d, %v) = %+v, reference says %+v", v, key, p, want)
		}
	}
	value, found, err := tr.Get(ctx, v, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want, ok := model[key]
	if found != ok || value != want {
		t.Fatalf("Get(%d, %v) = %v, %v; want %v, %v", v, key, value, found, want, ok)
	}
	if ok {
		if err := VerifyInclusion(root, key, want, p); err != nil {
			t.Fatalf("VerifyInclusion(%v) at version %d: %v", key, v, err)
		}
		if err := VerifyAbsence(root, key, p); err == nil {
			t.Fatalf("VerifyAbsence accepted an inclusion proof")
		}
		if err := VerifyInclusion(root, key, flipHash(want), p); err == nil {
			t.Fatalf("VerifyInclusion accepted a wrong value")
		}
	} else {
		if err := VerifyAbsence(root, key, p); err != nil {
			t.Fatalf("VerifyAbsence(%v) at version %d: %v", key, v, err)
		}
		if err := VerifyInclusion(root, key, Hash{}, p); err == nil {
			t.Fatalf("VerifyInclusion accepted an absence proof")
		}
	}
}

func flipHash(h Hash) Hash {
	h[31] ^= 1
	return h
}

// checkStructure compares the nodes stored at v with the reference.
func checkStructure(t testing.TB, s *MemoryStore, v uint64, model map[Key]Hash) {
	t.Helper()
	got := make(map[NodeID]Node)
	for _, n := range s.nodesAt(v) {
		got[n.ID] = n
	}
	want := refNodes(model)
	if !maps.Equal(got, want) {
		for id, n := range want {
			if got[id] != n {
				t.Errorf("at %v: stored %+v, want %+v", id, got[id], n)
			}
		}
		for id, n := range got {
			if _, ok := want[id]; !ok {
				t.Errorf("at %v: stored %+v, want nothing", id, n)
			}
		}
		t.FailNow()
	}
}

func TestHashes(t *testing.T) {
	var k Key
	var v Hash
	for i := range k {
		k[i], v[i] = byte(i), byte(100+i)
	}
	if got, want := LeafHash(k, v), Hash(sha256.Sum256(slices.Concat([]byte{0}, k[:], v[:]))); got != want {
		t.Errorf("LeafHash = %v, want %v", got, want)
	}
	if got, want := NodeHash(Hash(k), v), Hash(sha256.Sum256(slices.Concat([]byte{1}, k[:], v[:]))); got != want {
		t.Errorf("NodeHash = %v, want %v", got, want)
	}
	if got, want := Empty, Hash(sha256.Sum256([]byte("\x02conifer/tree/empty/v1"))); got != want {
		t.Errorf("Empty = %v, want %v", got, want)
	}
	// Fixed so that a change to the constant is a deliberate, visible one.
	if got, want := Empty.String(), "707e52ff5a174a3572bc3156d4b3afeb34f1f0ff64ca71e19b3edec891afec5b"; got != want {
		t.Logf("Empty = %s (update the constant if the definition changed on purpose)", got)
		t.Errorf("Empty = %s, want %s", got, want)
	}
}

func TestBits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a := randKey(r)
		b := a
		n := r.IntN(257)
		if n < 256 {
			b = flip(a, n)
			for i := n + 1; i < 256; i++ {
				if r.IntN(2) == 0 {
					b = flip(b, i)
				}
			}
		}
		aa, bb := [32]byte(a), [32]byte(b)
		if got := commonPrefix(&aa, &bb); got != n {
			t.Fatalf("commonPrefix = %d, want %d", got, n)
		}
		d := r.IntN(257)
		if got, want := Position(a, d), refPos(a, d); got != want {
			t.Fatalf("Position(%v, %d) = %v, want %v", a, d, got, want)
		}
		id := Position(a, d)
		if !paddingZero(&id.Prefix, d) || id.Check() != nil || !id.Contains(a) {
			t.Fatalf("Position(%v, %d) = %v is not canonical", a, d, id)
		}
		if d < 256 {
			if c := id.Child(uint8(refBit(a, d))); c != Position(a, d+1) {
				t.Fatalf("Child = %v, want %v", c, Position(a, d+1))
			}
			if id.Contains(flip(a, d)) != true || Position(a, d+1).Contains(flip(a, d)) {
				t.Fatalf("Contains is wrong at depth %d", d)
			}
			if bad := setBit(id.Prefix, d); paddingZero(&bad, d) {
				t.Fatalf("paddingZero missed bit %d", d)
			}
		}
	}
}

// collidingKeys returns keys that share long prefixes: the first differs
// from the others at bits 255, 254, 200, 129, 128, 1 and 0, forcing deep
// chains, branch points at the bottom of the tree and leaves at depth 256.
func collidingKeys(n int) []Key {
	var base Key
	for i := range base {
		base[i] = byte(0x5a ^ i*7)
	}
	all := []Key{base, flip(base, 255), flip(base, 254), flip(flip(base, 254), 255),
		flip(base, 200), flip(base, 0), flip(flip(base, 0), 255), flip(base, 128), flip(base, 129)}
	return all[:n]
}

func subset(keys []Key, mask, version int) map[Key]Hash {
	m := make(map[Key]Hash)
	for i, k := range keys {
		if mask&(1<<i) != 0 {
			m[k] = valueOf(i, version)
		}
	}
	return m
}

// TestExhaustiveSmall builds every subset of a set of colliding keys, in
// random orders and batch splits, and checks the root, every stored node
// and every proof against the reference.
func TestExhaustiveSmall(t *testing.T) {
	keys := collidingKeys(9)
	if testing.Short() {
		keys = keys[:7]
	}
	r := rand.New(rand.NewPCG(3, 4))
	probes := append(slices.Clone(keys), flip(keys[0], 253), flip(keys[0], 3), flip(keys[0], 130), randKey(r))
	for mask := range 1 << len(keys) {
		model := subset(keys, mask, 0)
		s := NewMemoryStore()
		tr := New(s)
		// Insert in a random order, in random batches.
		var ch []Change
		for k, v := range model {
			ch = append(ch, Change{Key: k, Value: v})
		}
		r.Shuffle(len(ch), func(i, j int) { ch[i], ch[j] = ch[j], ch[i] })
		var v uint64
		cur := map[Key]Hash{}
		for len(ch) > 0 {
			n := 1 + r.IntN(len(ch))
			update(t, tr, s, v, ch[:n])
			cur = applyModel(cur, ch[:n])
			ch = ch[n:]
			v++
			checkStructure(t, s, v, cur)
		}
		root, err := tr.Root(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if want := refRoot(model); root != want {
			t.Fatalf("subset %b: root %v, want %v", mask, root, want)
		}
		if _, latest, _ := s.Latest(ctx); latest != root {
			t.Fatalf("subset %b: committed root %v, computed %v", mask, latest, root)
		}
		for _, k := range probes {
			checkProof(t, tr, v, root, model, k, true)
		}
	}
}

// TestExhaustiveTransitions goes from every subset of colliding keys to
// every other in one update (inserting, removing and changing values), and
// checks the new version exactly and the old one is untouched.
func TestExhaustiveTransitions(t *testing.T) {
	keys := collidingKeys(5)
	if testing.Short() {
		keys = keys[:3]
	}
	probes := append(slices.Clone(keys), flip(keys[0], 253), flip(keys[0], 100))
	for from := range 1 << len(keys) {
		for to := range 1 << len(keys) {
			before := subset(keys, from, 0)
			after := subset(keys, to, 1)
			// Keep some values unchanged to exercise no-op writes.
			for i, k := range keys {
				if (from&to)&(1<<i) != 0 && i%2 == 0 {
					after[k] = before[k]
				}
			}
			s := NewMemoryStore()
			tr := New(s)
			var ch []Change
			for k, v := range before {
				ch = append(ch, Change{Key: k, Value: v})
			}
			root1 := update(t, tr, s, 0, ch)
			ch = ch[:0]
			for i, k := range keys {
				switch v, ok := after[k]; {
				case ok:
					ch = append(ch, Change{Key: k, Value: v})
				case i%3 == 0 || before[k] != (Hash{}):
					ch = append(ch, Change{Key: k, Remove: true}) // sometimes removing absent keys
				}
			}
			root2 := update(t, tr, s, 1, ch)
			if want := refRoot(after); root2 != want {
				t.Fatalf("%b→%b: root %v, want %v", from, to, root2, want)
			}
			checkStructure(t, s, 1, before)
			checkStructure(t, s, 2, after)
			for _, k := range probes {
				checkProof(t, tr, 1, root1, before, k, true)
				checkProof(t, tr, 2, root2, after, k, true)
			}
		}
	}
}

// TestRandomized compares the tree with a plain map over many versions of
// random inserts, updates and removals, checking every key's proof at
// every version (old ones too) and absence proofs for random keys.
func TestRandomized(t *testing.T) {
	versions, batch := 50, 60
	if testing.Short() {
		versions, batch = 20, 30
	}
	r := rand.New(rand.NewPCG(5, 6))
	s := NewMemoryStore()
	tr := New(s)
	models := []map[Key]Hash{{}}
	roots := []Hash{Empty}
	var keys []Key
	for v := range versions {
		cur := models[v]
		var ch []Change
		seen := make(map[Key]bool)
		for range r.IntN(batch) + 1 {
			var k Key
			switch x := r.IntN(10); {
			case x < 6 || len(keys) == 0:
				k = randKey(r)
				if r.IntN(8) == 0 && len(keys) > 0 {
					k = flip(keys[r.IntN(len(keys))], 200+r.IntN(56)) // a near neighbour
				}
				keys = append(keys, k)
			default:
				k = keys[r.IntN(len(keys))]
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			if r.IntN(10) < 2 {
				ch = append(ch, Change{Key: k, Remove: true})
			} else {
				ch = append(ch, Change{Key: k, Value: randHash(r)})
			}
		}
		root := update(t, tr, s, uint64(v), ch)
		next := applyModel(cur, ch)
		if want := refRoot(next); root != want {
			t.Fatalf("version %d: root %v, want %v", v+1, root, want)
		}
		models = append(models, next)
		roots = append(roots, root)
	}
	checkStructure(t, s, uint64(versions), models[versions])
	for v, model := range models {
		probe := slices.Clone(keys)
		for range 20 {
			probe = append(probe, randKey(r))
		}
		for _, k := range probe {
			checkProof(t, tr, uint64(v), roots[v], model, k, false)
		}
		// The batched forms agree with the single-key ones.
		proofs, err := tr.ProveBatch(ctx, uint64(v), probe)
		if err != nil {
			t.Fatal(err)
		}
		values, found, err := tr.GetBatch(ctx, uint64(v), probe)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range probe {
			p, err := tr.Prove(ctx, uint64(v), k)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, proofs[i]) {
				t.Fatalf("ProveBatch and Prove disagree on %v at version %d", k, v)
			}
			want, ok := model[k]
			if values[i] != want || found[i] != ok {
				t.Fatalf("GetBatch(%v) at version %d = %v, %v; want %v, %v", k, v, values[i], found[i], want, ok)
			}
		}
	}
}

// TestNarrowWindow reruns the randomized comparison with a Tree that reads
// paths three levels per call, so that every path takes many read rounds.
func TestNarrowWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	s := &recordingStore{MemoryStore: NewMemoryStore()}
	tr := &Tree{s: s, window: 3}
	model := map[Key]Hash{}
	var keys []Key
	versions := 10
	if testing.Short() {
		versions = 5
	}
	for v := range versions {
		var ch []Change
		for range 40 {
			k := randKey(r)
			if len(keys) > 0 && r.IntN(3) == 0 {
				k = keys[r.IntN(len(keys))]
				if r.IntN(2) == 0 {
					k = flip(k, 20+r.IntN(236))
				}
			}
			if !slices.ContainsFunc(ch, func(c Change) bool { return c.Key == k }) {
				keys = append(keys, k)
				_, present := model[k]
				ch = append(ch, Change{Key: k, Value: randHash(r), Remove: present && r.IntN(4) == 0})
			}
		}
		s.reads = 0
		root := update(t, tr, s, uint64(v), ch)
		if v > 0 && s.reads < 3 {
			t.Fatalf("update read in %d calls, want several", s.reads)
		}
		model = applyModel(model, ch)
		if want := refRoot(model); root != want {
			t.Fatalf("version %d: root %v, want %v", v+1, root, want)
		}
		checkStructure(t, s.MemoryStore, uint64(v+1), model)
		proofs, err := tr.ProveBatch(ctx, uint64(v+1), keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			p, err := tr.Prove(ctx, uint64(v+1), k)
			if err != nil || !reflect.DeepEqual(proofs[i], p) {
				t.Fatalf("ProveBatch(%v) differs from Prove: %v", k, err)
			}
			checkProof(t, tr, uint64(v+1), root, model, k, i%8 == 0)
		}
	}
}

// TestOrderIndependence inserts the same set in different orders and
// batch splits, with and without detours through removed keys.
func TestOrderIndependence(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	model := make(map[Key]Hash)
	for range 400 {
		model[randKey(r)] = randHash(r)
	}
	for _, k := range collidingKeys(9) {
		model[k] = randHash(r)
	}
	want := refRoot(model)
	var ch []Change
	for k, v := range model {
		ch = append(ch, Change{Key: k, Value: v})
	}
	var firstNodes []Node
	for trial := range 8 {
		r.Shuffle(len(ch), func(i, j int) { ch[i], ch[j] = ch[j], ch[i] })
		s := NewMemoryStore()
		tr := New(s)
		var v uint64
		var root Hash
		for rest := ch; len(rest) > 0; v++ {
			n := 1 + r.IntN(len(rest))
			batch := slices.Clone(rest[:n])
			if trial%2 == 1 {
				// Insert a wrong value and a stray key first, then fix both.
				stray := randKey(r)
				batch[0].Value = randHash(r)
				batch = append(batch, Change{Key: stray, Value: randHash(r)})
				update(t, tr, s, v, batch)
				v++
				batch = []Change{rest[0], {Key: stray, Remove: true}}
				batch = append(batch, rest[1:n]...)
			}
			root = update(t, tr, s, v, batch)
			rest = rest[n:]
		}
		if root != want {
			t.Fatalf("trial %d: root %v, want %v", trial, root, want)
		}
		nodes := s.nodesAt(v)
		slices.SortFunc(nodes, func(a, b Node) int { return compareIDs(a.ID, b.ID) })
		if trial == 0 {
			firstNodes = nodes
		} else if !slices.Equal(nodes, firstNodes) {
			t.Fatalf("trial %d: stored nodes differ from trial 0", trial)
		}
	}
}

func compareIDs(a, b NodeID) int {
	if a.Depth != b.Depth {
		return int(a.Depth) - int(b.Depth)
	}
	return slices.Compare(a.Prefix[:], b.Prefix[:])
}

// recordingStore records every WriteNodes batch and counts ReadNodes calls.
type recordingStore struct {
	*MemoryStore
	writes [][]Node
	reads  int
}

func (s *recordingStore) WriteNodes(ctx context.Context, v uint64, nodes []Node) error {
	s.writes = append(s.writes, slices.Clone(nodes))
	return s.MemoryStore.WriteNodes(ctx, v, nodes)
}

func (s *recordingStore) ReadNodes(ctx context.Context, v uint64, ids []NodeID) ([]Node, error) {
	s.reads++
	return s.MemoryStore.ReadNodes(ctx, v, ids)
}

// TestParallelDeterminism checks that the nodes written, and their order,
// do not depend on GOMAXPROCS.
func TestParallelDeterminism(t *testing.T) {
	run := func(procs int) ([][]Node, Hash) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		r := rand.New(rand.NewPCG(9, 10))
		s := &recordingStore{MemoryStore: NewMemoryStore()}
		tr := New(s)
		var ch []Change
		for range 6000 {
			ch = append(ch, Change{Key: randKey(r), Value: randHash(r)})
		}
		update(t, tr, s, 0, ch)
		s.writes = nil
		for i := range ch[:3000] {
			ch[i].Value = randHash(r)
			if i%5 == 0 {
				ch[i].Remove = true
			}
		}
		for range 3000 {
			ch = append(ch, Change{Key: randKey(r), Value: randHash(r)})
		}
		root := update(t, tr, s, 1, ch)
		return s.writes, root
	}
	w1, r1 := run(1)
	w4, r4 := run(4)
	if r1 != r4 {
		t.Fatalf("root with GOMAXPROCS=1 %v, with 4 %v", r1, r4)
	}
	// The split into WriteNodes calls may differ; the sequence may not.
	if !slices.Equal(slices.Concat(w1...), slices.Concat(w4...)) {
		t.Fatalf("written nodes differ between GOMAXPROCS=1 and 4")
	}
	if len(w1) < 2 {
		t.Fatalf("expected the update to be split into several WriteNodes calls, got %d", len(w1))
	}
	for _, b := range w1 {
		if len(b) > MaxWriteBatch {
			t.Fatalf("WriteNodes call with %d nodes exceeds MaxWriteBatch", len(b))
		}
	}
}

// TestReadCalls checks the batching promises: one ReadNodes call for a
// proof or a 1,000-key update in a 10^4-key tree.
func TestReadCalls(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	s := &recordingStore{MemoryStore: NewMemoryStore()}
	tr := New(s)
	var ch []Change
	for range 10000 {
		ch = append(ch, Change{Key: randKey(r), Value: randHash(r)})
	}
	update(t, tr, s, 0, ch)
	for range 100 {
		s.reads = 0
		if _, err := tr.Prove(ctx, 1, randKey(r)); err != nil {
			t.Fatal(err)
		}
		if s.reads != 1 {
			t.Fatalf("Prove made %d ReadNodes calls, want 1", s.reads)
		}
	}
	s.reads = 0
	ch = ch[:0]
	for range 1000 {
		ch = append(ch, Change{Key: randKey(r), Value: randHash(r)})
	}
	update(t, tr, s, 1, ch)
	if s.reads != 1 {
		t.Fatalf("Update made %d ReadNodes calls, want 1", s.reads)
	}
	// Removals read the siblings that may move up: one more call.
	s.reads = 0
	for i := range ch[:100] {
		ch[i].Remove = true
	}
	update(t, tr, s, 2, ch[:100])
	if s.reads != 2 {
		t.Fatalf("Update with removals made %d ReadNodes calls, want 2", s.reads)
	}
	// A path deeper than 32 levels needs a second call.
	deep := flip(ch[200].Key, 40)
	update(t, tr, s, 3, []Change{{Key: deep, Value: randHash(r)}})
	s.reads = 0
	if _, err := tr.Prove(ctx, 4, deep); err != nil {
		t.Fatal(err)
	}
	if s.reads != 2 {
		t.Fatalf("Prove of a depth-41 path made %d ReadNodes calls, want 2", s.reads)
	}
}

// TestDeepKeys exercises leaves at depth 256 and chains spanning windows.
func TestDeepKeys(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	s := NewMemoryStore()
	tr := New(s)
	model := map[Key]Hash{}
	base := randKey(r)
	var ch []Change
	for _, i := range []int{255, 254, 200, 100, 63, 64, 31, 32, 33, 0} {
		k := flip(base, i)
		ch = append(ch, Change{Key: k, Value: randHash(r)})
	}
	ch = append(ch, Change{Key: base, Value: randHash(r)})
	var v uint64
	for _, c := range ch {
		update(t, tr, s, v, []Change{c})
		v++
		model = applyModel(model, []Change{c})
		root, _ := tr.Root(ctx, v)
		checkStructure(t, s, v, model)
		for _, c := range ch {
			checkProof(t, tr, v, root, model, c.Key, true)
			checkProof(t, tr, v, root, model, flip(c.Key, 150), true)
		}
	}
	p, err := tr.Prove(ctx, v, base)
	if err != nil {
		t.Fatal(err)
	}
	if p.Depth() != 256 {
		t.Fatalf("proof depth %d, want 256", p.Depth())
	}
	// Remove them again, one at a time.
	for _, c := range ch {
		c.Remove = true
		update(t, tr, s, v, []Change{c})
		v++
		model = applyModel(model, []Change{c})
		checkStructure(t, s, v, model)
	}
	if root, _ := tr.Root(ctx, v); root != Empty {
		t.Fatalf("root after removing everything = %v, want Empty", root)
	}
}

func TestUpdateErrors(t *testing.T) {
	s := NewMemoryStore()
	tr := New(s)
	k := Key{1}
	update(t, tr, s, 0, []Change{{Key: k, Value: Hash{1}}})
	if _, err := tr.Update(ctx, 0, nil); !errors.Is(err, ErrCommitted) {
		t.Errorf("Update on an old base: %v, want ErrCommitted", err)
	}
	if _, err := tr.Update(ctx, 2, nil); !errors.Is(err, ErrNotCommitted) {
		t.Errorf("Update on a future base: %v, want ErrNotCommitted", err)
	}
	if _, err := tr.Update(ctx, 1, []Change{{Key: k}, {Key: Key{2}}, {Key: k, Remove: true}}); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("Update with a duplicate key: %v, want ErrDuplicateKey", err)
	}
	if _, err := tr.Prove(ctx, 2, k); !errors.Is(err, ErrNotCommitted) {
		t.Errorf("Prove at an uncommitted version: %v, want ErrNotCommitted", err)
	}
	// An empty update keeps the root.
	root, err := tr.Update(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := refRoot(map[Key]Hash{k: {1}}); root != want {
		t.Errorf("empty update root %v, want %v", root, want)
	}
}

// TestUpdateRetry runs Update twice for the same version with different
// changes (a failed attempt, then the real one): nothing of the first
// attempt may survive.
func TestUpdateRetry(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	s := NewMemoryStore()
	tr := New(s)
	model := map[Key]Hash{}
	var ch []Change
	for range 300 {
		ch = append(ch, Change{Key: randKey(r), Value: randHash(r)})
	}
	update(t, tr, s, 0, ch)
	model = applyModel(model, ch)
	var first []Change
	for range 200 {
		first = append(first, Change{Key: randKey(r), Value: randHash(r)})
	}
	if _, err := tr.Update(ctx, 1, first); err != nil {
		t.Fatal(err)
	}
	second := []Change{{Key: ch[0].Key, Remove: true}, {Key: randKey(r), Value: randHash(r)}}
	root := update(t, tr, s, 1, second)
	model = applyModel(model, second)
	if want := refRoot(model); root != want {
		t.Fatalf("root %v, want %v", root, want)
	}
	checkStructure(t, s, 2, model)
}

// tamperStore returns a wrong node at one position.
type tamperStore struct {
	*MemoryStore
	at   NodeID
	node Node
}

func (s *tamperStore) ReadNodes(ctx context.Context, v uint64, ids []NodeID) ([]Node, error) {
	nodes, err := s.MemoryStore.ReadNodes(ctx, v, ids)
	for i := range nodes {
		if nodes[i].ID == s.at {
			nodes[i] = s.node
		}
	}
	return nodes, err
}

func TestCorruptStore(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	ms := NewMemoryStore()
	var ch []Change
	for range 100 {
		ch = append(ch, Change{Key: randKey(r), Value: randHash(r)})
	}
	update(t, New(ms), ms, 0, ch)
	key := ch[0].Key
	p, err := New(ms).Prove(ctx, 1, key)
	if err != nil {
		t.Fatal(err)
	}
	leafAt := Position(key, p.Depth())
	parentAt := Position(key, 0)
	tests := []struct {
		name string
		at   NodeID
		node Node
	}{
		{"leaf outside its subtree", leafAt, Node{ID: leafAt, Kind: Leaf, Key: flip(key, 0)}},
		{"missing leaf", leafAt, Node{ID: leafAt}},
		{"deleted marker returned", leafAt, Node{ID: leafAt, Kind: Deleted}},
		{"wrong id", leafAt, Node{ID: parentAt, Kind: Leaf, Key: key}},
		{"branch outside subtree", parentAt, Node{ID: parentAt, Kind: Internal, Branch: NodeID{Depth: 300}, Left: Hash{1}, Right: Hash{1}}},
		{"empty half", parentAt, Node{ID: parentAt, Kind: Internal, Left: Empty, Right: Hash{1}}},
	}
	for _, tt := range tests {
		tr := New(&tamperStore{MemoryStore: ms, at: tt.at, node: tt.node})
		if _, err := tr.Prove(ctx, 1, key); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Prove: %v, want ErrCorrupt", tt.name, err)
		}
		if _, _, err := tr.GetBatch(ctx, 1, []Key{key}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: GetBatch: %v, want ErrCorrupt", tt.name, err)
		}
	}
}
