package disk

import (
	"encoding/binary"
	"sync"

	"github.com/conifer-kt/conifer/tree"
)

// nodeCache remembers, for some positions, the newest node at a version ≤
// the latest committed one. Every update and most proofs go through the
// top levels of the tree, so answering those from memory saves most of the
// LSM lookups of a path.
//
// An entry (position, version u, node) says: the newest record at the
// position with version ≤ latest was written at u (u = 0: never written)
// and is node (Absent for none or a Deleted marker). So it answers reads at
// any v with u ≤ v ≤ latest. Entries are filled by reads at the latest
// version, and replaced at Commit by the nodes that version wrote; both
// happen under mu, with the store's latest checked, so an entry never
// describes an older state than latest.
//
// It is two-way set associative, and a full set keeps its shallower
// positions: a position at depth d is on the path of a 2^-d share of all
// keys, so the cache converges to the top levels of the tree.
type nodeCache struct {
	mu    sync.RWMutex
	sets  [][2]cacheSlot
	count [257]int32 // entries per depth: lookups skip depths with none
}

type cacheSlot struct {
	used    bool
	version uint64
	node    tree.Node // node.ID is the position
}

// cacheDepth is the depth below which Commit updates the cache with the
// nodes it wrote; deeper positions it writes are dropped from the cache
// (few are cached at all), which saves keeping those nodes until Commit.
const cacheDepth = 20

// cacheSets is the number of sets: 2^17 sets of two slots hold the top 17
// levels of a full tree (about 60 MiB).
const cacheSets = 1 << 17

func newNodeCache() *nodeCache {
	return &nodeCache{sets: make([][2]cacheSlot, cacheSets)}
}

func (c *nodeCache) set(id *tree.NodeID) *[2]cacheSlot {
	h := binary.BigEndian.Uint64(id.Prefix[:8]) ^ binary.BigEndian.Uint64(id.Prefix[8:16])*0x9e3779b97f4a7c15 ^ uint64(id.Depth)*0xbf58476d1ce4e5b9
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	h ^= h >> 29
	return &c.sets[h&(cacheSets-1)]
}

// get returns the node visible at version v, if the cache knows it; c.mu
// is read-locked.
func (c *nodeCache) get(id *tree.NodeID, v uint64) (tree.Node, bool) {
	if id.Depth > 256 || c.count[id.Depth] == 0 {
		return tree.Node{}, false
	}
	set := c.set(id)
	for i := range set {
		s := &set[i]
		if s.used && s.node.ID == *id {
			if s.version > v {
				return tree.Node{}, false
			}
			return s.node, true
		}
	}
	return tree.Node{}, false
}

// put records that the newest node at n.ID (version ≤ latest) is n,
// written at version u; c.mu is locked. An existing entry for the position
// is always replaced; otherwise a full set keeps its shallower entries.
func (c *nodeCache) put(n *tree.Node, u uint64) {
	set := c.set(&n.ID)
	idx := -1
	for i := range set {
		if set[i].used && set[i].node.ID == n.ID {
			idx = i
		}
	}
	if idx < 0 {
		for i := range set {
			if !set[i].used {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		idx = 0
		if set[1].node.ID.Depth > set[0].node.ID.Depth {
			idx = 1
		}
		if set[idx].node.ID.Depth < n.ID.Depth {
			return // the set holds shallower positions
		}
	}
	s := &set[idx]
	if s.used {
		c.count[s.node.ID.Depth]--
	}
	c.count[n.ID.Depth]++
	s.used, s.version, s.node = true, u, *n
	if n.Kind == tree.Deleted {
		s.node = tree.Node{ID: n.ID}
	}
}

// drop forgets id; c.mu is locked.
func (c *nodeCache) drop(id *tree.NodeID) {
	if id.Depth > 256 || c.count[id.Depth] == 0 {
		return
	}
	set := c.set(id)
	for i := range set {
		if set[i].used && set[i].node.ID == *id {
			set[i] = cacheSlot{}
			c.count[id.Depth]--
		}
	}
}
