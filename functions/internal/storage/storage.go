// Package storage is the contract between Conifer's functions and their
// database: the operations the update, lookup, history, checkpoint, feed,
// ratify and epoch functions perform, as one interface. The production
// implementation is Spanner (package spanstore); tests wrap it (e.g. a
// tracing wrapper that records the order of durable writes and network
// publications, to prove "durability before visibility").
//
// Promises every implementation keeps:
//   - Consistency: every read method reads one consistent snapshot; reads
//     never see rows of an epoch that is not committed (tree nodes, leaf
//     records, epoch log nodes of epoch N are written before epoch N's row,
//     and readers filter by the newest committed epoch).
//   - Durability: a method that returns nil has made its writes durable.
//   - Idempotency: every write of the epoch path may be repeated with the
//     same arguments (a retried or overlapping epoch run) with the same result.
//   - Concurrency: safe for concurrent use. (On the Spanner emulator, which
//     allows one read-write transaction at a time, the implementation
//     serialises its read-write transactions itself.)
//   - Retries: implementations retry transient errors (Spanner's client
//     retries ABORTED transactions); errors returned are final for the call.
package storage

import (
	"context"
	"errors"
	"time"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: the epoch, user or bundle asked for does not exist (yet).
	ErrNotFound = errors.New("not found")
	// ErrLeaseHeld: another holder owns the epoch lease and it has not expired.
	ErrLeaseHeld = errors.New("epoch lease held by another runner")
	// ErrFenced: the caller's lease token is no longer current (another
	// runner took the lease); the caller must stop writing.
	ErrFenced = errors.New("epoch lease lost (fencing token superseded)")
	// ErrConflict: an epoch row already exists with different contents —
	// a broken invariant (two different epoch N), never expected.
	ErrConflict = errors.New("conflicting epoch already committed")
)

// EpochLease is the name of the lease the epoch function holds: its
// fencing token is the one CreateAttempt, WriteLeafRecords, FencedTree and
// CommitEpoch check.
const EpochLease = "epoch"

// PendingUser is the newest entry appended to the log for a user (which the
// epoch may not have applied yet).
type PendingUser struct {
	Version     uint64
	EntryHash   [32]byte
	SignedEntry []byte
}

// Append is one update for the log.
type Append struct {
	Index       [32]byte
	Record      []byte // encoded format.LogRecord
	Version     uint64
	EntryHash   [32]byte
	SignedEntry []byte
	// Profile and Opening are stored for lookups (nil for a tombstone).
	Profile []byte
	Opening []byte
}

// LogRow is one sequenced log record.
type LogRow struct {
	CommitTs time.Time
	Shard    int64
	Seq      [16]byte
	Index    [32]byte
	Record   []byte
}

// Epoch is one committed epoch.
type Epoch struct {
	Epoch uint64
	Head  []byte // encoded format.EpochHead
	// Checkpoint is the signed note of the epoch log at size Epoch+1, with
	// the keyserver's signature and every co-signature stored so far merged in.
	Checkpoint []byte
	// HeadProof is the inclusion proof of Head (leaf Epoch) in the tree of
	// size Epoch+1.
	HeadProof   [][32]byte
	Cosigners   []string // names of the verifiers whose co-signatures are merged
	PrevCut     time.Time
	Cut         time.Time
	UpdateCount int64
	CommittedAt time.Time
	Published   bool
}

// Attempt is the durable record of an epoch in progress: a crashed run is
// redone with exactly these inputs.
type Attempt struct {
	Epoch   uint64
	PrevCut time.Time // zero for the first epochs (the log's beginning)
	Cut     time.Time // zero only for the genesis epoch 0
	Time    uint64    // epoch head time, Unix ms
	Token   int64     // lease fencing token of the run that made it
	// Updates is the number of log rows in (PrevCut, Cut], counted when
	// cutting; a redo that reads another number refuses to go on.
	Updates int64
}

// UserState is what lookup and history need about one user at one epoch.
type UserState struct {
	// Records are the user's applied versions with epoch ≤ the epoch read,
	// oldest first.
	Records []UserRecord
	// Profile and Opening of the newest record (nil if erased or absent).
	Profile []byte
	Opening []byte
}

// UserRecord is one applied version.
type UserRecord struct {
	Version     uint64
	Epoch       uint64
	LeafRecord  []byte
	SignedEntry []byte
}

// EpochCommit is everything written atomically when epoch N commits.
type EpochCommit struct {
	Epoch      uint64
	Head       []byte
	Checkpoint []byte // signed by the keyserver
	HeadProof  [][32]byte
	TreeRoot   [32]byte
	LogNodes   []checkpoint.Node // new epoch-log nodes of this append
	Rejected   []statemachine.Rejected
	// RejectedRows[i] is the log row of Rejected[i] (its key is what a
	// receipt names).
	RejectedRows []LogRow
	Tombstoned   map[[32]byte]uint64 // user index → tombstone version: erase profiles of versions ≤ it
	UpdateCount  int64
}

// Store is everything the functions need from the database.
type Store interface {
	// --- update function ---

	// AppendUpdate reads the user's pending state in a read-write
	// transaction and calls check with it (nil for an unknown user). If check
	// fails, nothing is written and its error is returned unchanged. Otherwise
	// the log row (commit-timestamp sequenced, sharded), the new pending
	// state and the profile are written in the same transaction. Two updates
	// of one user therefore serialise, and their commit timestamps order them.
	AppendUpdate(ctx context.Context, a Append, check func(prev *PendingUser) error) (LogRow, error)

	// --- readers (lookup, history, checkpoint, feed) ---

	// LatestEpoch returns the newest committed epoch co-signed by at least
	// quorum of the named verifiers (quorum 0: the newest epoch).
	LatestEpoch(ctx context.Context, verifiers []string, quorum int) (*Epoch, error)
	// GetEpoch returns committed epoch n, or ErrNotFound.
	GetEpoch(ctx context.Context, n uint64) (*Epoch, error)
	// User returns a user's state as of committed epoch n.
	User(ctx context.Context, n uint64, index [32]byte) (*UserState, error)
	// Tree is the Merkle prefix tree store (reads at committed versions;
	// writes through the epoch path).
	Tree() tree.Store
	// LogHashes reads stored epoch-log node hashes.
	LogHashes() checkpoint.HashReader
	// Records returns the log rows of committed epoch n in log order.
	Records(ctx context.Context, n uint64) ([]LogRow, error)

	// --- ratify ---

	// AddCosignature stores a verifier's co-signature line for epoch n
	// (idempotent: a second one from the same verifier keeps the first) and
	// returns the epoch with the signature merged into its checkpoint.
	AddCosignature(ctx context.Context, n uint64, verifier string, signatureLine []byte) (*Epoch, error)

	// --- epoch function ---

	// AcquireLease takes or renews the named lease for holder until now+ttl
	// and returns its fencing token (a new, larger token whenever the holder
	// changes). ErrLeaseHeld if another holder's lease has not expired.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (int64, error)
	// ReleaseLease gives the lease up if token is still current.
	ReleaseLease(ctx context.Context, name string, token int64) error
	// NewestEpoch returns the newest committed epoch (ErrNotFound before genesis).
	NewestEpoch(ctx context.Context) (*Epoch, error)
	// WaitingSince proposes the next cut: it returns cut, a strong-read
	// timestamp taken in the same read, and the number n of log rows with
	// prevCut < CommitTs ≤ cut. If more than limit rows are waiting, cut is
	// moved back to the commit timestamp of a row so that n ≤ limit (unless
	// more than limit rows share the first commit timestamp, when n counts
	// them all).
	WaitingSince(ctx context.Context, prevCut time.Time, limit int) (n int, cut time.Time, err error)
	// GetAttempt returns the recorded attempt for epoch n, or ErrNotFound.
	GetAttempt(ctx context.Context, n uint64) (*Attempt, error)
	// CreateAttempt records a.Cut etc. for epoch a.Epoch if no attempt exists
	// and a.Token is the current lease token (else ErrFenced); returns the
	// attempt now recorded (an existing one wins, and records a.Token as the
	// token of its newest attempt). a.Epoch must be the newest committed
	// epoch + 1 and a.PrevCut its cut.
	CreateAttempt(ctx context.Context, a Attempt) (*Attempt, error)
	// ReadLog returns the log rows with prevCut < CommitTs ≤ cut, ordered by
	// (CommitTs, Shard, Seq), read at exactly timestamp cut.
	ReadLog(ctx context.Context, prevCut, cut time.Time) ([]LogRow, error)
	// Entries gives the state machine the newest applied state of users.
	Entries() statemachine.Entries
	// WriteLeafRecords stores the applied records of epoch n (invisible until
	// epoch n commits), in as many transactions as needed, each fenced by
	// token (ErrFenced once another runner took the lease).
	WriteLeafRecords(ctx context.Context, token int64, n uint64, applied []statemachine.Applied) error
	// FencedTree is Tree for the epoch's writes: its WriteNodes, Commit and
	// Discard fail with ErrFenced unless token is the current lease token,
	// so a runner that lost the lease can never discard or overwrite the
	// nodes of the runner that took it over.
	FencedTree(token int64) tree.Store
	// CommitEpoch atomically writes the epoch row (cut and time from the
	// recorded attempt, which stays as an audit trail), the tree version's
	// root, the epoch-log nodes and rejections, and erases tombstoned
	// profiles — if token is the current lease token (else ErrFenced).
	// Before that transaction it rewinds, in fenced and idempotent
	// transactions of their own, the pending state of users whose newest
	// appended entry the epoch rejected to their newest applied entry (the
	// epoch's leaf records included), so they can send a valid successor.
	// If the epoch is already committed with the same head it returns nil
	// (a retried commit); with a different head, ErrConflict.
	CommitEpoch(ctx context.Context, token int64, c EpochCommit) error
	// Unpublished lists committed epochs not yet marked published, oldest first.
	Unpublished(ctx context.Context) ([]uint64, error)
	// MarkPublished records that epoch n's bundle reached Pub/Sub. Epochs are
	// marked in order: n-1 must be marked already.
	MarkPublished(ctx context.Context, n uint64) error
}
