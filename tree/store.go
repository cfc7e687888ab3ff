package tree

import (
	"context"
	"errors"
)

// Store keeps the nodes of every version of a tree. Version 0 is the empty
// tree and is always committed; version v+1 is built on top of version v.
//
// A read at version v returns, at each position, the newest node written at
// a version ≤ v, or Absent if there is none or it is a Deleted marker.
//
// Promises every implementation keeps (tree/treetest checks each one):
//
//   - Versions: Latest starts at 0 with root Empty. Nodes are written for
//     exactly one version at a time, Latest+1, and Commit(Latest+1) makes
//     them visible. Committed versions are immutable: no write, commit or
//     discard at a version ≤ Latest succeeds (ErrCommitted), except the
//     idempotent repeat of the last Commit with the same root.
//   - Isolation: nodes of an uncommitted version are invisible. Reads at a
//     version > Latest fail with ErrNotCommitted, so no read can observe a
//     partly written version, and reads at committed versions are never
//     affected by writes of the next version.
//   - Atomicity: Commit is all or nothing. Once a reader sees Latest() = v,
//     ReadNodes at v sees every node written for v.
//   - Durability (persistent stores): a version is durable when Commit
//     returns; after a crash the store reopens at the last committed
//     version. Nodes written for an uncommitted version may survive a crash
//     but stay invisible until Discard removes them (Tree.Update always
//     discards Latest+1 before writing it, so a failed attempt can never
//     leak into a later commit).
//   - Idempotency: writing a node at a position already written in the same
//     uncommitted version replaces it, so retrying WriteNodes is harmless.
//   - Concurrency: all methods are safe for concurrent use. Reads may run
//     concurrently with writes, commits and discards of the next version.
//     Only one writer should build a version at a time (Conifer's epoch
//     lease); a Discard racing a WriteNodes of the same version leaves an
//     unspecified subset of that version's nodes.
type Store interface {
	// Latest returns the newest committed version and its root (0 and
	// Empty for a fresh store).
	Latest(ctx context.Context) (version uint64, root Hash, err error)

	// ReadNodes returns, for each of ids, the node visible at version v:
	// nodes[i].ID == ids[i], with Kind Absent where nothing is visible.
	// It is one batched read (one round trip for remote stores), ids may
	// repeat, and v must be committed (else ErrNotCommitted).
	ReadNodes(ctx context.Context, v uint64, ids []NodeID) (nodes []Node, err error)

	// WriteNodes stores nodes (Internal, Leaf or Deleted, each valid by
	// Node.Check) for version v, which must be Latest+1 (else ErrCommitted
	// or ErrVersionGap). It may be called many times per version; callers
	// split large versions into batches of at most MaxWriteBatch nodes.
	WriteNodes(ctx context.Context, v uint64, nodes []Node) error

	// Commit atomically makes version v = Latest+1 visible, recording its
	// root (which the store does not check). Committing the latest version
	// again with the same root is a no-op; any other v ≤ Latest fails with
	// ErrCommitted, and v > Latest+1 with ErrVersionGap.
	Commit(ctx context.Context, v uint64, root Hash) error

	// Discard removes every node written for the uncommitted version v
	// (nothing if none were). It fails with ErrCommitted if v ≤ Latest.
	Discard(ctx context.Context, v uint64) error
}

// MaxWriteBatch is the largest number of nodes the Tree passes to one
// WriteNodes call. With a handful of columns per node row it keeps one
// call within Spanner's 80,000-mutation commit limit.
const MaxWriteBatch = 4096

var (
	// ErrCommitted means a write, commit or discard named a version that is
	// already committed (or an update was based on an old version).
	ErrCommitted = errors.New("tree: version already committed")
	// ErrNotCommitted means a read named a version that is not committed
	// yet.
	ErrNotCommitted = errors.New("tree: version not committed")
	// ErrVersionGap means a write or commit skipped past Latest+1.
	ErrVersionGap = errors.New("tree: version is not the next one")
	// ErrMalformedNode means a node or node encoding is not canonical.
	ErrMalformedNode = errors.New("tree: malformed node")
	// ErrCorrupt means the nodes a store returned do not form a valid tree.
	ErrCorrupt = errors.New("tree: store is inconsistent")
	// ErrDuplicateKey means an update named the same key twice.
	ErrDuplicateKey = errors.New("tree: duplicate key in update")
	// ErrMalformedProof means a proof is not canonical or cannot occur.
	ErrMalformedProof = errors.New("tree: malformed proof")
	// ErrProofMismatch means a well-formed proof does not prove the claim:
	// wrong kind, wrong key, or it leads to a different root.
	ErrProofMismatch = errors.New("tree: proof does not verify")
)
