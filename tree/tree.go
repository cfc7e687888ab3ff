package tree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
)

// Tree is a versioned Merkle prefix tree kept in a Store. It holds no state
// of its own; its methods are safe for concurrent use as far as the Store's
// are (one Update at a time).
type Tree struct {
	s      Store
	window int // levels of a path per ReadNodes call
}

// New returns a Tree over s.
func New(s Store) *Tree { return &Tree{s: s, window: readWindow} }

// readWindow is how many levels of a key's path the Tree reads per
// ReadNodes call: depths [0, 32) first, then [32, 64) and so on for the
// rare paths that go deeper. With random keys a path ends near depth
// log2(N)+1, so one call serves a proof, or the paths of a batch of
// updates, in a tree of up to about 2^28 keys. That suits a remote store,
// where a call is a round trip and extra positions in a call cost little;
// the local stores measured no gain from narrower windows either (empty
// positions below a leaf are cheap for them).
const readWindow = 32

// rootID is the position of the root.
var rootID = NodeID{}

// Root returns the root hash of version v, computed from its stored root
// node (the Store's own record of the root is only kept for Latest).
func (t *Tree) Root(ctx context.Context, v uint64) (Hash, error) {
	nodes, err := t.s.ReadNodes(ctx, v, []NodeID{rootID})
	if err != nil {
		return Hash{}, fmt.Errorf("couldn't read root node: %w", err)
	}
	n := &nodes[0]
	if n.Kind == Absent {
		return Empty, nil
	}
	if err := checkRead(n, rootID); err != nil {
		return Hash{}, err
	}
	return n.hashAt(), nil
}

// Get returns the value of key at version v, and whether key is present.
func (t *Tree) Get(ctx context.Context, v uint64, key Key) (value Hash, found bool, err error) {
	r := pathReader{t: t, ctx: ctx, v: v, key: key}
	res, err := walk(&key, r.at, nil)
	if err != nil {
		return Hash{}, false, err
	}
	if res.kind != Inclusion {
		return Hash{}, false, nil
	}
	return res.leaf.Value, true, nil
}

// Prove returns a proof of key's value (Kind Inclusion) or of its absence
// at version v. It makes one ReadNodes call, two for paths deeper than 31
// levels. It trusts the store: a proof built from corrupted nodes fails
// verification.
func (t *Tree) Prove(ctx context.Context, v uint64, key Key) (*Proof, error) {
	r := pathReader{t: t, ctx: ctx, v: v, key: key}
	sibs := make([]Hash, 0, 32)
	res, err := walk(&key, r.at, &sibs)
	if err != nil {
		return nil, err
	}
	return res.proof(sibs), nil
}

// GetBatch is Get for many keys with few ReadNodes calls: values[i] and
// found[i] answer keys[i]. Keys may repeat.
func (t *Tree) GetBatch(ctx context.Context, v uint64, keys []Key) (values []Hash, found []bool, err error) {
	res, _, err := t.walkBatch(ctx, v, keys, false)
	if err != nil {
		return nil, nil, err
	}
	values, found = make([]Hash, len(keys)), make([]bool, len(keys))
	for i := range res {
		if res[i].kind == Inclusion {
			values[i], found[i] = res[i].leaf.Value, true
		}
	}
	return values, found, nil
}

// ProveBatch is Prove for many keys with few ReadNodes calls (one for all
// paths up to 31 levels): proofs[i] answers keys[i]. Keys may repeat.
func (t *Tree) ProveBatch(ctx context.Context, v uint64, keys []Key) ([]*Proof, error) {
	res, sibs, err := t.walkBatch(ctx, v, keys, true)
	if err != nil {
		return nil, err
	}
	proofs := make([]*Proof, len(keys))
	for i := range res {
		proofs[i] = res[i].proof(sibs[i])
	}
	return proofs, nil
}

// walkResult is where a key's path ends.
type walkResult struct {
	kind  ProofKind
	depth int
	leaf  Node // the terminal leaf (Inclusion: key's own; AbsenceLeaf: the other key's)
}

func (r *walkResult) proof(sibs []Hash) *Proof {
	if sibs == nil {
		sibs = []Hash{}
	}
	p := &Proof{Kind: r.kind, Siblings: sibs}
	if r.kind == AbsenceLeaf {
		p.OtherKey, p.OtherValue = r.leaf.Key, r.leaf.Value
	}
	return p
}

// nodeGetter returns the node at depth d on the walked key's path, or
// ok=false if it has not been read yet.
type nodeGetter func(d int) (n *Node, ok bool, err error)

// walk follows key's path down from the root. If sibs is not nil it
// appends the sibling hashes along the path (depth 1 first). If get reports
// a node not read yet, walk returns errNeed with need set to its depth.
func walk(key *Key, get nodeGetter, sibs *[]Hash) (walkResult, error) {
	k := (*[32]byte)(key)
	d := 0
	n, ok, err := get(0)
	if err != nil || !ok {
		return walkResult{depth: 0}, needOr(err)
	}
	if n.Kind == Absent {
		return walkResult{kind: AbsenceEmpty}, nil
	}
	for {
		id := NodeID{Depth: uint16(d), Prefix: truncate(*k, d)}
		if err := checkRead(n, id); err != nil {
			return walkResult{}, err
		}
		if n.Kind == Leaf {
			kind := Inclusion
			if n.Key != *key {
				kind = AbsenceLeaf
			}
			return walkResult{kind: kind, depth: d, leaf: *n}, nil
		}
		j := int(n.Branch.Depth)
		c := min(commonPrefix(k, &n.Branch.Prefix), j)
		if c < j {
			// The key leaves the chain above the branch point: its
			// subtree at depth c+1 is empty, and the sibling there is the
			// rest of the chain.
			if sibs != nil {
				for range c - d {
					*sibs = append(*sibs, Empty)
				}
				*sibs = append(*sibs, foldChain(n.hash(), &n.Branch, c+1))
			}
			return walkResult{kind: AbsenceEmpty, depth: c + 1}, nil
		}
		sib := n.Right
		if bitAt(k, j) == 1 {
			sib = n.Left
		}
		if sibs != nil {
			for range j - d {
				*sibs = append(*sibs, Empty)
			}
			*sibs = append(*sibs, sib)
		}
		d = j + 1
		if n, ok, err = get(d); err != nil || !ok {
			return walkResult{depth: d}, needOr(err)
		}
		if n.Kind == Absent {
			return walkResult{}, fmt.Errorf("%w: no node at %v below branch point %v", ErrCorrupt, Position(*key, d), Position(*key, j))
		}
	}
}

// errNeed is walk's signal that it stopped at a node not read yet.
var errNeed = errors.New("tree: node not read yet")

func needOr(err error) error {
	if err != nil {
		return err
	}
	return errNeed
}

// checkRead returns ErrCorrupt unless n, read at id, is an Internal or
// Leaf node that can be stored there: the checks walks and updates rely on
// (the full Node.Check is for writes).
func checkRead(n *Node, id NodeID) error {
	if n.ID != id {
		return fmt.Errorf("%w: asked for node %v, got %v", ErrCorrupt, id, n.ID)
	}
	switch n.Kind {
	case Leaf:
		if commonPrefix((*[32]byte)(&n.Key), &id.Prefix) < int(id.Depth) {
			return fmt.Errorf("%w: leaf at %v has key %v outside its subtree", ErrCorrupt, id, n.Key)
		}
	case Internal:
		b := &n.Branch
		if b.Depth < id.Depth || b.Depth > 255 || commonPrefix(&b.Prefix, &id.Prefix) < int(id.Depth) || !paddingZero(&b.Prefix, int(b.Depth)) {
			return fmt.Errorf("%w: internal node at %v has branch point %v outside its subtree", ErrCorrupt, id, *b)
		}
		if n.Left == Empty || n.Right == Empty {
			return fmt.Errorf("%w: internal node at %v has an empty half", ErrCorrupt, id)
		}
	default:
		return fmt.Errorf("%w: read %v node at %v", ErrCorrupt, n.Kind, id)
	}
	return nil
}

// pathReader serves one key's path, reading t.window levels per call.
type pathReader struct {
	t    *Tree
	ctx  context.Context
	v    uint64
	key  Key
	wins [][]Node // wins[i] holds depths [i*window, (i+1)*window)
}

func (r *pathReader) at(d int) (*Node, bool, error) {
	win := r.t.window
	w := d / win
	for len(r.wins) <= w {
		lo := len(r.wins) * win
		hi := min(lo+win, 257)
		ids := make([]NodeID, hi-lo)
		k := (*[32]byte)(&r.key)
		id := NodeID{Depth: uint16(lo), Prefix: truncate(*k, lo)}
		for i := range ids {
			if i > 0 {
				if bitAt(k, lo+i-1) == 1 {
					id.Prefix = setBit(id.Prefix, lo+i-1)
				}
				id.Depth++
			}
			ids[i] = id
		}
		nodes, err := r.t.s.ReadNodes(r.ctx, r.v, ids)
		if err != nil {
			return nil, false, fmt.Errorf("couldn't read path nodes: %w", err)
		}
		if len(nodes) != len(ids) {
			return nil, false, fmt.Errorf("%w: asked for %d nodes, got %d", ErrCorrupt, len(ids), len(nodes))
		}
		r.wins = append(r.wins, nodes)
	}
	return &r.wins[w][d-w*win], true, nil
}

// walkBatch walks the paths of keys, reading the nodes of all of them
// together: one ReadNodes call per window of t.window levels.
func (t *Tree) walkBatch(ctx context.Context, v uint64, keys []Key, proofs bool) ([]walkResult, [][]Hash, error) {
	res := make([]walkResult, len(keys))
	var sibs [][]Hash
	if proofs {
		sibs = make([][]Hash, len(keys))
	}
	// Walk keys in sorted order so that shared prefixes are requested once.
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a][:], keys[b][:]) })

	nodes := make(map[NodeID]*Node, len(keys)*16)
	need := make([]int, len(keys)) // depth each pending key's walk stopped at
	pending := order
	for len(pending) > 0 {
		ids := make([]NodeID, 0, len(pending)*t.window/2)
		for j, i := range pending {
			from := need[i]
			if j > 0 && need[pending[j-1]] == need[i] {
				// Levels shared with the previous key were listed with it.
				prev := (*[32]byte)(&keys[pending[j-1]])
				from = max(from, commonPrefix(prev, (*[32]byte)(&keys[i]))+1)
			}
			for d := from; d < min(need[i]+t.window, 257); d++ {
				ids = append(ids, Position(keys[i], d))
			}
		}
		got, err := t.s.ReadNodes(ctx, v, ids)
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't read path nodes: %w", err)
		}
		if len(got) != len(ids) {
			return nil, nil, fmt.Errorf("%w: asked for %d nodes, got %d", ErrCorrupt, len(ids), len(got))
		}
		for j := range got {
			nodes[ids[j]] = &got[j]
		}
		next := pending[:0]
		for _, i := range pending {
			key := keys[i]
			get := func(d int) (*Node, bool, error) {
				n, ok := nodes[Position(key, d)]
				return n, ok, nil
			}
			var sp *[]Hash
			if proofs {
				sibs[i] = sibs[i][:0]
				sp = &sibs[i]
			}
			r, err := walk(&key, get, sp)
			switch {
			case err == errNeed:
				if r.depth <= need[i] {
					panic("tree: path walk made no progress")
				}
				need[i] = r.depth
				next = append(next, i)
			case err != nil:
				return nil, nil, err
			default:
				res[i] = r
			}
		}
		pending = next
	}
	return res, sibs, nil
}
