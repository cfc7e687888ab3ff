package tree

import (
	"encoding/binary"
	"fmt"
)

// NodeID is a position in the depth-256 binary tree: the subtree of every key
// whose first Depth bits are the first Depth bits of Prefix. Bits of Prefix at
// index ≥ Depth are zero, so each position has exactly one NodeID. The root is
// NodeID{} (depth 0).
type NodeID struct {
	Depth  uint16 // 0..256
	Prefix [32]byte
}

// Position returns the position at depth (0..256) on key's path.
func Position(key Key, depth int) NodeID {
	if depth < 0 || depth > 256 {
		panic(fmt.Sprintf("tree: depth %d out of range", depth))
	}
	return NodeID{Depth: uint16(depth), Prefix: truncate(key, depth)}
}

// Child returns the child of id on side bit (0 = left, 1 = right). id.Depth
// must be below 256.
func (id NodeID) Child(bit uint8) NodeID {
	c := NodeID{Depth: id.Depth + 1, Prefix: id.Prefix}
	if bit != 0 {
		c.Prefix = setBit(c.Prefix, int(id.Depth))
	}
	return c
}

// Contains reports whether key lies in the subtree at id.
func (id NodeID) Contains(key Key) bool {
	k := [32]byte(key)
	return commonPrefix(&k, &id.Prefix) >= int(id.Depth)
}

// Check returns an error unless id is canonical: Depth ≤ 256 and every bit
// of Prefix at index ≥ Depth zero.
func (id NodeID) Check() error {
	if id.Depth > 256 {
		return fmt.Errorf("%w: node id depth %d exceeds 256", ErrMalformedNode, id.Depth)
	}
	if !paddingZero(&id.Prefix, int(id.Depth)) {
		return fmt.Errorf("%w: node id prefix has bits set past depth %d", ErrMalformedNode, id.Depth)
	}
	return nil
}

// String returns "depth/hexprefix", the prefix cut to whole bytes.
func (id NodeID) String() string {
	return fmt.Sprintf("%d/%x", id.Depth, id.Prefix[:(int(id.Depth)+7)/8])
}

// NodeKind says what a Node is.
type NodeKind uint8

// Node kinds. The numeric values are the first byte of a node's encoding.
const (
	// Absent is the zero kind: nothing is stored at the position (or the
	// newest record there is a Deleted marker). ReadNodes returns it; it is
	// never written.
	Absent NodeKind = 0
	// Internal is a branch point: a subtree with keys in both halves.
	Internal NodeKind = 1
	// Leaf is a subtree holding exactly one key.
	Leaf NodeKind = 2
	// Deleted marks, in a version, that a position no longer holds a node.
	Deleted NodeKind = 3
)

// String returns the kind's name.
func (k NodeKind) String() string {
	switch k {
	case Absent:
		return "absent"
	case Internal:
		return "internal"
	case Leaf:
		return "leaf"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Node is what a Store keeps at a position in one version.
//
// A Leaf is stored at the highest position whose subtree holds only its key.
// An Internal node describes a branch point (a position whose two halves
// both hold keys). It is stored at the top of its chain: the position just
// below its parent branch point (or the root), with Branch giving its own,
// possibly deeper, position. The levels between ID and Branch are chain
// levels: subtrees with one empty half, never stored.
//
// Unused fields are zero: a Leaf has no Branch, Left or Right; an Internal
// node has no Key or Value; a Deleted marker has only ID.
type Node struct {
	ID   NodeID
	Kind NodeKind

	// Internal: the branch point's own position (Branch.Depth ≥ ID.Depth,
	// Branch inside ID's subtree, Branch.Depth < 256) and the hashes of its
	// two halves, Branch.Child(0) and Branch.Child(1), neither Empty.
	Branch      NodeID
	Left, Right Hash

	// Leaf: the key (inside ID's subtree) and its value.
	Key   Key
	Value Hash
}

// Check returns an error (wrapping ErrMalformedNode) unless n is a canonical
// Internal, Leaf or Deleted node as described on Node. Stores call it on
// every node they are asked to write.
func (n *Node) Check() error {
	if err := n.ID.Check(); err != nil {
		return err
	}
	switch n.Kind {
	case Internal:
		if n.Key != (Key{}) || n.Value != (Hash{}) {
			return fmt.Errorf("%w: internal node at %v has key or value set", ErrMalformedNode, n.ID)
		}
		if err := n.Branch.Check(); err != nil {
			return err
		}
		if n.Branch.Depth < n.ID.Depth || n.Branch.Depth > 255 {
			return fmt.Errorf("%w: internal node at %v has branch depth %d", ErrMalformedNode, n.ID, n.Branch.Depth)
		}
		if commonPrefix(&n.Branch.Prefix, &n.ID.Prefix) < int(n.ID.Depth) {
			return fmt.Errorf("%w: internal node at %v has branch %v outside its subtree", ErrMalformedNode, n.ID, n.Branch)
		}
		if n.Left == Empty || n.Right == Empty {
			return fmt.Errorf("%w: internal node at %v has an empty half", ErrMalformedNode, n.ID)
		}
	case Leaf:
		if n.Branch != (NodeID{}) || n.Left != (Hash{}) || n.Right != (Hash{}) {
			return fmt.Errorf("%w: leaf at %v has branch fields set", ErrMalformedNode, n.ID)
		}
		if !n.ID.Contains(n.Key) {
			return fmt.Errorf("%w: leaf at %v has key %v outside its subtree", ErrMalformedNode, n.ID, n.Key)
		}
	case Deleted:
		if n.Branch != (NodeID{}) || n.Left != (Hash{}) || n.Right != (Hash{}) || n.Key != (Key{}) || n.Value != (Hash{}) {
			return fmt.Errorf("%w: deleted marker at %v has fields set", ErrMalformedNode, n.ID)
		}
	default:
		return fmt.Errorf("%w: node at %v has kind %v", ErrMalformedNode, n.ID, n.Kind)
	}
	return nil
}

// hash returns the hash of n's subtree at its own position (Branch for an
// Internal node). Not defined for other kinds.
func (n *Node) hash() Hash {
	if n.Kind == Leaf {
		return LeafHash(n.Key, n.Value)
	}
	return NodeHash(n.Left, n.Right)
}

// hashAt returns the hash of the subtree at n.ID: for an Internal node, the
// hash at Branch folded up through the chain levels to n.ID.Depth.
func (n *Node) hashAt() Hash {
	h := n.hash()
	if n.Kind == Internal {
		h = foldChain(h, &n.Branch, int(n.ID.Depth))
	}
	return h
}

// foldChain returns the hash at depth top of a chain whose bottom is the
// branch point at b with hash h.
func foldChain(h Hash, b *NodeID, top int) Hash {
	for t := int(b.Depth) - 1; t >= top; t-- {
		h = chainHash(h, bitAt(&b.Prefix, t))
	}
	return h
}

// MaxNodeSize is the largest encoding AppendNode produces.
const MaxNodeSize = 1 + 2 + 32 + 32 + 32

// AppendNode appends the storage encoding of n (without its ID, which the
// store keeps in its key) to b. n must be a valid (Check) node:
//
//	node     = internal / leaf / deleted
//	internal = 0x01 ‖ depth:uint16be ‖ prefix ‖ left:32 ‖ right:32
//	           ; depth and the first ceil(depth/8) bytes of Branch.Prefix
//	leaf     = 0x02 ‖ key:32 ‖ value:32
//	deleted  = 0x03
//
// The encoding is not hashed; it is canonical so that stores can compare
// records byte for byte.
func AppendNode(b []byte, n *Node) []byte {
	b = append(b, byte(n.Kind))
	switch n.Kind {
	case Internal:
		b = binary.BigEndian.AppendUint16(b, n.Branch.Depth)
		b = append(b, n.Branch.Prefix[:(int(n.Branch.Depth)+7)/8]...)
		b = append(b, n.Left[:]...)
		b = append(b, n.Right[:]...)
	case Leaf:
		b = append(b, n.Key[:]...)
		b = append(b, n.Value[:]...)
	}
	return b
}

// ParseNode parses the AppendNode encoding of the node stored at id. It
// accepts only canonical encodings of valid nodes and returns an error
// wrapping ErrMalformedNode otherwise.
func ParseNode(id NodeID, b []byte) (Node, error) {
	n := Node{ID: id}
	if len(b) == 0 {
		return Node{}, fmt.Errorf("%w: node at %v: missing kind", ErrMalformedNode, id)
	}
	n.Kind, b = NodeKind(b[0]), b[1:]
	switch n.Kind {
	case Internal:
		if len(b) < 2 {
			return Node{}, fmt.Errorf("%w: node at %v: short branch depth", ErrMalformedNode, id)
		}
		n.Branch.Depth, b = binary.BigEndian.Uint16(b), b[2:]
		if n.Branch.Depth > 255 {
			return Node{}, fmt.Errorf("%w: node at %v: branch depth %d exceeds 255", ErrMalformedNode, id, n.Branch.Depth)
		}
		pl := (int(n.Branch.Depth) + 7) / 8
		if len(b) != pl+64 {
			return Node{}, fmt.Errorf("%w: node at %v: internal node body is %d bytes, want %d", ErrMalformedNode, id, len(b), pl+64)
		}
		copy(n.Branch.Prefix[:], b[:pl])
		copy(n.Left[:], b[pl:pl+32])
		copy(n.Right[:], b[pl+32:])
	case Leaf:
		if len(b) != 64 {
			return Node{}, fmt.Errorf("%w: node at %v: leaf body is %d bytes, want 64", ErrMalformedNode, id, len(b))
		}
		copy(n.Key[:], b[:32])
		copy(n.Value[:], b[32:])
	case Deleted:
		if len(b) != 0 {
			return Node{}, fmt.Errorf("%w: node at %v: %d trailing bytes after deleted marker", ErrMalformedNode, id, len(b))
		}
	default:
		return Node{}, fmt.Errorf("%w: node at %v: unknown kind %d", ErrMalformedNode, id, uint8(n.Kind))
	}
	if err := n.Check(); err != nil {
		return Node{}, err
	}
	return n, nil
}
