package disk

import (
	"bytes"
	"testing"

	"github.com/conifer-kt/conifer/tree"
)

// TestNodeCache checks the replacement policy: an entry for a position is
// always replaced, and a full set keeps its shallower positions.
func TestNodeCache(t *testing.T) {
	c := newNodeCache()
	// Find three positions of different depths in one set.
	pos := func(i, depth int) tree.NodeID {
		var k tree.Key
		k[0], k[1], k[2], k[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		return tree.Position(k, depth)
	}
	ids := []tree.NodeID{pos(0, 30)}
	target := c.set(&ids[0])
	for i := 1; len(ids) < 3; i++ {
		if id := pos(i, 30+len(ids)*10); c.set(&id) == target {
			ids = append(ids, id)
		}
	}
	leaf := func(id tree.NodeID, b byte) tree.Node {
		n := tree.Node{ID: id, Kind: tree.Leaf, Value: tree.Hash{b}}
		copy(n.Key[:], id.Prefix[:])
		return n
	}
	n0, n1, n2 := leaf(ids[0], 1), leaf(ids[1], 2), leaf(ids[2], 3)
	c.put(&n2, 5) // deepest first
	c.put(&n1, 5)
	c.put(&n0, 5) // evicts the deepest (n2)
	if _, ok := c.get(&ids[2], 9); ok {
		t.Errorf("the deepest position was not evicted")
	}
	c.put(&n2, 6) // deeper than both: not cached
	if _, ok := c.get(&ids[2], 9); ok {
		t.Errorf("a deeper position displaced a shallower one")
	}
	if n, ok := c.get(&ids[0], 9); !ok || n != n0 {
		t.Errorf("get = %+v, %v", n, ok)
	}
	// Versions: an entry answers reads at versions ≥ its own.
	if _, ok := c.get(&ids[1], 4); ok {
		t.Errorf("entry of version 5 answered a read at version 4")
	}
	// A commit replaces an entry, even with a Deleted marker.
	del := tree.Node{ID: ids[1], Kind: tree.Deleted}
	c.put(&del, 7)
	if n, ok := c.get(&ids[1], 7); !ok || n != (tree.Node{ID: ids[1]}) {
		t.Errorf("after deletion get = %+v, %v", n, ok)
	}
	if _, ok := c.get(&ids[1], 6); ok {
		t.Errorf("deletion of version 7 answered a read at version 6")
	}
	c.drop(&ids[1])
	if _, ok := c.get(&ids[1], 9); ok {
		t.Errorf("dropped entry still answers")
	}
	if n, ok := c.get(&ids[0], 9); !ok || n != n0 {
		t.Errorf("drop removed another entry")
	}
}

// TestKeyLayout checks the worked example in the package documentation.
func TestKeyLayout(t *testing.T) {
	var k tree.Key
	k[0] = 0xa0
	id := tree.Position(k, 3)
	got := appendNodeKey(nil, id, 5)
	want := append(append([]byte{'n', 0xa0}, make([]byte, 31)...), 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa)
	if !bytes.Equal(got, want) || len(got) != nodeKeyLen {
		t.Errorf("node key = %x, want %x", got, want)
	}
	if comparer.Split(got) != nodeKeyLen-8 {
		t.Errorf("Split = %d", comparer.Split(got))
	}
	n := tree.Node{ID: id, Kind: tree.Leaf, Key: k, Value: tree.Hash{1}}
	if v := tree.AppendNode(nil, &n); len(v) != 65 || v[0] != 2 {
		t.Errorf("leaf value = %x", v)
	}
	// A read at version 7 seeks to the key of version 7, which sorts
	// before the record of version 5 (and after any of version 8).
	seek := appendNodeKey(nil, id, 7)
	if bytes.Compare(seek, got) >= 0 || bytes.Compare(appendNodeKey(nil, id, 8), seek) >= 0 {
		t.Errorf("versions do not sort newest first")
	}
}

func FuzzParsePositions(f *testing.F) {
	var k tree.Key
	k[0], k[31] = 0xa5, 0x01
	var seed []byte
	for _, d := range []int{0, 1, 8, 9, 255, 256} {
		seed = appendPosition(seed, tree.Position(k, d))
	}
	f.Add(seed)
	f.Add([]byte{0, 3, 0xe0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := parsePositions(b)
		if err != nil {
			return
		}
		var enc []byte
		for _, id := range ids {
			enc = appendPosition(enc, id)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("appendPosition(parsePositions(%x)) = %x", b, enc)
		}
	})
}

func FuzzParseLatest(f *testing.F) {
	f.Add(appendLatest(nil, 7, tree.Empty))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, root, err := parseLatest(b)
		if err != nil {
			return
		}
		if enc := appendLatest(nil, v, root); !bytes.Equal(enc, b) {
			t.Fatalf("appendLatest(parseLatest(%x)) = %x", b, enc)
		}
	})
}
