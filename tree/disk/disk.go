// Package disk is a tree.Store on the local disk, for verifiers and other
// programs that replay the tree themselves. It is built on the pebble LSM
// key-value store (github.com/cockroachdb/pebble/v2).
//
// # Layout
//
// Every record is a pebble key-value pair:
//
//	node:    'n' ‖ prefix:32 ‖ depth:uint16be ‖ ^version:uint64be  →  tree.AppendNode encoding
//	latest:  'm'                                                   →  version:uint64be ‖ root:32
//	pending: 'p' ‖ version:uint64be ‖ seq:uint32be                →  positions
//
// The version is stored inverted (all bits flipped), so for one position
// newer versions sort first and "the newest node at a version ≤ v" is a
// single seek to the key of (position, v). Pebble's Split puts the position
// in the key prefix and the version in the suffix, so bloom filters answer
// "is anything stored at this position?" without reading data blocks, as
// for most positions below a path's leaf. Positions sort by their 32-byte
// zero-padded prefix, then depth: the positions on one key's path come in
// increasing order and, below the top levels, lie next to each other (the
// positions under a 16-bit prefix of a 10^6-key tree fit in one block), so
// reading a path's lower part costs about one block.
//
// A pending record lists the positions (depth:uint16be ‖ the first
// ceil(depth/8) bytes of the prefix) written by one WriteNodes call for the
// uncommitted version, so that Discard finds them without scanning.
//
// For example, the leaf of key K = a0 00…00 stored at depth 3 (prefix
// 101) in version 5 has the 43-byte key
//
//	6e a0 00…00 0003 fffffffffffffffa
//
// ('n', the prefix a0 padded to 32 bytes, depth 3, ^5) and the 65-byte
// value 02 ‖ K ‖ value. Reading position 3/a0 at version 7 seeks to
// 6e a0 00…00 0003 fffffffffffffff8 and finds that record, the first with
// the same position and version ≤ 7.
//
// Reads at the latest version go through a small cache of the nodes at the
// top of the tree (see nodeCache), which every path crosses.
//
// # Use
//
//	s, err := disk.Open(dir)
//	...
//	defer s.Close()
//	t := tree.New(s)
//	root, err := t.Update(ctx, v, changes) // writes version v+1
//	err = s.Commit(ctx, v+1, root)         // makes it durable and visible
//
// # Durability
//
// WriteNodes applies its batch without syncing. Commit writes the latest
// record and deletes the version's pending records in one synced batch:
// pebble's write-ahead log is sequential, so the sync also makes every
// earlier batch durable, and the commit is atomic. After a crash the store
// reopens at the last committed version, and Open discards whatever an
// unfinished version left (nodes at versions above the latest are never
// visible anyway; see tree.Store).
package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/conifer-kt/conifer/tree"
)

// Key-space tags: the first byte of every key.
const (
	tagNode    = 'n'
	tagLatest  = 'm'
	tagPending = 'p'
)

// CacheSize is the size of pebble's block cache, and MemTableSize of each
// memtable. With the node cache (about 60 MiB) they bound what the store
// itself keeps in memory, about 700 MiB whatever the tree's size; an
// update's working set (the nodes on its keys' paths) comes on top.
const (
	CacheSize    = 512 << 20
	MemTableSize = 64 << 20
)

// Store is a tree.Store in a directory. It is safe for concurrent use.
type Store struct {
	db *pebble.DB

	// wmu serializes WriteNodes, Commit and Discard.
	wmu sync.Mutex
	seq uint32 // next pending record sequence number for latest+1

	// written holds the nodes written for latest+1 at depths ≤ cacheDepth,
	// and writtenDeep the deeper positions, for the cache at Commit.
	written     []tree.Node
	writtenDeep []tree.NodeID

	cache *nodeCache // lock order: cache.mu, then mu

	mu     sync.RWMutex
	latest uint64
	root   tree.Hash
}

var _ tree.Store = (*Store)(nil)

// comparer orders keys bytewise, and tells pebble that the last 8 bytes of
// a node key (the inverted version) are a suffix, so bloom filters cover
// positions.
var comparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Name = "conifer.tree.disk.v1"
	c.Split = func(k []byte) int {
		if len(k) == nodeKeyLen && k[0] == tagNode {
			return len(k) - 8
		}
		return len(k)
	}
	return &c
}()

// Open opens (creating it if needed) the store in dir. Whatever an
// uncommitted version left behind is discarded.
func Open(dir string) (*Store, error) {
	return openFS(dir, vfs.Default)
}

// openFS opens the store in dir on fs (tests use an in-memory file system
// that can simulate a crash).
func openFS(dir string, fs vfs.FS) (*Store, error) {
	cache := pebble.NewCache(CacheSize)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:        cache,
		Comparer:     comparer,
		MemTableSize: MemTableSize,
		Logger:       logger{},
		FS:           fs,
	}
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	opts.Levels[0].IndexBlockSize = 1 << 20 // one-level indexes: one block less per seek
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("couldn't open tree store: %w", err)
	}
	s := &Store{db: db, root: tree.Empty, cache: newNodeCache()}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// load reads the latest record and discards the next version's nodes.
func (s *Store) load() error {
	val, closer, err := s.db.Get([]byte{tagLatest})
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("couldn't read latest version: %w", err)
	default:
		defer closer.Close()
		if s.latest, s.root, err = parseLatest(val); err != nil {
			return fmt.Errorf("couldn't read latest version: %w", err)
		}
	}
	return s.discard(s.latest + 1)
}

// Close closes the store. Nothing written for an uncommitted version
// survives the next Open.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("couldn't close tree store: %w", err)
	}
	return nil
}

// appendPosition appends the pending-record form of id:
//
//	position = depth:uint16be ‖ the first ceil(depth/8) bytes of the prefix
func appendPosition(b []byte, id tree.NodeID) []byte {
	b = binary.BigEndian.AppendUint16(b, id.Depth)
	return append(b, id.Prefix[:(int(id.Depth)+7)/8]...)
}

// errMalformedRecord means a record of the store is not canonical.
var errMalformedRecord = errors.New("tree/disk: malformed record")

// parsePositions parses a pending record, a sequence of positions, and
// accepts only canonical ones (tree.NodeID.Check).
func parsePositions(b []byte) ([]tree.NodeID, error) {
	var ids []tree.NodeID
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: truncated depth", errMalformedRecord)
		}
		id := tree.NodeID{Depth: binary.BigEndian.Uint16(b)}
		if id.Depth > 256 {
			return nil, fmt.Errorf("%w: depth %d exceeds 256", errMalformedRecord, id.Depth)
		}
		n := 2 + (int(id.Depth)+7)/8
		if len(b) < n {
			return nil, fmt.Errorf("%w: truncated prefix", errMalformedRecord)
		}
		copy(id.Prefix[:], b[2:n])
		if err := id.Check(); err != nil {
			return nil, fmt.Errorf("%w: %w", errMalformedRecord, err)
		}
		ids = append(ids, id)
		b = b[n:]
	}
	return ids, nil
}

// appendLatest and parseLatest encode the latest record:
//
//	latest = version:uint64be ‖ root:32
func appendLatest(b []byte, v uint64, root tree.Hash) []byte {
	b = binary.BigEndian.AppendUint64(b, v)
	return append(b, root[:]...)
}

func parseLatest(b []byte) (uint64, tree.Hash, error) {
	if len(b) != 8+32 {
		return 0, tree.Hash{}, fmt.Errorf("%w: latest record is %d bytes, want 40", errMalformedRecord, len(b))
	}
	return binary.BigEndian.Uint64(b), tree.Hash(b[8:]), nil
}

// nodeKeyLen is the length of a node key.
const nodeKeyLen = 1 + 32 + 2 + 8

// appendNodeKey appends the key of id's node at version v.
func appendNodeKey(b []byte, id tree.NodeID, v uint64) []byte {
	b = append(b, tagNode)
	b = append(b, id.Prefix[:]...)
	b = binary.BigEndian.AppendUint16(b, id.Depth)
	return binary.BigEndian.AppendUint64(b, ^v)
}

func pendingKey(v uint64, seq uint32) []byte {
	b := []byte{tagPending}
	b = binary.BigEndian.AppendUint64(b, v)
	return binary.BigEndian.AppendUint32(b, seq)
}

// Latest implements tree.Store.
func (s *Store) Latest(ctx context.Context) (uint64, tree.Hash, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.latest, s.root, nil
}

// ReadNodes implements tree.Store. It answers from the node cache where it
// can and reads the rest from the database.
func (s *Store) ReadNodes(ctx context.Context, v uint64, ids []tree.NodeID) ([]tree.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read nodes: %w", err)
	}
	s.mu.RLock()
	latest := s.latest
	s.mu.RUnlock()
	if v > latest {
		return nil, fmt.Errorf("couldn't read version %d (latest %d): %w", v, latest, tree.ErrNotCommitted)
	}
	out := make([]tree.Node, len(ids))
	var miss []tree.NodeID
	var missAt []int
	s.cache.mu.RLock()
	for i := range ids {
		if err := ids[i].Check(); err != nil {
			s.cache.mu.RUnlock()
			return nil, fmt.Errorf("couldn't read node: %w", err)
		}
		n, ok := s.cache.get(&ids[i], v)
		if ok {
			out[i] = n
			continue
		}
		miss = append(miss, ids[i])
		missAt = append(missAt, i)
	}
	s.cache.mu.RUnlock()
	if len(miss) == 0 {
		return out, nil
	}
	versions, err := s.seek(v, miss, out, missAt)
	if err != nil {
		return nil, err
	}
	// What was newest at the latest version may be cached (unless a commit
	// has moved latest on meanwhile). Empty positions are not: most are
	// below a leaf, on the path of one key only.
	if v == latest {
		s.cache.mu.Lock()
		s.mu.RLock()
		if s.latest == v {
			for j, i := range missAt {
				if out[i].Kind == tree.Internal || out[i].Kind == tree.Leaf {
					s.cache.put(&out[i], versions[j])
				}
			}
		}
		s.mu.RUnlock()
		s.cache.mu.Unlock()
	}
	return out, nil
}

// seek reads from the database the newest record at a version ≤ v at each
// of ids, storing it (Absent if there is none or it is a Deleted marker) in
// out[at[j]] for ids[j], and returns the versions the records were written
// at (0 if none). It seeks in key order, so that pebble steps forward.
func (s *Store) seek(v uint64, ids []tree.NodeID, out []tree.Node, at []int) ([]uint64, error) {
	// Committed versions never change, so any later view of the database
	// answers reads at v the same way.
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't read nodes: %w", err)
	}
	defer it.Close()
	keys := make([]byte, 0, len(ids)*nodeKeyLen)
	for _, id := range ids {
		keys = appendNodeKey(keys, id, v)
	}
	versions := make([]uint64, len(ids))
	for _, j := range seekOrder(ids) {
		n := &out[at[j]]
		*n = tree.Node{ID: ids[j]}
		if !it.SeekPrefixGE(keys[int(j)*nodeKeyLen : int(j+1)*nodeKeyLen]) {
			continue
		}
		k := it.Key()
		versions[j] = ^binary.BigEndian.Uint64(k[len(k)-8:])
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("couldn't read node: %w", err)
		}
		if *n, err = tree.ParseNode(ids[j], val); err != nil {
			return nil, fmt.Errorf("couldn't parse stored node: %w", err)
		}
		if n.Kind == tree.Deleted {
			*n = tree.Node{ID: ids[j]}
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("couldn't read nodes: %w", err)
	}
	return versions, nil
}

// seekOrder returns the indexes of ids in key order (prefix, then depth),
// so that the seeks go forward. The Tree lists positions in that order
// already (keys sorted, each key's path top down), so it is usually just
// checked.
func seekOrder(ids []tree.NodeID) []int32 {
	order := make([]int32, len(ids))
	for i := range order {
		order[i] = int32(i)
	}
	cmp := func(a, b int32) int {
		if c := bytes.Compare(ids[a].Prefix[:], ids[b].Prefix[:]); c != 0 {
			return c
		}
		return int(ids[a].Depth) - int(ids[b].Depth)
	}
	if !slices.IsSortedFunc(order, cmp) {
		slices.SortStableFunc(order, cmp) // stable: of two writes to one position, the last wins
	}
	return order
}

// checkNext returns nil if v is the next version to be written; s.wmu is
// held.
func (s *Store) checkNext(v uint64) error {
	switch latest := s.latest; {
	case v <= latest:
		return fmt.Errorf("version %d (latest %d): %w", v, latest, tree.ErrCommitted)
	case v > latest+1:
		return fmt.Errorf("version %d (latest %d): %w", v, latest, tree.ErrVersionGap)
	}
	return nil
}

// WriteNodes implements tree.Store.
func (s *Store) WriteNodes(ctx context.Context, v uint64, nodes []tree.Node) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("couldn't write nodes: %w", err)
	}
	for i := range nodes {
		if err := nodes[i].Check(); err != nil {
			return fmt.Errorf("couldn't write node: %w", err)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkNext(v); err != nil {
		return fmt.Errorf("couldn't write nodes: %w", err)
	}
	if len(nodes) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	var key, val, positions []byte
	// In key order, the memtable inserts each node next to the last one.
	ids := make([]tree.NodeID, len(nodes))
	for i := range nodes {
		ids[i] = nodes[i].ID
	}
	for _, i := range seekOrder(ids) {
		n := &nodes[i]
		key = appendNodeKey(key[:0], n.ID, v)
		val = tree.AppendNode(val[:0], n)
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("couldn't write node: %w", err)
		}
		positions = appendPosition(positions, n.ID)
	}
	if err := b.Set(pendingKey(v, s.seq), positions, nil); err != nil {
		return fmt.Errorf("couldn't write pending record: %w", err)
	}
	// Not synced: Commit's sync covers it.
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("couldn't write nodes: %w", err)
	}
	s.seq++
	for i := range nodes {
		if nodes[i].ID.Depth <= cacheDepth {
			s.written = append(s.written, nodes[i])
		} else {
			s.writtenDeep = append(s.writtenDeep, nodes[i].ID)
		}
	}
	return nil
}

// Commit implements tree.Store.
func (s *Store) Commit(ctx context.Context, v uint64, root tree.Hash) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if v == s.latest && root == s.root {
		return nil
	}
	if err := s.checkNext(v); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set([]byte{tagLatest}, appendLatest(nil, v, root), nil); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	if err := b.DeleteRange(pendingKey(v, 0), pendingKey(v+1, 0), nil); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	// The durable step: once this sync returns, version v and every node
	// written for it survive a crash. Before it, a crash leaves version
	// v-1 and v's pending records, which Open discards.
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	s.cache.mu.Lock()
	for i := range s.written {
		s.cache.put(&s.written[i], v) // in write order: the last write wins
	}
	for i := range s.writtenDeep {
		s.cache.drop(&s.writtenDeep[i]) // read again when needed
	}
	s.mu.Lock()
	s.latest, s.root = v, root
	s.mu.Unlock()
	s.cache.mu.Unlock()
	s.seq = 0
	s.written, s.writtenDeep = nil, nil
	return nil
}

// Discard implements tree.Store.
func (s *Store) Discard(ctx context.Context, v uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("couldn't discard: %w", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if v <= s.latest {
		return fmt.Errorf("couldn't discard version %d (latest %d): %w", v, s.latest, tree.ErrCommitted)
	}
	return s.discard(v)
}

// discard deletes the nodes listed in v's pending records, and the
// records; s.wmu is held (or the store is not shared yet).
func (s *Store) discard(v uint64) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: pendingKey(v, 0), UpperBound: pendingKey(v+1, 0)})
	if err != nil {
		return fmt.Errorf("couldn't list pending nodes: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	var key []byte
	found := false
	for it.First(); it.Valid(); it.Next() {
		found = true
		p, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("couldn't read pending record: %w", err)
		}
		ids, err := parsePositions(p)
		if err != nil {
			return fmt.Errorf("couldn't parse pending record %x: %w", it.Key(), err)
		}
		for _, id := range ids {
			key = appendNodeKey(key[:0], id, v)
			if err := b.Delete(key, nil); err != nil {
				return fmt.Errorf("couldn't delete pending node: %w", err)
			}
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("couldn't list pending nodes: %w", err)
	}
	s.seq = 0
	s.written, s.writtenDeep = nil, nil
	if !found {
		return nil
	}
	if err := b.DeleteRange(pendingKey(v, 0), pendingKey(v+1, 0), nil); err != nil {
		return fmt.Errorf("couldn't delete pending records: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("couldn't discard version %d: %w", v, err)
	}
	return nil
}

// logger keeps pebble's routine messages out of the program's output and
// passes its errors (from background flushes and compactions) to the
// process's slog logger.
type logger struct{}

func (logger) Infof(format string, args ...any) {}
func (logger) Errorf(format string, args ...any) {
	slog.Error("tree/disk: pebble error", "message", fmt.Sprintf(format, args...))
}
func (logger) Fatalf(format string, args ...any) { panic(fmt.Sprintf("tree/disk: "+format, args...)) }
