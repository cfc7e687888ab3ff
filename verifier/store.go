package verifier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/compact"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/statemachine"
)

// The state database is a pebble key-value store beside the tree's own
// (package tree/disk). Every key starts with a one-byte tag; integers are
// big-endian:
//
//	'M'                               → meta
//	'S'                               → size:uint64        (epochs verified; the newest is size-1)
//	'P'                               → redo bundle        (the encoded bundle of epoch size-1)
//	'H' ‖ epoch:uint64                → epoch record
//	'L' ‖ level:uint8 ‖ index:uint64  → hash[32]           (epoch log node, see checkpoint.AppendLeaf)
//	'U' ‖ index[32] ‖ ^epoch:uint64   → user record        (the user's newest state as of epoch)
//	'C' ‖ epoch:uint64                → cosignature record
//	'Q' ‖ epoch:uint64                → empty              (cosignature not yet ratified)
//	'X'                               → halt record (JSON, see Halt)
//
//	meta      = uint8 realm_len ‖ realm ‖ uint16 log_key_len ‖ log_key ‖ uint16 name_len ‖ name
//	epoch     = digest[32] ‖ uint16 head_len ‖ head ‖ uint32 note_len ‖ note
//	user      = leaf_record[72] ‖ signed_entry
//	cosig     = state:uint8 ‖ line              (state 0 pending, 1 ratified, 2 abandoned)
//
// digest is the bundle digest (H("conifer/bundle-digest/v1", bundle), as in
// format.BundleChunk), head the verified encoded epoch head, note the
// keyserver's signed checkpoint as received, line the note signature line
// this verifier made. The epoch inverted in user keys makes the newest
// record of an index at an epoch ≤ v the first key at or after
// 'U' ‖ index ‖ ^v, so Entries.Latest is one seek per index and records of
// an epoch not yet committed to the tree are invisible to reads of earlier
// epochs (which is what makes recovery simple; see Open).
const (
	tagMeta   = 'M'
	tagSize   = 'S'
	tagRedo   = 'P'
	tagEpoch  = 'H'
	tagLog    = 'L'
	tagUser   = 'U'
	tagCosig  = 'C'
	tagQueue  = 'Q'
	tagHalt   = 'X'
	userKeyLn = 1 + 32 + 8
	leafLen   = 72
)

// Cosignature record states.
const (
	cosigPending   = 0
	cosigRatified  = 1
	cosigAbandoned = 2
)

// errCorrupt is wrapped when the stored state cannot be decoded or
// contradicts itself.
var errCorrupt = errors.New("verifier: stored state is corrupt")

// stateDB is the verifier's own key-value data: everything but the tree.
// It has one writer (the Verifier, under its mutex); reads are safe
// concurrently with writes.
type stateDB struct {
	db *pebble.DB
}

func openStateDB(dir string) (*stateDB, error) {
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		Cache:        cache,
		MemTableSize: 16 << 20,
		Logger:       quietLogger{},
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't open state database: %w", err)
	}
	return &stateDB{db: db}, nil
}

func (s *stateDB) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("couldn't close state database: %w", err)
	}
	return nil
}

// get returns a copy of the value of key, or nil and false.
func (s *stateDB) get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

func epochKey(tag byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tag}, n)
}

func logKey(id compact.NodeID) []byte {
	if id.Level > 63 {
		panic("verifier: log node level out of range")
	}
	return binary.BigEndian.AppendUint64([]byte{tagLog, byte(id.Level)}, id.Index)
}

func appendUserKey(b []byte, index [32]byte, epoch uint64) []byte {
	b = append(b, tagUser)
	b = append(b, index[:]...)
	return binary.BigEndian.AppendUint64(b, ^epoch)
}

// meta is what a data directory is bound to: a verifier never mixes the
// state of two realms, keyserver keys or cosigner names.
type meta struct {
	realm, logKey, name string
}

func (m meta) marshal() []byte {
	b := []byte{byte(len(m.realm))}
	b = append(b, m.realm...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.logKey)))
	b = append(b, m.logKey...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.name)))
	return append(b, m.name...)
}

func parseMeta(b []byte) (meta, error) {
	var m meta
	r := byteReader{b}
	var realm, key, name []byte
	if !r.u8Bytes(&realm) || !r.u16Bytes(&key) || !r.u16Bytes(&name) || len(r.b) != 0 {
		return m, fmt.Errorf("%w: meta record", errCorrupt)
	}
	return meta{string(realm), string(key), string(name)}, nil
}

// checkMeta binds a fresh directory to m, or checks that it is bound to m.
func (s *stateDB) checkMeta(m meta) error {
	if len(m.realm) > 255 || len(m.logKey) > 0xffff || len(m.name) > 0xffff {
		return fmt.Errorf("verifier: realm, log key or name too long")
	}
	b, ok, err := s.get([]byte{tagMeta})
	if err != nil {
		return fmt.Errorf("couldn't read meta record: %w", err)
	}
	if !ok {
		if err := s.db.Set([]byte{tagMeta}, m.marshal(), pebble.Sync); err != nil {
			return fmt.Errorf("couldn't write meta record: %w", err)
		}
		return nil
	}
	got, err := parseMeta(b)
	if err != nil {
		return err
	}
	if got != m {
		return fmt.Errorf("%w: the data directory belongs to realm %q (log key %q, cosigner %q), not realm %q (log key %q, cosigner %q)",
			ErrWrongDirectory, got.realm, got.logKey, got.name, m.realm, m.logKey, m.name)
	}
	return nil
}

// size returns the number of verified epochs.
func (s *stateDB) size() (uint64, error) {
	b, ok, err := s.get([]byte{tagSize})
	if err != nil {
		return 0, fmt.Errorf("couldn't read size: %w", err)
	}
	if !ok {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: size record of %d bytes", errCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// epochRecord is what the verifier keeps of each verified epoch.
type epochRecord struct {
	digest [32]byte
	head   []byte // encoded format.EpochHead, as verified
	note   []byte // the keyserver's signed checkpoint, as received
}

func (e *epochRecord) marshal() []byte {
	b := make([]byte, 0, 32+2+len(e.head)+4+len(e.note))
	b = append(b, e.digest[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.head)))
	b = append(b, e.head...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.note)))
	return append(b, e.note...)
}

func parseEpochRecord(b []byte) (*epochRecord, error) {
	e := &epochRecord{}
	r := byteReader{b}
	if !r.copy(e.digest[:]) || !r.u16Bytes(&e.head) || !r.u32Bytes(&e.note) || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: epoch record", errCorrupt)
	}
	return e, nil
}

// epoch returns the record of verified epoch n, or nil if there is none.
func (s *stateDB) epoch(n uint64) (*epochRecord, error) {
	b, ok, err := s.get(epochKey(tagEpoch, n))
	if err != nil {
		return nil, fmt.Errorf("couldn't read epoch %d: %w", n, err)
	}
	if !ok {
		return nil, nil
	}
	return parseEpochRecord(b)
}

// redo returns the stored bundle of the newest verified epoch.
func (s *stateDB) redo() ([]byte, bool, error) {
	b, ok, err := s.get([]byte{tagRedo})
	if err != nil {
		return nil, false, fmt.Errorf("couldn't read redo bundle: %w", err)
	}
	return b, ok, nil
}

// epochCommit is everything one verified epoch adds to the state.
type epochCommit struct {
	epoch  uint64
	record epochRecord
	bundle []byte // for the redo record; nil for epoch 0
	users  []statemachine.Applied
	nodes  []checkpoint.Node
}

// commitEpoch writes a verified epoch in one synced batch. It is the
// verifier's durable step: afterwards the epoch counts as verified even if
// the tree commit that follows is lost in a crash (Open then redoes the
// tree from the redo bundle).
func (s *stateDB) commitEpoch(c *epochCommit) error {
	b := s.db.NewBatch()
	defer b.Close()
	set := func(k, v []byte) error { return b.Set(k, v, nil) }
	if err := set(epochKey(tagEpoch, c.epoch), c.record.marshal()); err != nil {
		return fmt.Errorf("couldn't write epoch %d: %w", c.epoch, err)
	}
	for _, n := range c.nodes {
		if err := set(logKey(n.ID), n.Hash[:]); err != nil {
			return fmt.Errorf("couldn't write log node: %w", err)
		}
	}
	// Only a user's last applied record of the epoch is its state.
	last := map[[32]byte]int{}
	for i := range c.users {
		last[c.users[i].Index] = i
	}
	var key, val []byte
	for i := range c.users {
		a := &c.users[i]
		if last[a.Index] != i {
			continue
		}
		if len(a.LeafRecord) != leafLen {
			panic("verifier: statemachine made a leaf record that is not 72 bytes")
		}
		key = appendUserKey(key[:0], a.Index, c.epoch)
		val = append(append(val[:0], a.LeafRecord...), a.SignedEntry...)
		if err := set(key, val); err != nil {
			return fmt.Errorf("couldn't write user state: %w", err)
		}
	}
	if c.bundle != nil {
		if err := set([]byte{tagRedo}, c.bundle); err != nil {
			return fmt.Errorf("couldn't write redo bundle: %w", err)
		}
	}
	if err := set([]byte{tagSize}, binary.BigEndian.AppendUint64(nil, c.epoch+1)); err != nil {
		return fmt.Errorf("couldn't write size: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("couldn't commit epoch %d: %w", c.epoch, err)
	}
	return nil
}

// Latest implements statemachine.Entries: one iterator (a consistent
// snapshot), one seek per index, in index order.
func (s *stateDB) Latest(ctx context.Context, version uint64, indexes [][32]byte) (map[[32]byte]statemachine.Latest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagUser}, UpperBound: []byte{tagUser + 1}})
	if err != nil {
		return nil, fmt.Errorf("couldn't read user state: %w", err)
	}
	defer it.Close()
	out := make(map[[32]byte]statemachine.Latest, len(indexes))
	key := make([]byte, 0, userKeyLn)
	for _, idx := range indexes {
		key = appendUserKey(key[:0], idx, version)
		if !it.SeekGE(key) {
			continue
		}
		k := it.Key()
		if len(k) != userKeyLn || !bytes.Equal(k[1:33], idx[:]) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("couldn't read user state: %w", err)
		}
		if len(v) <= leafLen {
			return nil, fmt.Errorf("%w: user record of %d bytes", errCorrupt, len(v))
		}
		out[idx] = statemachine.Latest{LeafRecord: bytes.Clone(v[:leafLen]), SignedEntry: bytes.Clone(v[leafLen:])}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("couldn't read user state: %w", err)
	}
	return out, nil
}

// ReadHashes implements checkpoint.HashReader over the stored log nodes.
func (s *stateDB) ReadHashes(ids []compact.NodeID) ([][32]byte, error) {
	out := make([][32]byte, len(ids))
	for i, id := range ids {
		if id.Level > 63 {
			return nil, fmt.Errorf("couldn't read log node (%d, %d): %w", id.Level, id.Index, checkpoint.ErrNodeNotFound)
		}
		v, ok, err := s.get(logKey(id))
		if err != nil {
			return nil, fmt.Errorf("couldn't read log node (%d, %d): %w", id.Level, id.Index, err)
		}
		if !ok {
			return nil, fmt.Errorf("couldn't read log node (%d, %d): %w", id.Level, id.Index, checkpoint.ErrNodeNotFound)
		}
		if len(v) != 32 {
			return nil, fmt.Errorf("%w: log node of %d bytes", errCorrupt, len(v))
		}
		out[i] = [32]byte(v)
	}
	return out, nil
}

// cosig is a stored cosignature.
type cosig struct {
	state uint8
	line  string
}

func (s *stateDB) cosig(n uint64) (*cosig, error) {
	b, ok, err := s.get(epochKey(tagCosig, n))
	if err != nil {
		return nil, fmt.Errorf("couldn't read cosignature %d: %w", n, err)
	}
	if !ok {
		return nil, nil
	}
	if len(b) < 2 || b[0] > cosigAbandoned {
		return nil, fmt.Errorf("%w: cosignature record", errCorrupt)
	}
	return &cosig{state: b[0], line: string(b[1:])}, nil
}

// putCosig records a new cosignature of epoch n and queues it for Ratify.
// It is not synced: a lost record is signed again on the next start.
func (s *stateDB) putCosig(n uint64, line string, queue bool) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(epochKey(tagCosig, n), append([]byte{cosigPending}, line...), nil); err != nil {
		return err
	}
	if queue {
		if err := b.Set(epochKey(tagQueue, n), nil, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("couldn't record cosignature %d: %w", n, err)
	}
	return nil
}

// finishCosig marks a cosignature ratified or abandoned and dequeues it.
func (s *stateDB) finishCosig(n uint64, state uint8) error {
	c, err := s.cosig(n)
	if err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("%w: no cosignature for queued epoch %d", errCorrupt, n)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(epochKey(tagCosig, n), append([]byte{state}, c.line...), nil); err != nil {
		return err
	}
	if err := b.Delete(epochKey(tagQueue, n), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("couldn't update cosignature %d: %w", n, err)
	}
	return nil
}

// newestQueued returns the newest epoch whose cosignature waits for
// Ratify, if any.
func (s *stateDB) newestQueued() (uint64, bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagQueue}, UpperBound: []byte{tagQueue + 1}})
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, false, it.Error()
	}
	k := it.Key()
	if len(k) != 9 {
		return 0, false, fmt.Errorf("%w: queue key", errCorrupt)
	}
	return binary.BigEndian.Uint64(k[1:]), true, nil
}

// queueLen counts the cosignatures waiting for Ratify.
func (s *stateDB) queueLen() (int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagQueue}, UpperBound: []byte{tagQueue + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Error()
}

// halt returns the stored halt record, if any.
func (s *stateDB) halt() ([]byte, bool, error) {
	return s.get([]byte{tagHalt})
}

// setHalt durably stops signing.
func (s *stateDB) setHalt(b []byte) error {
	if err := s.db.Set([]byte{tagHalt}, b, pebble.Sync); err != nil {
		return fmt.Errorf("couldn't record halt: %w", err)
	}
	return nil
}

// byteReader reads length-prefixed fields.
type byteReader struct{ b []byte }

func (r *byteReader) take(n int) ([]byte, bool) {
	if n < 0 || len(r.b) < n {
		return nil, false
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, true
}

func (r *byteReader) copy(dst []byte) bool {
	v, ok := r.take(len(dst))
	copy(dst, v)
	return ok
}

func (r *byteReader) u8Bytes(dst *[]byte) bool {
	n, ok := r.take(1)
	if !ok {
		return false
	}
	v, ok := r.take(int(n[0]))
	*dst = slices.Clone(v)
	return ok
}

func (r *byteReader) u16Bytes(dst *[]byte) bool {
	n, ok := r.take(2)
	if !ok {
		return false
	}
	v, ok := r.take(int(binary.BigEndian.Uint16(n)))
	*dst = slices.Clone(v)
	return ok
}

func (r *byteReader) u32Bytes(dst *[]byte) bool {
	n, ok := r.take(4)
	if !ok {
		return false
	}
	v, ok := r.take(int(binary.BigEndian.Uint32(n)))
	*dst = slices.Clone(v)
	return ok
}

// quietLogger drops pebble's informational logs and keeps its errors
// going to standard error through the default pebble logger's format.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}

var (
	_ statemachine.Entries  = (*stateDB)(nil)
	_ checkpoint.HashReader = (*stateDB)(nil)
)
