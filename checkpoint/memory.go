package checkpoint

import (
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
)

// MemoryLog is an epoch log held in memory: the store the verifier program
// keeps for the realms it follows, and the reference store in tests.
//
// It holds only perfect-subtree hashes, level by level: about two 32-byte
// hashes per leaf (64 MB per million epochs, plus slice growth slack). It
// is safe for concurrent use: any number of readers alongside one appender.
type MemoryLog struct {
	mu sync.RWMutex
	// levels[l][i] is the hash of node (l, i). Nodes of a level are
	// completed left to right, so each level only grows at its end.
	levels [][][32]byte
}

// NewMemoryLog returns an empty log.
func NewMemoryLog() *MemoryLog { return &MemoryLog{} }

// Size returns the number of leaves.
func (m *MemoryLog) Size() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.size()
}

func (m *MemoryLog) size() uint64 {
	if len(m.levels) == 0 {
		return 0
	}
	return uint64(len(m.levels[0]))
}

// ReadHashes implements [HashReader].
func (m *MemoryLog) ReadHashes(ids []compact.NodeID) ([][32]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.read(ids)
}

func (m *MemoryLog) read(ids []compact.NodeID) ([][32]byte, error) {
	out := make([][32]byte, len(ids))
	for i, id := range ids {
		if id.Level >= uint(len(m.levels)) || id.Index >= uint64(len(m.levels[id.Level])) {
			return nil, fmt.Errorf("couldn't read node (%d, %d): %w", id.Level, id.Index, ErrNodeNotFound)
		}
		out[i] = m.levels[id.Level][id.Index]
	}
	return out, nil
}

// unlocked reads a MemoryLog whose lock the caller holds.
type unlocked struct{ m *MemoryLog }

func (u unlocked) ReadHashes(ids []compact.NodeID) ([][32]byte, error) { return u.m.read(ids) }

// Append appends a leaf with hash leafHash (see [LeafHash]) and returns the
// new root.
func (m *MemoryLog) Append(leafHash [32]byte) ([32]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	nodes, root, err := AppendLeaf(m.size(), leafHash, unlocked{m})
	if err != nil {
		return root, err
	}
	for _, n := range nodes {
		for n.ID.Level >= uint(len(m.levels)) {
			m.levels = append(m.levels, nil)
		}
		if n.ID.Index != uint64(len(m.levels[n.ID.Level])) {
			panic(fmt.Sprintf("checkpoint: appended node (%d, %d) is not next on its level", n.ID.Level, n.ID.Index))
		}
		m.levels[n.ID.Level] = append(m.levels[n.ID.Level], n.Hash)
	}
	return root, nil
}
