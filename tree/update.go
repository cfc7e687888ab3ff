package tree

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
)

// Change sets Key to Value, or removes Key if Remove is set (removing an
// absent key does nothing).
type Change struct {
	Key    Key
	Value  Hash
	Remove bool
}

// parallelMin is the number of changes below which a subtree is always
// updated in the calling goroutine; larger subtrees (beyond a share of the
// batch that depends on GOMAXPROCS) hash their two halves in parallel.
// Either way a subtree's nodes are written left half first, so the nodes
// written, and their order, never depend on GOMAXPROCS.
const parallelMin = 64

// maxReadRounds bounds the read loop of Update; each round reads at least
// one level deeper than the last.
const maxReadRounds = 2 * 257

// Update applies changes (keys unique, any order) to version base, which
// must be the latest committed version, and writes the nodes of version
// base+1 to the store without committing it. It returns the new root, for
// the caller to Commit (typically together with the rest of its epoch).
//
// Before writing, Update discards anything left at version base+1 by an
// earlier failed attempt, so it can simply be run again after a crash.
//
// It reads only the nodes on the changed keys' paths, in batches: the
// first 32 levels of every path in one ReadNodes call, then deeper levels
// only for the few paths that need them (with removals, one more call for
// the siblings that may move up). Writes go out in calls of at most
// MaxWriteBatch nodes.
func (t *Tree) Update(ctx context.Context, base uint64, changes []Change) (Hash, error) {
	latest, _, err := t.s.Latest(ctx)
	if err != nil {
		return Hash{}, fmt.Errorf("couldn't read latest version: %w", err)
	}
	if base < latest {
		return Hash{}, fmt.Errorf("couldn't update version %d (latest %d): %w", base, latest, ErrCommitted)
	}
	if base > latest {
		return Hash{}, fmt.Errorf("couldn't update version %d (latest %d): %w", base, latest, ErrNotCommitted)
	}
	ch := slices.Clone(changes)
	slices.SortFunc(ch, func(a, b Change) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	u := &updater{all: ch, win: make([]window, len(ch)), deeper: map[int][]window{}, extra: map[NodeID]*Node{},
		par: max(parallelMin, len(ch)/(4*runtime.GOMAXPROCS(0))), window: t.window}
	for i := range ch {
		if i > 0 && ch[i].Key == ch[i-1].Key {
			return Hash{}, fmt.Errorf("couldn't update key %v: %w", ch[i].Key, ErrDuplicateKey)
		}
		u.anyRemove = u.anyRemove || ch[i].Remove
	}
	if err := t.s.Discard(ctx, base+1); err != nil {
		return Hash{}, fmt.Errorf("couldn't discard earlier attempt at version %d: %w", base+1, err)
	}
	if len(ch) == 0 {
		return t.Root(ctx, base)
	}

	// Read every node the update touches, a window of levels at a time.
	wants := []want{{at: rootID, lo: 0, hi: len(ch)}}
	for round := 0; len(wants) > 0; round++ {
		if round == maxReadRounds {
			panic("tree: update read loop does not converge")
		}
		ids, singles := u.list(round, wants)
		nodes, err := t.s.ReadNodes(ctx, base, ids)
		if err != nil {
			return Hash{}, fmt.Errorf("couldn't read nodes: %w", err)
		}
		if len(nodes) != len(ids) {
			return Hash{}, fmt.Errorf("%w: asked for %d nodes, got %d", ErrCorrupt, len(ids), len(nodes))
		}
		u.rounds = append(u.rounds, nodes)
		for _, i := range singles {
			u.extra[ids[i]] = &nodes[i]
		}
		var next []want
		for _, w := range wants {
			if !w.single {
				if err := u.plan(w.at, w.lo, w.hi, &next); err != nil {
					return Hash{}, err
				}
			}
		}
		wants = next
	}

	// Compute the new version.
	root := u.at(0, 0)
	var w writer
	res, err := u.apply(&w, rootID, root, 0, len(ch))
	if err != nil {
		return Hash{}, err
	}
	newRoot := w.place(rootID, root, &res)

	// Write it: big segments go out as they are, small ones are gathered.
	var batch []Node
	write := func(nodes []Node) error {
		if err := t.s.WriteNodes(ctx, base+1, nodes); err != nil {
			return fmt.Errorf("couldn't write nodes: %w", err)
		}
		return nil
	}
	for _, seg := range append(w.segs, w.cur) {
		for len(seg) > 0 {
			if len(batch) == 0 && len(seg) >= MaxWriteBatch/4 {
				n := min(len(seg), MaxWriteBatch)
				if err := write(seg[:n]); err != nil {
					return Hash{}, err
				}
				seg = seg[n:]
				continue
			}
			if batch == nil {
				batch = make([]Node, 0, MaxWriteBatch)
			}
			n := min(len(seg), MaxWriteBatch-len(batch))
			batch = append(batch, seg[:n]...)
			seg = seg[n:]
			if len(batch) == MaxWriteBatch {
				if err := write(batch); err != nil {
					return Hash{}, err
				}
				batch = batch[:0]
			}
		}
	}
	if len(batch) > 0 {
		if err := write(batch); err != nil {
			return Hash{}, err
		}
	}
	return newRoot, nil
}

// want asks to read the paths of the changes all[lo:hi] (all the keys
// under position at) from at down one read window, or, if single, just
// the node at at.
type want struct {
	at     NodeID
	lo, hi int
	single bool
}

// updater holds what one Update read. While the new version is computed
// it is only read, from several goroutines.
//
// Rather than a map from position to node, it finds nodes by arithmetic:
// each read round lists its positions key by key (keys sorted) and depth
// by depth, each shared position once, under the first key that has it;
// the keys under a position always form a range starting at that key.
type updater struct {
	all       []Change // sorted
	anyRemove bool
	par       int              // subtrees with at least this many changes split in parallel
	window    int              // levels per read round
	rounds    [][]Node         // ReadNodes results, one per round
	win       []window         // per key: its first round's window
	deeper    map[int][]window // per key: later windows, if any
	extra     map[NodeID]*Node // single reads: siblings of removals
}

// window says where the nodes at depths [start, end) on a key's path were
// read: the node at depth d ≥ from is rounds[round][base+d-from]; those
// above from were listed under an earlier key.
type window struct {
	round      int32
	base       int32
	start, end uint16
	from       uint16
}

// list returns the positions wants ask for, recording where each key's
// window lands, and the indexes of the single reads.
func (u *updater) list(round int, wants []want) (ids []NodeID, singles []int) {
	for _, w := range wants {
		if w.single {
			singles = append(singles, len(ids))
			ids = append(ids, w.at)
			continue
		}
		start := int(w.at.Depth)
		end := min(start+u.window, 257)
		if ids == nil {
			ids = make([]NodeID, 0, (w.hi-w.lo)*(end-start)*3/4+32)
		}
		for i := w.lo; i < w.hi; i++ {
			k := (*[32]byte)(&u.all[i].Key)
			from := start
			if i > w.lo {
				from = max(from, commonPrefix((*[32]byte)(&u.all[i-1].Key), k)+1)
			}
			from = min(from, end)
			win := window{round: int32(round), base: int32(len(ids)), start: uint16(start), end: uint16(end), from: uint16(from)}
			if round == 0 {
				u.win[i] = win
			} else {
				u.deeper[i] = append(u.deeper[i], win)
			}
			if from == end {
				continue
			}
			id := NodeID{Depth: uint16(from), Prefix: truncate(*k, from)}
			ids = append(ids, id)
			for d := from + 1; d < end; d++ {
				if bitAt(k, d-1) == 1 {
					id.Prefix = setBit(id.Prefix, d-1)
				}
				id.Depth = uint16(d)
				ids = append(ids, id)
			}
		}
	}
	return ids, singles
}

// at returns the node read at depth d on the path of key all[lo], where
// lo is the first key under that position, or nil if it was not read.
func (u *updater) at(d, lo int) *Node {
	w := &u.win[lo]
	if d >= int(w.end) {
		w = nil
		ws := u.deeper[lo]
		for i := range ws {
			if d >= int(ws[i].start) && d < int(ws[i].end) {
				w = &ws[i]
				break
			}
		}
		if w == nil {
			return nil
		}
	}
	if d < int(w.from) {
		panic("tree: node looked up under a key that does not list it")
	}
	return &u.rounds[w.round][int(w.base)+d-int(w.from)]
}

// plan walks the changes all[lo:hi] (the keys under position p) through
// the nodes read so far and appends to wants what must still be read.
func (u *updater) plan(p NodeID, lo, hi int, wants *[]want) error {
	n := u.at(int(p.Depth), lo)
	if n == nil {
		*wants = append(*wants, want{at: p, lo: lo, hi: hi})
		return nil
	}
	if n.Kind == Absent {
		if p != rootID {
			return fmt.Errorf("%w: no node at %v below a branch point", ErrCorrupt, p)
		}
		return nil // the empty tree
	}
	if err := checkRead(n, p); err != nil {
		return err
	}
	if n.Kind == Leaf {
		return nil
	}
	b := &n.Branch
	j := int(b.Depth)
	ilo, ihi := under(u.all[lo:hi], b)
	ilo, ihi = lo+ilo, lo+ihi
	if ilo == ihi {
		return nil // every key leaves the chain above the branch point
	}
	m := ilo + splitBit(u.all[ilo:ihi], j)
	parts := [2][2]int{{ilo, m}, {m, ihi}}
	removal := u.anyRemove && slices.ContainsFunc(u.all[ilo:ihi], func(c Change) bool { return c.Remove })
	for side := range uint8(2) {
		q := b.Child(side)
		switch plo, phi := parts[side][0], parts[side][1]; {
		case plo < phi:
			if err := u.plan(q, plo, phi, wants); err != nil {
				return err
			}
		case removal:
			// If the other half empties, this one moves up: read it.
			*wants = append(*wants, want{at: q, single: true})
		}
	}
	return nil
}

// under returns the range of ch (sorted) whose keys lie in the subtree at
// b.
func under(ch []Change, b *NodeID) (lo, hi int) {
	j := int(b.Depth)
	in := func(c *Change) bool { return commonPrefix((*[32]byte)(&c.Key), &b.Prefix) >= j }
	if in(&ch[0]) && in(&ch[len(ch)-1]) {
		return 0, len(ch)
	}
	lo = sort.Search(len(ch), func(i int) bool { return bytes.Compare(ch[i].Key[:], b.Prefix[:]) >= 0 })
	hi = lo + sort.Search(len(ch)-lo, func(i int) bool { return !in(&ch[lo+i]) })
	return lo, hi
}

// splitBit returns the index of the first change whose key has bit i set;
// the keys are sorted and share their first i bits.
func splitBit(ch []Change, i int) int {
	return sort.Search(len(ch), func(x int) bool { return bitAt((*[32]byte)(&ch[x].Key), i) == 1 })
}

// sub is an updated subtree, not yet placed at a position: Absent, a
// Leaf (a = key, b = value) or an Internal node (branch, a = left hash,
// b = right hash), and h, the hash of its subtree at the node's own
// position (branch, for an Internal node). It is a compact Node without an
// ID, since results are passed up the recursion by value.
type sub struct {
	kind   NodeKind
	branch NodeID
	a, b   Hash
	h      Hash
}

func subOf(n *Node) sub {
	if n.Kind == Leaf {
		return leafSubHashed(n.Key, n.Value, LeafHash(n.Key, n.Value))
	}
	return sub{kind: Internal, branch: n.Branch, a: n.Left, b: n.Right, h: NodeHash(n.Left, n.Right)}
}

func leafSub(k Key, v Hash) sub { return leafSubHashed(k, v, LeafHash(k, v)) }

func leafSubHashed(k Key, v, h Hash) sub { return sub{kind: Leaf, a: Hash(k), b: v, h: h} }

func internalSub(branch NodeID, l, r Hash) sub {
	return sub{kind: Internal, branch: branch, a: l, b: r, h: NodeHash(l, r)}
}

// node returns s as the Node stored at id.
func (s *sub) node(id NodeID) Node {
	if s.kind == Leaf {
		return Node{ID: id, Kind: Leaf, Key: Key(s.a), Value: s.b}
	}
	return Node{ID: id, Kind: Internal, Branch: s.branch, Left: s.a, Right: s.b}
}

// same reports whether old (not Absent) holds exactly s.
func (s *sub) same(old *Node) bool {
	if old.Kind != s.kind {
		return false
	}
	if s.kind == Leaf {
		return old.Key == Key(s.a) && old.Value == s.b
	}
	return old.Branch == s.branch && old.Left == s.a && old.Right == s.b
}

// writer collects the nodes of the new version in a deterministic order:
// segments from parallel halves are kept in left-to-right order.
type writer struct {
	segs [][]Node
	cur  []Node
}

func (w *writer) add(n *Node) { w.cur = append(w.cur, *n) }

// join appends the nodes collected by c.
func (w *writer) join(c *writer) {
	if len(w.cur) > 0 {
		w.segs = append(w.segs, w.cur)
		w.cur = nil
	}
	w.segs = append(w.segs, c.segs...)
	if len(c.cur) > 0 {
		w.segs = append(w.segs, c.cur)
	}
}

// place stores s at position q, where old is the node stored there in the
// base version (nil or Absent if none), writing only what changed, and
// returns the hash of the subtree at q.
func (w *writer) place(q NodeID, old *Node, s *sub) Hash {
	stored := old != nil && old.Kind != Absent
	if s.kind == Absent {
		if stored {
			w.add(&Node{ID: q, Kind: Deleted})
		}
		return Empty
	}
	if !stored || !s.same(old) {
		w.cur = append(w.cur, s.node(q))
	}
	if s.kind == Leaf {
		return s.h
	}
	return foldChain(s.h, &s.branch, int(q.Depth))
}

// apply returns the subtree at position p after applying the changes
// all[lo:hi] (non-empty, all under p) to old, the node whose subtree was
// rooted at p (Absent if it was empty; not necessarily stored at p).
// Nodes below p are written to w; the result itself is left for the caller
// to place, since removals can move it up.
func (u *updater) apply(w *writer, p NodeID, old *Node, lo, hi int) (sub, error) {
	switch old.Kind {
	case Absent:
		return u.build(w, u.all[lo:hi], nil), nil
	case Leaf:
		return u.build(w, u.all[lo:hi], old), nil
	}
	b := &old.Branch
	j := int(b.Depth)
	c := min(commonPrefix((*[32]byte)(&u.all[lo].Key), &b.Prefix), commonPrefix((*[32]byte)(&u.all[hi-1].Key), &b.Prefix), j)
	if c < j {
		return u.splitChain(w, old, lo, hi, c)
	}

	m := lo + splitBit(u.all[lo:hi], j)
	parts := [2][2]int{{lo, m}, {m, hi}}
	var olds [2]*Node
	for side := range uint8(2) {
		if parts[side][0] == parts[side][1] {
			continue
		}
		olds[side] = u.at(j+1, parts[side][0])
		if olds[side] == nil || olds[side].Kind == Absent {
			return sub{}, fmt.Errorf("%w: no node at %v below branch point %v", ErrCorrupt, b.Child(side), b)
		}
	}
	var res [2]sub
	var errs [2]error
	if lo < m && m < hi && hi-lo >= u.par {
		var lw, rw writer
		var wg sync.WaitGroup
		wg.Go(func() { res[0], errs[0] = u.apply(&lw, b.Child(0), olds[0], lo, m) })
		res[1], errs[1] = u.apply(&rw, b.Child(1), olds[1], m, hi)
		wg.Wait()
		w.join(&lw)
		w.join(&rw)
	} else {
		for side := range uint8(2) {
			if plo, phi := parts[side][0], parts[side][1]; plo < phi {
				res[side], errs[side] = u.apply(w, b.Child(side), olds[side], plo, phi)
			}
		}
	}
	for _, err := range errs {
		if err != nil {
			return sub{}, err
		}
	}

	h := [2]Hash{old.Left, old.Right}
	var empty [2]bool
	for side := range 2 {
		empty[side] = olds[side] != nil && res[side].kind == Absent
	}
	if !empty[0] && !empty[1] {
		for side := range uint8(2) {
			if olds[side] != nil {
				h[side] = w.place(b.Child(side), olds[side], &res[side])
			}
		}
		return internalSub(*b, h[0], h[1]), nil
	}

	// Removals emptied a half: the branch point disappears and the other
	// half, if any, moves up to be placed by the caller.
	survivor := sub{}
	for side := range uint8(2) {
		q := b.Child(side)
		w.add(&Node{ID: q, Kind: Deleted})
		switch {
		case empty[side]:
		case olds[side] != nil:
			survivor = res[side]
		default:
			n := u.extra[q]
			if n == nil {
				panic("tree: sibling of a removal was not read")
			}
			if n.Kind == Absent {
				return sub{}, fmt.Errorf("%w: no node at %v below branch point %v", ErrCorrupt, q, b)
			}
			if err := checkRead(n, q); err != nil {
				return sub{}, err
			}
			survivor = subOf(n)
		}
	}
	return survivor, nil
}

// splitChain applies all[lo:hi] to the subtree of old, an Internal node at
// the bottom of a chain that some of the keys leave at bit c: the result
// has a new branch point at depth c (unless only removals leave the chain).
func (u *updater) splitChain(w *writer, old *Node, lo, hi, c int) (sub, error) {
	b := &old.Branch
	sb := bitAt(&b.Prefix, c)
	m := lo + splitBit(u.all[lo:hi], c)
	same, other := [2]int{lo, m}, [2]int{m, hi}
	if sb == 1 {
		same, other = other, same
	}
	top := NodeID{Depth: uint16(c), Prefix: truncate(b.Prefix, c)}
	qs, qo := top.Child(sb), top.Child(1-sb)
	var rs sub
	if same[0] < same[1] {
		var err error
		if rs, err = u.apply(w, qs, old, same[0], same[1]); err != nil {
			return sub{}, err
		}
	} else {
		rs = subOf(old)
	}
	ro := u.build(w, u.all[other[0]:other[1]], nil)
	if ro.kind == Absent {
		return rs, nil
	}
	if rs.kind == Absent {
		return ro, nil
	}
	// Nothing is stored inside a chain, so both halves are new positions.
	hs, ho := w.place(qs, nil, &rs), w.place(qo, nil, &ro)
	l, r := hs, ho
	if sb == 1 {
		l, r = ho, hs
	}
	return internalSub(top, l, r), nil
}

// build returns the subtree holding the keys set by ch (sorted) and, unless
// ch changes or removes it, the key of leaf (nil if the subtree was empty).
func (u *updater) build(w *writer, ch []Change, leaf *Node) sub {
	if leaf != nil && len(ch) == 1 {
		c := &ch[0]
		switch {
		case c.Key == leaf.Key && c.Remove:
			return sub{}
		case c.Key == leaf.Key:
			return leafSub(c.Key, c.Value)
		case c.Remove:
			return subOf(leaf)
		}
		x, y := Change{Key: leaf.Key, Value: leaf.Value}, *c
		if bytes.Compare(x.Key[:], y.Key[:]) > 0 {
			x, y = y, x
		}
		return u.buildSorted(w, []Change{x, y})
	}
	if leaf == nil && !u.anyRemove {
		return u.buildSorted(w, ch)
	}
	entries := make([]Change, 0, len(ch)+1)
	pending := leaf != nil
	for i := range ch {
		if pending && bytes.Compare(leaf.Key[:], ch[i].Key[:]) <= 0 {
			pending = false
			if leaf.Key != ch[i].Key {
				entries = append(entries, Change{Key: leaf.Key, Value: leaf.Value})
			}
		}
		if !ch[i].Remove {
			entries = append(entries, ch[i])
		}
	}
	if pending {
		entries = append(entries, Change{Key: leaf.Key, Value: leaf.Value})
	}
	return u.buildSorted(w, entries)
}

// buildSorted returns the subtree holding exactly the keys of e (sorted,
// none removing), writing every node below its top. Nothing is stored
// below the top of a subtree that was empty or a single leaf.
func (u *updater) buildSorted(w *writer, e []Change) sub {
	switch len(e) {
	case 0:
		return sub{}
	case 1:
		return leafSub(e[0].Key, e[0].Value)
	}
	c := commonPrefix((*[32]byte)(&e[0].Key), (*[32]byte)(&e[len(e)-1].Key))
	m := splitBit(e, c)
	var l, r sub
	if len(e) >= u.par {
		var lw, rw writer
		var wg sync.WaitGroup
		wg.Go(func() { l = u.buildSorted(&lw, e[:m]) })
		r = u.buildSorted(&rw, e[m:])
		wg.Wait()
		w.join(&lw)
		w.join(&rw)
	} else {
		l = u.buildSorted(w, e[:m])
		r = u.buildSorted(w, e[m:])
	}
	top := Position(e[0].Key, c)
	hl, hr := w.place(top.Child(0), nil, &l), w.place(top.Child(1), nil, &r)
	return internalSub(top, hl, hr)
}
