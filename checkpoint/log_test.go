package checkpoint

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The reference model: RFC 6962 section 2.1 written out recursively with
// crypto/sha256 only, independent of the merkle library.

func refLeaf(i int) []byte { return []byte(fmt.Sprintf("epoch head %d", i)) }

func refNode(l, r [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// refSplit is the largest power of two smaller than n (n > 1).
func refSplit(n int) int { return 1 << (bits.Len(uint(n-1)) - 1) }

// refMTH is MTH(D[n]) over leaf hashes.
func refMTH(d [][32]byte) [32]byte {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return d[0]
	}
	k := refSplit(len(d))
	return refNode(refMTH(d[:k]), refMTH(d[k:]))
}

// refPath is PATH(m, D[n]).
func refPath(m int, d [][32]byte) [][32]byte {
	if len(d) <= 1 {
		return nil
	}
	k := refSplit(len(d))
	if m < k {
		return append(refPath(m, d[:k]), refMTH(d[k:]))
	}
	return append(refPath(m-k, d[k:]), refMTH(d[:k]))
}

// refProof is PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
func refProof(m int, d [][32]byte) [][32]byte {
	if m == 0 || m == len(d) {
		return nil
	}
	return refSubproof(m, d, true)
}

func refSubproof(m int, d [][32]byte, b bool) [][32]byte {
	n := len(d)
	if m == n {
		if b {
			return nil
		}
		return [][32]byte{refMTH(d)}
	}
	k := refSplit(n)
	if m <= k {
		return append(refSubproof(m, d[:k], b), refMTH(d[k:]))
	}
	return append(refSubproof(m-k, d[k:], false), refMTH(d[:k]))
}

func leafHashes(n int) [][32]byte {
	d := make([][32]byte, n)
	for i := range d {
		d[i] = LeafHash(refLeaf(i))
	}
	return d
}

func TestLeafHash(t *testing.T) {
	// RFC 6962: leaf hash = SHA-256(0x00 || leaf); the empty root is
	// SHA-256 of the empty string.
	want := sha256.Sum256(append([]byte{0}, "hello"...))
	if LeafHash([]byte("hello")) != want {
		t.Error("LeafHash is not SHA-256(0x00 || leaf)")
	}
	if got := [32]byte(rfc6962.DefaultHasher.HashLeaf([]byte("hello"))); got != want {
		t.Error("LeafHash disagrees with the rfc6962 package")
	}
	if EmptyRoot() != sha256.Sum256(nil) {
		t.Error("EmptyRoot")
	}
}

func proofsEqual(a, b [][32]byte) bool { return slices.Equal(a, b) }

// flipBits returns the bits of a hash to flip: all 256, or with -short one
// bit in each byte (a different position in each).
func flipBits() []int {
	var out []int
	for b := range 256 {
		if !testing.Short() || b%8 == (b/8)%8 {
			out = append(out, b)
		}
	}
	return out
}

// TestLogExhaustive checks every size up to 64: roots after each append
// against the reference, every inclusion and consistency proof against the
// reference and the merkle/proof verifier, and every single-bit flip of
// every proof hash (one bit per byte with -short).
func TestLogExhaustive(t *testing.T) {
	const maxSize = 64
	d := leafHashes(maxSize)
	m := NewMemoryLog()
	roots := make([][32]byte, maxSize+1)
	roots[0] = EmptyRoot()
	for n := 1; n <= maxSize; n++ {
		root, err := m.Append(d[n-1])
		if err != nil {
			t.Fatal(err)
		}
		if want := refMTH(d[:n]); root != want {
			t.Fatalf("size %d: Append root %x, want %x", n, root, want)
		}
		if got, err := Root(uint64(n), m); err != nil || got != root {
			t.Fatalf("size %d: Root = %x, %v", n, got, err)
		}
		roots[n] = root
	}
	if got, _ := Root(0, m); got != EmptyRoot() {
		t.Errorf("Root(0) = %x", got)
	}
	flip := flipBits()
	t.Run("inclusion", func(t *testing.T) {
		t.Parallel()
		flips := 0
		for n := 1; n <= maxSize; n++ {
			for i := range n {
				p, err := InclusionProof(uint64(i), uint64(n), m)
				if err != nil {
					t.Fatal(err)
				}
				if want := refPath(i, d[:n]); !proofsEqual(p, want) {
					t.Fatalf("InclusionProof(%d, %d) = %x, want %x", i, n, p, want)
				}
				if err := VerifyInclusion(d[i], uint64(i), uint64(n), p, roots[n]); err != nil {
					t.Fatalf("VerifyInclusion(%d, %d): %v", i, n, err)
				}
				// Wrong leaf, index, size or root.
				if VerifyInclusion(d[(i+1)%maxSize], uint64(i), uint64(n), p, roots[n]) == nil ||
					VerifyInclusion(d[i], uint64(i), uint64(n), p, roots[n-1]) == nil ||
					n > 1 && VerifyInclusion(d[i], uint64((i+1)%n), uint64(n), p, roots[n]) == nil {
					t.Fatalf("inclusion %d, %d: verified with wrong inputs", i, n)
				}
				for j := range p {
					for _, b := range flip {
						p[j][b/8] ^= 1 << (b % 8)
						err := VerifyInclusion(d[i], uint64(i), uint64(n), p, roots[n])
						p[j][b/8] ^= 1 << (b % 8)
						if !errors.Is(err, ErrInvalidProof) {
							t.Fatalf("inclusion %d in %d: hash %d bit %d flipped: %v", i, n, j, b, err)
						}
						flips++
					}
				}
				if len(p) > 0 && VerifyInclusion(d[i], uint64(i), uint64(n), p[:len(p)-1], roots[n]) == nil {
					t.Fatalf("inclusion %d in %d: truncated proof verifies", i, n)
				}
			}
		}
		t.Logf("%d bit flips rejected", flips)
	})
	t.Run("consistency", func(t *testing.T) {
		t.Parallel()
		flips := 0
		for n2 := 0; n2 <= maxSize; n2++ {
			for n1 := 0; n1 <= n2; n1++ {
				p, err := ConsistencyProof(uint64(n1), uint64(n2), m)
				if err != nil {
					t.Fatal(err)
				}
				if want := refProof(n1, d[:n2]); !proofsEqual(p, want) {
					t.Fatalf("ConsistencyProof(%d, %d) = %x, want %x", n1, n2, p, want)
				}
				if err := VerifyConsistency(uint64(n1), uint64(n2), p, roots[n1], roots[n2]); err != nil {
					t.Fatalf("VerifyConsistency(%d, %d): %v", n1, n2, err)
				}
				if n1 < n2 && VerifyConsistency(uint64(n1), uint64(n2), p, roots[n2], roots[n2]) == nil {
					t.Fatalf("consistency %d, %d: wrong first root verifies", n1, n2)
				}
				if n1 > 0 && n1 < n2 && VerifyConsistency(uint64(n1), uint64(n2), p, roots[n1], roots[n2-1]) == nil {
					t.Fatalf("consistency %d, %d: wrong second root verifies", n1, n2)
				}
				for j := range p {
					for _, b := range flip {
						p[j][b/8] ^= 1 << (b % 8)
						err := VerifyConsistency(uint64(n1), uint64(n2), p, roots[n1], roots[n2])
						p[j][b/8] ^= 1 << (b % 8)
						if !errors.Is(err, ErrInvalidProof) {
							t.Fatalf("consistency %d, %d: hash %d bit %d flipped: %v", n1, n2, j, b, err)
						}
						flips++
					}
				}
			}
		}
		t.Logf("%d bit flips rejected", flips)
	})
}

// mapStore is a second, independent HashReader: a plain map filled from
// AppendLeaf's output.
type mapStore map[compact.NodeID][32]byte

func (s mapStore) ReadHashes(ids []compact.NodeID) ([][32]byte, error) {
	out := make([][32]byte, len(ids))
	for i, id := range ids {
		h, ok := s[id]
		if !ok {
			return nil, fmt.Errorf("node %+v: %w", id, ErrNodeNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// TestAppendLeafNodes checks which nodes AppendLeaf returns: exactly the
// leaf and the perfect subtrees it completes, each with its reference hash.
func TestAppendLeafNodes(t *testing.T) {
	d := leafHashes(300)
	s := mapStore{}
	total := 0
	for n := range uint64(len(d)) {
		nodes, root, err := AppendLeaf(n, d[n], s)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 + bits.TrailingZeros64(^n); len(nodes) != want {
			t.Fatalf("size %d: %d new nodes, want %d", n, len(nodes), want)
		}
		for l, node := range nodes {
			id := compact.NewNodeID(uint(l), n>>l)
			begin, end := id.Coverage()
			if node.ID != id || node.Hash != refMTH(d[begin:end]) {
				t.Fatalf("size %d: node %d = %+v, want %+v with hash of leaves [%d, %d)", n, l, node, id, begin, end)
			}
			if _, dup := s[node.ID]; dup {
				t.Fatalf("node %+v returned twice", node.ID)
			}
			s[node.ID] = node.Hash
		}
		total += len(nodes)
		if root != refMTH(d[:n+1]) {
			t.Fatalf("size %d: root mismatch", n+1)
		}
	}
	if total != 2*len(d)-bits.OnesCount(uint(len(d))) {
		t.Errorf("stored %d nodes for %d leaves", total, len(d))
	}
}

// TestLogRandomized compares proofs from a larger log with the reference
// at random sizes and indexes.
func TestLogRandomized(t *testing.T) {
	const n = 1500
	d := leafHashes(n)
	m := NewMemoryLog()
	for _, h := range d {
		if _, err := m.Append(h); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		size := 1 + rng.IntN(n)
		i := rng.IntN(size)
		root := refMTH(d[:size])
		p, err := InclusionProof(uint64(i), uint64(size), m)
		if err != nil || !proofsEqual(p, refPath(i, d[:size])) {
			t.Fatalf("InclusionProof(%d, %d) = %x, %v", i, size, p, err)
		}
		if err := VerifyInclusion(d[i], uint64(i), uint64(size), p, root); err != nil {
			t.Fatal(err)
		}
		size1 := rng.IntN(size + 1)
		p, err = ConsistencyProof(uint64(size1), uint64(size), m)
		if err != nil || !proofsEqual(p, refProof(size1, d[:size])) {
			t.Fatalf("ConsistencyProof(%d, %d) = %x, %v", size1, size, p, err)
		}
		if err := VerifyConsistency(uint64(size1), uint64(size), p, refMTH(d[:size1]), root); err != nil {
			t.Fatal(err)
		}
		// The plain merkle/proof verifier agrees.
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(size1), uint64(size), toSlices(p), sliceOf(refMTH(d[:size1])), root[:]); err != nil {
			t.Fatal(err)
		}
	}
}

func sliceOf(h [32]byte) []byte { return h[:] }

type shortReader struct{}

func (shortReader) ReadHashes(ids []compact.NodeID) ([][32]byte, error) {
	return make([][32]byte, len(ids)-1), nil
}

func TestLogErrors(t *testing.T) {
	m := NewMemoryLog()
	for _, h := range leafHashes(10) {
		if _, err := m.Append(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := InclusionProof(10, 10, m); !errors.Is(err, ErrRange) {
		t.Errorf("InclusionProof(10, 10) = %v", err)
	}
	if _, err := ConsistencyProof(5, 4, m); !errors.Is(err, ErrRange) {
		t.Errorf("ConsistencyProof(5, 4) = %v", err)
	}
	if _, err := Root(11, m); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("Root(11) = %v", err)
	}
	if _, err := InclusionProof(3, 12, m); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("InclusionProof(3, 12) = %v", err)
	}
	if _, err := ConsistencyProof(3, 16, m); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("ConsistencyProof(3, 16) = %v", err)
	}
	if _, _, err := AppendLeaf(11, [32]byte{}, m); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("AppendLeaf at a size beyond the store = %v", err)
	}
	if _, _, err := AppendLeaf(math.MaxUint64, [32]byte{}, m); !errors.Is(err, ErrRange) {
		t.Errorf("AppendLeaf(MaxUint64) = %v", err)
	}
	if _, err := Root(7, shortReader{}); err == nil {
		t.Error("a store returning too few hashes went unnoticed")
	}
	// The empty log is a prefix of any log, with the empty root only.
	r10, _ := Root(10, m)
	if err := VerifyConsistency(0, 10, nil, EmptyRoot(), r10); err != nil {
		t.Errorf("VerifyConsistency(0, 10) = %v", err)
	}
	if err := VerifyConsistency(0, 10, nil, r10, r10); !errors.Is(err, ErrInvalidProof) {
		t.Errorf("VerifyConsistency(0, 10) with a non-empty first root = %v", err)
	}
	if err := VerifyConsistency(0, 10, [][32]byte{{}}, EmptyRoot(), r10); !errors.Is(err, ErrInvalidProof) {
		t.Errorf("VerifyConsistency(0, 10) with a non-empty proof = %v", err)
	}
	if err := VerifyInclusion([32]byte{}, 10, 10, nil, r10); !errors.Is(err, ErrInvalidProof) {
		t.Errorf("VerifyInclusion(10, 10) = %v", err)
	}
}

// TestMemoryLogConcurrent appends while other goroutines make and verify
// proofs against the sizes they observe. Run with -race.
func TestMemoryLogConcurrent(t *testing.T) {
	const n = 300
	d := leafHashes(n)
	m := NewMemoryLog()
	roots := make([][32]byte, n+1)
	for i := range d {
		roots[i+1] = refMTH(d[:i+1])
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, h := range d {
			if root, err := m.Append(h); err != nil || root != roots[i+1] {
				errs <- fmt.Errorf("append %d: %x, %v", i, root, err)
				return
			}
		}
	}()
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 200 {
				size := m.Size()
				if size == 0 {
					continue
				}
				i := rng.Uint64N(size)
				p, err := InclusionProof(i, size, m)
				if err == nil {
					err = VerifyInclusion(d[i], i, size, p, roots[size])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m.Size() != n {
		t.Errorf("Size = %d", m.Size())
	}
}
