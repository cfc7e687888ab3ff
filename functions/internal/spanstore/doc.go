// Package spanstore implements storage.Store, the database of Conifer's
// functions, on Cloud Spanner, with the schema of infra/schema.sql (whose
// comments document every table, key and column).
//
// # Where an update becomes durable, and when it becomes visible
//
//   - AppendUpdate: one read-write transaction reads the user's Users row
//     (locking the user), runs the caller's check, and writes the Log row
//     (Shard = first byte of the user index mod Options.Shards, CommitTs =
//     the commit timestamp, Seq = 16 random bytes), the new Users row and the
//     profile. The update is durable when it returns; it is in an epoch once
//     a cut at or after its commit timestamp commits.
//   - The epoch path (package epoch) writes, fenced by the epoch lease's
//     token, in this order: the attempt (EpochAttempts: the cut and time, so
//     a redo makes the same epoch), the tree nodes of version N (TreeNodes,
//     through FencedTree), the leaf records of epoch N (LeafRecords), and
//     finally CommitEpoch: one transaction writing the Epochs row, the tree
//     version marker, the epoch-log nodes and the rejections. Nothing of
//     epoch N is visible before that transaction: every reader filters by
//     the newest committed epoch (Epochs) or tree version marker, and the
//     rows of an uncommitted epoch have a larger epoch / version.
//
// # Reads
//
// Every read method is one single-use query (one round trip, one snapshot;
// the emulator fails multi-use read-only transactions beside read-write
// ones), built so that the committed-ness check and the data come from the
// same snapshot:
//
//   - tree reads at version v (ReadNodes): for each position, the row with
//     the largest Version ≤ v, with UNNEST over all positions of the batch
//     and the newest version marker in the same query (ErrNotCommitted if v
//     is above it);
//   - Entries.Latest: for each index, the leaf record with the largest
//     version among epochs ≤ v;
//   - User: the records of epochs ≤ n, the profile of the newest, and the
//     newest committed epoch;
//   - epochs: the Epochs row with its co-signatures (LatestEpoch counts
//     them in the query).
//
// # Fencing
//
// The lease named storage.EpochLease is a Leases row whose Token increases
// whenever another holder takes it (expiry is judged by Spanner's clock).
// Every epoch write (CreateAttempt, FencedTree's WriteNodes/Commit/Discard,
// WriteLeafRecords, the rewinds and the commit of CommitEpoch) reads that
// row in its read-write transaction and fails with storage.ErrFenced unless
// the token is current; reading the row makes a concurrent takeover
// conflict with the write, so a runner that lost its lease can never
// discard or overwrite the nodes of the runner that took it over.
//
// # Tree versions
//
// The tree store keeps one marker row per committed version in TreeNodes at
// the reserved Position 0xff…ff‖0x0000 (not a canonical position), whose
// Node is the version's root; see tree.go. CommitEpoch writes the marker of
// version N in the epoch's commit transaction.
//
// # Co-signatures
//
// Epochs.Checkpoint holds the note signed by the keyserver; Cosignatures one
// row per verifier (the first one stays). A read appends the co-signature
// lines to the note in checkpoint.Merge's order (key name, then key ID), so
// readers get one deterministic note; AddCosignature verifies the new line
// with checkpoint.Merge against the realm's keys before storing it.
//
// # Emulator mode
//
// The Cloud Spanner emulator runs one read-write transaction at a time and
// fails (not aborts) concurrent ones; with Options.Emulator the store
// serialises its read-write transactions with a process-wide mutex. Real
// Spanner needs no such thing.
//
// # Sizes
//
// Every write transaction stays far below Spanner's 80,000 mutations: tree
// nodes go in chunks of 4,096 (~20,000 mutations), leaf records of 5,000
// (~35,000), rewinds of 2,000 users, and the commit carries at most about
// 6 mutations per rejected update (the epoch function bounds epochs to
// 12,000 updates).
package spanstore
