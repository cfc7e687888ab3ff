package tree

import (
	"bytes"
	"testing"
)

// TestDocExample checks the worked example in the package documentation.
func TestDocExample(t *testing.T) {
	key := func(b0, b30, b31 byte) Key {
		var k Key
		k[0], k[30], k[31] = b0, b30, b31
		return k
	}
	A, B, C, D, E := key(0, 0, 0), key(0x80, 0, 0), key(0xc0, 0, 0), key(0, 0, 1), key(0, 1, 0)
	a, b, c, d := Hash{0xa}, Hash{0xb}, Hash{0xc}, Hash{0xd}
	s := NewMemoryStore()
	tr := New(s)
	update(t, tr, s, 0, []Change{{Key: A, Value: a}, {Key: B, Value: b}, {Key: C, Value: c}})
	bc := NodeHash(LeafHash(B, b), LeafHash(C, c))
	want := map[NodeID]Node{
		{}:             {ID: NodeID{}, Kind: Internal, Branch: NodeID{}, Left: LeafHash(A, a), Right: bc},
		Position(A, 1): {ID: Position(A, 1), Kind: Leaf, Key: A, Value: a},
		Position(B, 1): {ID: Position(B, 1), Kind: Internal, Branch: Position(B, 1), Left: LeafHash(B, b), Right: LeafHash(C, c)},
		Position(B, 2): {ID: Position(B, 2), Kind: Leaf, Key: B, Value: b},
		Position(C, 2): {ID: Position(C, 2), Kind: Leaf, Key: C, Value: c},
	}
	got := s.nodesAt(1)
	if len(got) != len(want) {
		t.Fatalf("stored %d nodes, want %d", len(got), len(want))
	}
	for _, n := range got {
		if want[n.ID] != n {
			t.Errorf("at %v: %+v, want %+v", n.ID, n, want[n.ID])
		}
	}

	update(t, tr, s, 1, []Change{{Key: D, Value: d}})
	n, err := s.ReadNodes(ctx, 2, []NodeID{Position(A, 1), Position(A, 2), Position(A, 255), Position(A, 256), Position(D, 256)})
	if err != nil {
		t.Fatal(err)
	}
	if w := (Node{ID: Position(A, 1), Kind: Internal, Branch: Position(A, 255), Left: LeafHash(A, a), Right: LeafHash(D, d)}); n[0] != w {
		t.Errorf("at 1/00: %+v, want %+v", n[0], w)
	}
	if n[1].Kind != Absent || n[2].Kind != Absent || n[3].Key != A || n[4].Key != D {
		t.Errorf("chain levels or leaves stored wrongly: %+v", n[1:])
	}

	root, _ := tr.Root(ctx, 2)
	p, err := tr.Prove(ctx, 2, A)
	if err != nil {
		t.Fatal(err)
	}
	enc := p.Marshal()
	bitmap := make([]byte, 32)
	bitmap[0], bitmap[31] = 0x80, 0x01
	wantEnc := bytes.Join([][]byte{{1, 0, 1, 0}, bitmap, bc[:], hashBytes(LeafHash(D, d))}, nil)
	if !bytes.Equal(enc, wantEnc) || len(enc) != 100 {
		t.Errorf("proof of A = %x, want %x", enc, wantEnc)
	}
	if err := VerifyInclusion(root, A, a, p); err != nil {
		t.Error(err)
	}

	p, err = tr.Prove(ctx, 2, E)
	if err != nil {
		t.Fatal(err)
	}
	chain := NodeHash(LeafHash(A, a), LeafHash(D, d))
	for range 7 {
		chain = NodeHash(chain, Empty)
	}
	if p.Kind != AbsenceEmpty || p.Depth() != 248 || p.Siblings[0] != bc || p.Siblings[247] != chain {
		t.Errorf("absence proof of E: %v at depth %d", p.Kind, p.Depth())
	}
	for _, s := range p.Siblings[1:247] {
		if s != Empty {
			t.Errorf("absence proof of E has a non-Empty sibling inside the chain")
		}
	}
	if err := VerifyAbsence(root, E, p); err != nil {
		t.Error(err)
	}
}

func hashBytes(h Hash) []byte { return h[:] }
