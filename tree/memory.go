package tree

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
)

// MemoryStore is a Store kept in process memory: fast, not durable. Tests,
// benchmarks and short-lived tools use it.
//
// Records (one per node version) live in an append-only log of fixed-size
// chunks; each links to the previous record at its position. An index per
// depth maps a position to its newest record: for depths ≤ 64 (all of
// them, in practice) it is keyed by the first 64 bits of the prefix, and
// once a depth is at least 1/16 full (as the top ~log2 N levels of a tree of
// random keys are) it becomes a plain array indexed by the prefix. So a
// read at the latest version costs one array or small-map probe plus the
// record itself, and the index of a 10^6-key tree fits in a few MiB of
// cache. Nothing holds a pointer, so the garbage collector never scans
// the store.
type MemoryStore struct {
	mu      sync.RWMutex
	latest  uint64
	root    Hash
	shallow [65]depthIndex
	deep    map[NodeID]int32 // depths above 64
	recs    recordLog
	// committedRecs is recs.n at the last commit: the records of the
	// uncommitted version are above it.
	committedRecs int32
	pending       []NodeID // positions written for latest+1, once each
}

// depthIndex maps the positions of one depth to their newest records.
type depthIndex struct {
	dense  []int32          // if not nil: record index+1 by prefix, 0 if none
	sparse map[uint64]int32 // otherwise: record index by prefix
	count  int
}

// A depth's index becomes an array once at least 1/denseShare of its
// positions are stored (an array slot costs 4 bytes, a map entry about 20),
// up to depth maxDenseDepth (2^24 slots, 64 MiB).
const (
	denseShare    = 16
	maxDenseDepth = 24
)

// memRecord is one node version. Leaf: a = key, b = value; Internal: a =
// left, b = right, branch = its branch point. Deleted: kind only.
type memRecord struct {
	version uint64
	prev    int32 // the older record at the same position, or -1
	kind    NodeKind
	branch  NodeID
	a, b    [32]byte
}

// recordLog is an append-only list of records in fixed-size chunks, so
// that growing it never copies what it holds.
type recordLog struct {
	chunks [][]memRecord
	n      int32
}

const logChunk = 1 << 14

func (l *recordLog) add(r memRecord) int32 {
	if l.n == 1<<31-1 {
		panic("tree: memory store full")
	}
	c := int(l.n / logChunk)
	if c == len(l.chunks) {
		l.chunks = append(l.chunks, make([]memRecord, 0, logChunk))
	}
	l.chunks[c] = append(l.chunks[c], r)
	l.n++
	return l.n - 1
}

func (l *recordLog) at(i int32) *memRecord { return &l.chunks[i/logChunk][i%logChunk] }

// truncate drops every record from index n on.
func (l *recordLog) truncate(n int32) {
	l.n = n
	c := int(n / logChunk)
	if c < len(l.chunks) {
		l.chunks[c] = l.chunks[c][:n%logChunk]
		clear(l.chunks[c+1:])
		l.chunks = l.chunks[:c+1]
	}
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore at version 0.
func NewMemoryStore() *MemoryStore {
	s := &MemoryStore{root: Empty, deep: make(map[NodeID]int32)}
	for d := range s.shallow {
		s.shallow[d].sparse = make(map[uint64]int32)
	}
	return s
}

// slot returns the dense-array slot of a position at depth ≤ 64.
func slot(d int, prefix64 uint64) uint64 {
	if d == 0 {
		return 0
	}
	return prefix64 >> (64 - d)
}

// get returns the index of the newest record at id.
func (s *MemoryStore) get(id *NodeID) (int32, bool) {
	if id.Depth > 64 {
		i, ok := s.deep[*id]
		return i, ok
	}
	x := &s.shallow[id.Depth]
	p := binary.BigEndian.Uint64(id.Prefix[:8])
	if x.dense != nil {
		i := x.dense[slot(int(id.Depth), p)]
		return i - 1, i != 0
	}
	i, ok := x.sparse[p]
	return i, ok
}

// set points id at record i; id may be new.
func (s *MemoryStore) set(id *NodeID, i int32, isNew bool) {
	if id.Depth > 64 {
		s.deep[*id] = i
		return
	}
	d := int(id.Depth)
	x := &s.shallow[d]
	p := binary.BigEndian.Uint64(id.Prefix[:8])
	if isNew {
		x.count++
		if x.dense == nil && d <= maxDenseDepth && x.count*denseShare >= 1<<d {
			x.dense = make([]int32, 1<<d)
			for q, j := range x.sparse {
				x.dense[slot(d, q)] = j + 1
			}
			x.sparse = nil
		}
	}
	if x.dense != nil {
		x.dense[slot(d, p)] = i + 1
		return
	}
	x.sparse[p] = i
}

func (s *MemoryStore) del(id *NodeID) {
	if id.Depth > 64 {
		delete(s.deep, *id)
		return
	}
	x := &s.shallow[id.Depth]
	x.count--
	p := binary.BigEndian.Uint64(id.Prefix[:8])
	if x.dense != nil {
		x.dense[slot(int(id.Depth), p)] = 0
		return
	}
	delete(x.sparse, p)
}

// Latest implements Store.
func (s *MemoryStore) Latest(ctx context.Context) (uint64, Hash, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.latest, s.root, nil
}

// ReadNodes implements Store.
func (s *MemoryStore) ReadNodes(ctx context.Context, v uint64, ids []NodeID) ([]Node, error) {
	out := make([]Node, len(ids))
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v > s.latest {
		return nil, fmt.Errorf("couldn't read version %d (latest %d): %w", v, s.latest, ErrNotCommitted)
	}
	// Two passes: all index probes first, then the records, so that the
	// processor overlaps the cache misses of independent lookups.
	var buf [64]int32
	idx := buf[:0]
	if len(ids) > len(buf) {
		idx = make([]int32, 0, len(ids))
	}
	idx = idx[:len(ids)]
	for i := range ids {
		if ids[i].Depth > 256 {
			return nil, fmt.Errorf("couldn't read node: %w", ids[i].Check())
		}
		j, ok := s.get(&ids[i])
		if !ok {
			j = -1
		}
		idx[i] = j
	}
	for i := range ids {
		n := &out[i]
		n.ID = ids[i]
		if idx[i] < 0 {
			continue
		}
		p := s.recs.at(idx[i])
		for p.version > v {
			if p.prev < 0 {
				p = nil
				break
			}
			p = s.recs.at(p.prev)
		}
		if p == nil {
			continue
		}
		switch p.kind {
		case Internal:
			n.Kind, n.Branch, n.Left, n.Right = Internal, p.branch, p.a, p.b
		case Leaf:
			n.Kind, n.Key, n.Value = Leaf, p.a, p.b
		}
	}
	return out, nil
}

// WriteNodes implements Store.
func (s *MemoryStore) WriteNodes(ctx context.Context, v uint64, nodes []Node) error {
	for i := range nodes {
		if err := nodes[i].Check(); err != nil {
			return fmt.Errorf("couldn't write node: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkNext(v); err != nil {
		return fmt.Errorf("couldn't write nodes: %w", err)
	}
	for i := range nodes {
		n := &nodes[i]
		r := memRecord{version: v, prev: -1, kind: n.Kind}
		switch n.Kind {
		case Internal:
			r.branch, r.a, r.b = n.Branch, n.Left, n.Right
		case Leaf:
			r.a, r.b = n.Key, n.Value
		}
		cur, ok := s.get(&n.ID)
		if ok && cur >= s.committedRecs {
			// Rewritten in the same version (its records are the newest).
			r.prev = s.recs.at(cur).prev
			*s.recs.at(cur) = r
			continue
		}
		if ok {
			r.prev = cur
		}
		s.set(&n.ID, s.recs.add(r), !ok)
		s.pending = append(s.pending, n.ID)
	}
	return nil
}

// checkNext returns nil if v is the next version to be written.
func (s *MemoryStore) checkNext(v uint64) error {
	switch {
	case v <= s.latest:
		return fmt.Errorf("version %d (latest %d): %w", v, s.latest, ErrCommitted)
	case v > s.latest+1:
		return fmt.Errorf("version %d (latest %d): %w", v, s.latest, ErrVersionGap)
	}
	return nil
}

// Commit implements Store.
func (s *MemoryStore) Commit(ctx context.Context, v uint64, root Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v == s.latest && root == s.root {
		return nil
	}
	if err := s.checkNext(v); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	s.latest, s.root = v, root
	s.committedRecs = s.recs.n
	s.pending = s.pending[:0]
	return nil
}

// Discard implements Store.
func (s *MemoryStore) Discard(ctx context.Context, v uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v <= s.latest {
		return fmt.Errorf("couldn't discard version %d (latest %d): %w", v, s.latest, ErrCommitted)
	}
	if v > s.latest+1 {
		return nil
	}
	for i := range s.pending {
		id := &s.pending[i]
		cur, ok := s.get(id)
		if !ok || s.recs.at(cur).version != v {
			panic("tree: memory store lost a pending record")
		}
		if prev := s.recs.at(cur).prev; prev >= 0 {
			s.set(id, prev, false)
		} else {
			s.del(id)
		}
	}
	s.recs.truncate(s.committedRecs)
	s.pending = s.pending[:0]
	return nil
}
