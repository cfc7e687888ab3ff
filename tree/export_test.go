package tree

import (
	"context"
	"encoding/binary"
)

// nodesAt returns every non-deleted node visible at version v, for tests
// that check the stored structure exactly.
func (s *MemoryStore) nodesAt(v uint64) []Node {
	s.mu.RLock()
	var ids []NodeID
	for d := range s.shallow {
		x := &s.shallow[d]
		add := func(p uint64) {
			id := NodeID{Depth: uint16(d)}
			binary.BigEndian.PutUint64(id.Prefix[:8], p)
			ids = append(ids, id)
		}
		for q, i := range x.dense {
			if i != 0 {
				add(uint64(q) << (64 - d))
			}
		}
		for p := range x.sparse {
			add(p)
		}
	}
	for id := range s.deep {
		ids = append(ids, id)
	}
	s.mu.RUnlock()
	nodes, err := s.ReadNodes(context.Background(), v, ids)
	if err != nil {
		panic(err)
	}
	out := nodes[:0]
	for _, n := range nodes {
		if n.Kind != Absent {
			out = append(out, n)
		}
	}
	return out
}
