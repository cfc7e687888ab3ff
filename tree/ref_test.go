package tree

import (
	"bytes"
	"crypto/sha256"
	"slices"
)

// This file is an independent, deliberately naive model of the tree: it
// walks one level at a time from the definition in the package doc and
// shares no code with the implementation beyond the hash functions (which
// are checked against raw SHA-256 separately).

type entry struct {
	key   Key
	value Hash
}

func sortedEntries(m map[Key]Hash) []entry {
	es := make([]entry, 0, len(m))
	for k, v := range m {
		es = append(es, entry{k, v})
	}
	slices.SortFunc(es, func(a, b entry) int { return bytes.Compare(a.key[:], b.key[:]) })
	return es
}

// refBit is the key bit at index i, most significant bit first.
func refBit(k Key, i int) int { return int(k[i/8]>>(7-i%8)) & 1 }

func refSplit(es []entry, depth int) (l, r []entry) {
	for _, e := range es {
		if refBit(e.key, depth) == 0 {
			l = append(l, e)
		} else {
			r = append(r, e)
		}
	}
	return l, r
}

var refEmpty = Hash(sha256.Sum256([]byte("\x02conifer/tree/empty/v1")))

// refHash is the hash of the subtree at the given depth holding es.
func refHash(es []entry, depth int) Hash {
	switch len(es) {
	case 0:
		return refEmpty
	case 1:
		return Hash(sha256.Sum256(slices.Concat([]byte{0}, es[0].key[:], es[0].value[:])))
	}
	l, r := refSplit(es, depth)
	hl, hr := refHash(l, depth+1), refHash(r, depth+1)
	return Hash(sha256.Sum256(slices.Concat([]byte{1}, hl[:], hr[:])))
}

func refRoot(m map[Key]Hash) Hash { return refHash(sortedEntries(m), 0) }

// refPos is the position at depth on k's path, computed bit by bit.
func refPos(k Key, depth int) NodeID {
	id := NodeID{Depth: uint16(depth)}
	for i := 0; i < depth; i++ {
		if refBit(k, i) == 1 {
			id.Prefix[i/8] |= 0x80 >> (i % 8)
		}
	}
	return id
}

// refNodes lists the nodes a canonical store holds for es: a leaf at the
// highest position holding only its key; each branch point (both halves
// non-empty) stored at the top of the run of one-sided levels above it.
func refNodes(m map[Key]Hash) map[NodeID]Node {
	out := make(map[NodeID]Node)
	es := sortedEntries(m)
	if len(es) > 0 {
		refNodesAt(es, 0, NodeID{}, out)
	}
	return out
}

func refNodesAt(es []entry, depth int, top NodeID, out map[NodeID]Node) {
	if len(es) == 1 {
		out[top] = Node{ID: top, Kind: Leaf, Key: es[0].key, Value: es[0].value}
		return
	}
	l, r := refSplit(es, depth)
	if len(l) == 0 || len(r) == 0 {
		refNodesAt(es, depth+1, top, out) // chain level: not stored
		return
	}
	out[top] = Node{ID: top, Kind: Internal, Branch: refPos(es[0].key, depth),
		Left: refHash(l, depth+1), Right: refHash(r, depth+1)}
	refNodesAt(l, depth+1, refPos(l[0].key, depth+1), out)
	refNodesAt(r, depth+1, refPos(r[0].key, depth+1), out)
}

// refProof is the proof for key, walking down one level at a time to the
// first subtree that is empty or holds a single key.
func refProof(m map[Key]Hash, key Key) *Proof {
	es := sortedEntries(m)
	p := &Proof{Kind: AbsenceEmpty, Siblings: []Hash{}}
	for depth := 0; ; depth++ {
		switch len(es) {
		case 0:
			return p
		case 1:
			if es[0].key == key {
				p.Kind = Inclusion
			} else {
				p.Kind, p.OtherKey, p.OtherValue = AbsenceLeaf, es[0].key, es[0].value
			}
			return p
		}
		l, r := refSplit(es, depth)
		if refBit(key, depth) == 0 {
			p.Siblings = append(p.Siblings, refHash(r, depth+1))
			es = l
		} else {
			p.Siblings = append(p.Siblings, refHash(l, depth+1))
			es = r
		}
	}
}
