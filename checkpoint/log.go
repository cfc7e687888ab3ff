package checkpoint

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The epoch log is an RFC 6962 Merkle log whose leaves are the encoded
// epoch heads, in epoch order:
//
//	leaf hash   = SHA-256(0x00 || leaf)
//	node hash   = SHA-256(0x01 || left || right)
//	empty root  = SHA-256("")
//
// Only the hashes of perfect subtrees are stored, each addressed by its
// compact.NodeID (level, index): node (l, i) covers leaves [i·2^l, (i+1)·2^l).
// They never change once written, so any key-value store can hold them.
// Roots of imperfect trees and the ephemeral nodes of proofs are
// recomputed from O(log n) stored nodes.

var (
	// ErrNodeNotFound is wrapped by HashReader implementations when a
	// requested node is not stored.
	ErrNodeNotFound = errors.New("log node not found")
	// ErrInvalidProof is wrapped when an inclusion or consistency proof
	// does not verify.
	ErrInvalidProof = errors.New("invalid log proof")
	// ErrRange is wrapped when sizes or indexes are out of range: an index
	// not below the size, a first size above the second, or a full log.
	ErrRange = errors.New("log index or size out of range")
)

// Node is a stored node of the epoch log: the root of a perfect subtree.
type Node struct {
	// ID is the node's (level, index); it covers leaves
	// [index·2^level, (index+1)·2^level).
	ID compact.NodeID
	// Hash is the root hash of that perfect subtree.
	Hash [32]byte
}

// HashReader reads stored node hashes of the epoch log.
//
// ReadHashes returns the hashes of ids, in the same order. If any node is
// not stored it returns an error wrapping [ErrNodeNotFound]. Stored hashes
// are immutable, so a reader may serve them from any snapshot that contains
// them. Implementations must be safe for concurrent use if shared.
//
// The functions below cannot know the stored size: some proofs for sizes
// beyond it only read nodes that exist (the inclusion proof of leaf n in a
// log of n+1 leaves reads nothing about leaf n). Callers must bound every
// size by the size of the log they hold.
type HashReader interface {
	ReadHashes(ids []compact.NodeID) ([][32]byte, error)
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// LeafHash returns the RFC 6962 leaf hash of leaf: SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	h.Write(leaf)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// EmptyRoot returns the root of the empty log: SHA-256("").
func EmptyRoot() [32]byte { return sha256.Sum256(nil) }

// AppendLeaf appends the leaf with hash leafHash to a log of size leaves
// and returns the nodes the caller must store (the leaf and every perfect
// subtree it completes, lowest level first: 1 + trailing ones of size,
// about 2 on average, at most 64) and the root of the new log of size+1
// leaves. It reads the O(log size) roots of the compact range [0, size).
func AppendLeaf(size uint64, leafHash [32]byte, r HashReader) ([]Node, [32]byte, error) {
	var root [32]byte
	if size == math.MaxUint64 {
		return nil, root, fmt.Errorf("couldn't append to log: %w: log is full", ErrRange)
	}
	rng, err := readRange(size, r)
	if err != nil {
		return nil, root, fmt.Errorf("couldn't append to log: %w", err)
	}
	var nodes []Node
	err = rng.Append(leafHash[:], func(id compact.NodeID, h []byte) {
		nodes = append(nodes, Node{ID: id, Hash: [32]byte(h)})
	})
	if err != nil {
		panic("checkpoint: appending to a well-formed compact range failed: " + err.Error())
	}
	rootHash, err := rng.GetRootHash(nil)
	if err != nil {
		panic("checkpoint: root of a compact range from 0 failed: " + err.Error())
	}
	return nodes, [32]byte(rootHash), nil
}

// Root returns the root hash of the log at size leaves.
func Root(size uint64, r HashReader) ([32]byte, error) {
	if size == 0 {
		return EmptyRoot(), nil
	}
	rng, err := readRange(size, r)
	if err != nil {
		return [32]byte{}, fmt.Errorf("couldn't compute log root: %w", err)
	}
	h, err := rng.GetRootHash(nil)
	if err != nil {
		panic("checkpoint: root of a compact range from 0 failed: " + err.Error())
	}
	return [32]byte(h), nil
}

// readRange reads the compact range [0, size).
func readRange(size uint64, r HashReader) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := readHashes(r, ids)
	if err != nil {
		return nil, err
	}
	rng, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		panic("checkpoint: compact range with the right node count rejected: " + err.Error())
	}
	return rng, nil
}

func readHashes(r HashReader, ids []compact.NodeID) ([][]byte, error) {
	hs, err := r.ReadHashes(ids)
	if err != nil {
		return nil, fmt.Errorf("couldn't read log nodes: %w", err)
	}
	if len(hs) != len(ids) {
		return nil, fmt.Errorf("couldn't read log nodes: store returned %d hashes for %d nodes", len(hs), len(ids))
	}
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out, nil
}

// InclusionProof returns the RFC 6962 inclusion proof (audit path) of the
// leaf at index in the log of size leaves, lowest level first.
func InclusionProof(index, size uint64, r HashReader) ([][32]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("couldn't make inclusion proof: %w: index %d, size %d", ErrRange, index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		panic("checkpoint: proof.Inclusion rejected a valid index: " + err.Error())
	}
	p, err := rehash(nodes, r)
	if err != nil {
		return nil, fmt.Errorf("couldn't make inclusion proof: %w", err)
	}
	return p, nil
}

// ConsistencyProof returns the RFC 6962 consistency proof between the log
// at size1 and at size2 leaves. It is empty if size1 is 0 or size1 == size2.
func ConsistencyProof(size1, size2 uint64, r HashReader) ([][32]byte, error) {
	if size1 > size2 {
		return nil, fmt.Errorf("couldn't make consistency proof: %w: size %d > %d", ErrRange, size1, size2)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		panic("checkpoint: proof.Consistency rejected valid sizes: " + err.Error())
	}
	p, err := rehash(nodes, r)
	if err != nil {
		return nil, fmt.Errorf("couldn't make consistency proof: %w", err)
	}
	return p, nil
}

func rehash(nodes proof.Nodes, r HashReader) ([][32]byte, error) {
	out := [][32]byte{}
	if len(nodes.IDs) == 0 {
		return out, nil
	}
	hs, err := readHashes(r, nodes.IDs)
	if err != nil {
		return nil, err
	}
	hs, err = nodes.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		panic("checkpoint: rehashing a proof with the right node count failed: " + err.Error())
	}
	out = make([][32]byte, len(hs))
	for i, h := range hs {
		out[i] = [32]byte(h)
	}
	return out, nil
}

func toSlices(p [][32]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// Root mismatches are the common failure; their errors are not formatted
// each time (proof.RootMismatchError prints both roots).
var (
	errInclusionMismatch   = fmt.Errorf("couldn't verify inclusion proof: %w: root mismatch", ErrInvalidProof)
	errConsistencyMismatch = fmt.Errorf("couldn't verify consistency proof: %w: root mismatch", ErrInvalidProof)
)

// VerifyInclusion checks that p proves the leaf with hash leafHash is
// at index in the log of size leaves with the given root.
func VerifyInclusion(leafHash [32]byte, index, size uint64, p [][32]byte, root [32]byte) error {
	err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash[:], toSlices(p), root[:])
	var mismatch proof.RootMismatchError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mismatch):
		return errInclusionMismatch
	default:
		return fmt.Errorf("couldn't verify inclusion proof: %w: %w", ErrInvalidProof, err)
	}
}

// VerifyConsistency checks that p proves the log with root1 at size1
// leaves is a prefix of the log with root2 at size2 leaves.
// A log of size 0 is a prefix of every log, but root1 must then be
// [EmptyRoot] (which the RFC 6962 algorithm alone does not check).
func VerifyConsistency(size1, size2 uint64, p [][32]byte, root1, root2 [32]byte) error {
	if size1 == 0 && root1 != EmptyRoot() {
		return fmt.Errorf("couldn't verify consistency proof: %w: root of the empty log is not SHA-256(\"\")", ErrInvalidProof)
	}
	err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, toSlices(p), root1[:], root2[:])
	var mismatch proof.RootMismatchError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mismatch):
		return errConsistencyMismatch
	default:
		return fmt.Errorf("couldn't verify consistency proof: %w: %w", ErrInvalidProof, err)
	}
}
