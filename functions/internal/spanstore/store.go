package spanstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/spanner"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/api/option"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

// DefaultShards is the default number of Log shards.
const DefaultShards = 16

// MaxShards is the largest shard count: the Shard column holds 0..255.
const MaxShards = 256

// Options configures Open.
type Options struct {
	// Database is the database path "projects/P/instances/I/databases/D".
	// Required.
	Database string
	// ClientOptions are passed to the Spanner client (endpoint,
	// credentials). Optional.
	ClientOptions []option.ClientOption
	// ClientConfig is the Spanner client configuration. Optional; in
	// emulator mode its built-in metrics are turned off (the emulator has
	// nowhere to export them).
	ClientConfig spanner.ClientConfig
	// Emulator says the database is the Cloud Spanner emulator, which runs
	// one read-write transaction at a time (concurrent ones fail instead of
	// aborting): the store then serialises its read-write transactions
	// with a process-wide mutex. Never set it for real Spanner, where it
	// would only cost throughput.
	Emulator bool
	// Shards is the number of Log shards appends are spread over (the
	// Shard column is the user index's first byte modulo Shards). Default
	// DefaultShards; at most MaxShards. Readers always cover all 256
	// possible shards, so it may change between deployments.
	Shards int
	// Realm is the public realm config. Optional for every method but
	// AddCosignature, which checks and merges co-signatures with the
	// realm's log key and verifier keys.
	Realm *realm.Config
}

// Store is the Spanner implementation of storage.Store.
type Store struct {
	client   *spanner.Client
	emulator bool
	shards   int
	// queryReads makes tree reads use the real-Spanner query in emulator
	// mode too (tests of that query).
	queryReads bool

	// Set when Options.Realm is: what AddCosignature verifies with.
	origin    string
	logKey    note.Verifier
	cosigners []*checkpoint.CosignatureVerifier
}

var _ storage.Store = (*Store)(nil)

// emulatorRW serialises the read-write transactions of every Store in
// emulator mode: the emulator accepts one at a time (across clients).
var emulatorRW sync.Mutex

// Open connects to the database. It makes no request: a wrong database
// shows up on first use.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Database == "" {
		return nil, errors.New("couldn't open Spanner store: Options.Database is empty")
	}
	shards := opts.Shards
	if shards == 0 {
		shards = DefaultShards
	}
	if shards < 1 || shards > MaxShards {
		return nil, fmt.Errorf("couldn't open Spanner store: Options.Shards = %d, want 1..%d", opts.Shards, MaxShards)
	}
	s := &Store{emulator: opts.Emulator, shards: shards}
	if opts.Realm != nil {
		if err := s.setRealm(opts.Realm); err != nil {
			return nil, fmt.Errorf("couldn't open Spanner store: %w", err)
		}
	}
	cfg := opts.ClientConfig
	if opts.Emulator {
		cfg.DisableNativeMetrics = true
	}
	c, err := spanner.NewClientWithConfig(ctx, opts.Database, cfg, opts.ClientOptions...)
	if err != nil {
		return nil, fmt.Errorf("couldn't open Spanner store: %w", err)
	}
	s.client = c
	return s, nil
}

func (s *Store) setRealm(c *realm.Config) error {
	lv, err := checkpoint.NewVerifier(c.LogKey)
	if err != nil {
		return fmt.Errorf("couldn't parse realm log key: %w", err)
	}
	if lv.Name() != c.Realm {
		return fmt.Errorf("realm log key is named %q, want the realm name %q", lv.Name(), c.Realm)
	}
	cs := make([]*checkpoint.CosignatureVerifier, 0, len(c.Verifiers))
	for i, vk := range c.Verifiers {
		v, err := checkpoint.NewCosignatureVerifier(vk)
		if err != nil {
			return fmt.Errorf("couldn't parse realm verifier key %d: %w", i, err)
		}
		cs = append(cs, v)
	}
	s.origin, s.logKey, s.cosigners = c.Realm, lv, cs
	return nil
}

// Close closes the Spanner client.
func (s *Store) Close() { s.client.Close() }

// Client returns the underlying Spanner client (for tools and tests that
// read the database directly).
func (s *Store) Client() *spanner.Client { return s.client }

// rw runs f in a read-write transaction (retried by the client on ABORTED),
// serialised in emulator mode. An error f returns comes back unchanged
// (errors.Is works on it).
func (s *Store) rw(ctx context.Context, f func(context.Context, *spanner.ReadWriteTransaction) error) (time.Time, error) {
	if s.emulator {
		emulatorRW.Lock()
		defer emulatorRW.Unlock()
	}
	var ferr error
	ts, err := s.client.ReadWriteTransaction(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		ferr = f(ctx, tx)
		return ferr
	})
	if err != nil && ferr != nil && errors.Is(err, ferr) {
		// f's own error (a sentinel such as ErrFenced), which the client
		// returned or wrapped: return it as is.
		return ts, ferr
	}
	return ts, err
}

// Tree implements storage.Store: the tree store without fencing (readers,
// tools, the conformance suite).
func (s *Store) Tree() tree.Store { return &treeStore{s: s} }

// FencedTree implements storage.Store.
func (s *Store) FencedTree(token int64) tree.Store {
	return &treeStore{s: s, fenced: true, token: token}
}

// Entries implements storage.Store.
func (s *Store) Entries() statemachine.Entries { return entries{s} }

// LogHashes implements storage.Store.
func (s *Store) LogHashes() checkpoint.HashReader { return logHashes{s} }

// emulatorChunk bounds the rows of one write transaction in emulator mode:
// the emulator's commit time grows with the square of the mutations in it
// (measured with emulator 1.5.28: 500 rows 0.5 s, 4,000 rows 39 s), so it
// is fastest with small commits: ~6,000 tree nodes/s at 20 to 40 rows per
// commit, ~4,600 at 100, ~2,400 at 250.
const emulatorChunk = 32

// chunk returns the rows per write transaction: n, or emulatorChunk in
// emulator mode.
func (s *Store) chunk(n int) int {
	if s.emulator {
		return min(n, emulatorChunk)
	}
	return n
}

// firstReader is what single-use and read-write transactions share for
// limited reads.
type firstReader interface {
	ReadWithOptions(ctx context.Context, table string, keys spanner.KeySet, columns []string, opts *spanner.ReadOptions) *spanner.RowIterator
}

// readFirst reads the first row (in key order) of keys into dst and
// reports whether there was one. It is a key read, a seek even on the
// emulator (which evaluates every query by scanning).
func readFirst(ctx context.Context, r firstReader, table string, keys spanner.KeySet, cols []string, dst ...any) (bool, error) {
	found := false
	err := r.ReadWithOptions(ctx, table, keys, cols, &spanner.ReadOptions{Limit: 1}).Do(func(row *spanner.Row) error {
		found = true
		return row.Columns(dst...)
	})
	return found, err
}

// shardOf returns the Log shard of a user index.
func (s *Store) shardOf(index [32]byte) int64 { return int64(int(index[0]) % s.shards) }

// allBuckets lists every value of the generated Bucket columns.
var allBuckets = func() [][]byte {
	a := make([][]byte, 256)
	for i := range a {
		a[i] = []byte{byte(i)}
	}
	return a
}()

// The zero time.Time (0001-01-01T00:00:00Z, Spanner's smallest timestamp)
// stands for "the log's beginning": stored as NULL in PrevCutTs columns.
func nullTime(t time.Time) spanner.NullTime {
	if t.IsZero() {
		return spanner.NullTime{}
	}
	return spanner.NullTime{Time: t, Valid: true}
}

func fromNullTime(t spanner.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// int64Of converts a uint64 that the caller knows fits (epochs, versions).
func int64Of(field string, v uint64) (int64, error) {
	if v > 1<<62 {
		return 0, fmt.Errorf("%s %d out of range", field, v)
	}
	return int64(v), nil
}
