package tree

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
)

// Key is a 256-bit tree key: in Conifer, the first 32 bytes of a VRF output.
// Bit 0 of a key is the most significant bit of Key[0]; it chooses the child
// of the root (0 = left, 1 = right).
type Key [32]byte

// Hash is a SHA-256 digest: a leaf value or the hash of a subtree.
type Hash [32]byte

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// String returns the key in lower-case hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Domain-separation prefixes: the first byte of every hashed input.
const (
	leafPrefix  = 0x00
	nodePrefix  = 0x01
	emptyPrefix = 0x02
)

// emptyLabel is hashed after emptyPrefix to make Empty.
const emptyLabel = "conifer/tree/empty/v1"

// Empty is the hash of an empty subtree and the root of the empty tree:
//
//	Empty = SHA-256(0x02 ‖ "conifer/tree/empty/v1")
//
// Leaf and node hashes are SHA-256 of inputs beginning with 0x00 and 0x01, so
// no leaf or node can hash to Empty without a SHA-256 collision.
var Empty = Hash(sha256.Sum256(append([]byte{emptyPrefix}, emptyLabel...)))

// LeafHash returns SHA-256(0x00 ‖ key ‖ value), the hash of a subtree that
// holds exactly one key.
func LeafHash(key Key, value Hash) Hash {
	var b [1 + 32 + 32]byte
	b[0] = leafPrefix
	copy(b[1:33], key[:])
	copy(b[33:], value[:])
	return sha256.Sum256(b[:])
}

// NodeHash returns SHA-256(0x01 ‖ left ‖ right), the hash of a subtree that
// holds two or more keys, from the hashes of its two halves.
func NodeHash(left, right Hash) Hash {
	var b [1 + 32 + 32]byte
	b[0] = nodePrefix
	copy(b[1:33], left[:])
	copy(b[33:], right[:])
	return sha256.Sum256(b[:])
}

// chainHash returns the hash of a subtree whose only non-empty half is h,
// on side bit (0 = left).
func chainHash(h Hash, bit uint8) Hash {
	if bit == 0 {
		return NodeHash(h, Empty)
	}
	return NodeHash(Empty, h)
}

// bitAt returns bit i (0 = most significant bit of b[0]) of a 256-bit string.
func bitAt(b *[32]byte, i int) uint8 {
	return (b[i>>3] >> (7 - uint(i&7))) & 1
}

// setBit returns b with bit i set to 1.
func setBit(b [32]byte, i int) [32]byte {
	b[i>>3] |= 0x80 >> uint(i&7)
	return b
}

// commonPrefix returns the number of leading bits a and b share (0..256).
func commonPrefix(a, b *[32]byte) int {
	for i := 0; i < 32; i += 8 {
		x := binary.BigEndian.Uint64(a[i:]) ^ binary.BigEndian.Uint64(b[i:])
		if x != 0 {
			return i*8 + bits.LeadingZeros64(x)
		}
	}
	return 256
}

// truncate returns b with every bit at index ≥ depth cleared.
func truncate(b [32]byte, depth int) [32]byte {
	if depth >= 256 {
		return b
	}
	i := depth >> 3
	b[i] &= ^byte(0xff >> uint(depth&7))
	for j := i + 1; j < 32; j++ {
		b[j] = 0
	}
	return b
}

// paddingZero reports whether every bit of b at index ≥ depth is zero.
func paddingZero(b *[32]byte, depth int) bool {
	if depth >= 256 {
		return true
	}
	i := depth >> 3
	if b[i]&(0xff>>uint(depth&7)) != 0 {
		return false
	}
	for j := i + 1; j < 32; j++ {
		if b[j] != 0 {
			return false
		}
	}
	return true
}
