// Package epoch is Conifer's epoch function: it cuts the update log, replays
// the cut through the statemachine into a new tree version, appends the
// epoch head to the epoch log, has the checkpoint signed (Cloud KMS),
// commits the epoch and publishes its bundle to the verifiers. Runner.Run
// is one invocation; ServeHTTP (Cloud Scheduler) and HandleCloudEvent
// (Pub/Sub trigger) are its entry points.
//
// It is orchestration only: every decision about updates is the
// statemachine's, every byte format is package format's or checkpoint's,
// and every durable write goes through storage.Store, whose implementation
// (spanstore) makes the writes of an uncommitted epoch invisible to readers.
//
// # One invocation
//
//  1. Take the epoch lease (storage.EpochLease). Its fencing token rides on
//     every durable write below; a runner whose lease was taken over gets
//     storage.ErrFenced at its next write and stops, so two overlapping
//     invocations never produce two different epoch N. Another holder →
//     the run is skipped.
//  2. Outbox: publish every committed but unpublished epoch, oldest first,
//     and mark each published (delivery is at least once).
//  3. Genesis: with no epoch yet, make epoch 0 (empty tree, no updates, the
//     zero cut) through the same steps.
//  4. Next epoch N = newest + 1. A recorded attempt for N (a crashed run) is
//     redone as recorded. Otherwise decide as coname's proposer: due if
//     MinEpochInterval has passed since the previous head's time and at
//     least one update waits, or MaxEpochInterval has passed. If due, record
//     the attempt: the cut (a strong-read timestamp, moved back so an epoch
//     holds at most MaxUpdates updates), the epoch time (now, but always
//     after the previous head's), and the number of updates in the cut.
//  5. Read the log in the cut, statemachine.Apply (tree nodes of version N,
//     written invisibly), write the leaf records (invisibly).
//  6. Append the head to the epoch log (checkpoint.AppendLeaf over the
//     stored log nodes), compute its inclusion proof, sign the checkpoint.
//  7. CommitEpoch: the epoch and everything written for it become visible
//     in one transaction.
//  8. Publish the bundle (head, checkpoint, records); mark it published.
//
// Steps 4 to 8 repeat while another epoch is due, at most MaxEpochs times.
//
// # Crashes
//
// A crash between any two steps is recoverable, with nothing lost, nothing
// applied twice and no stale node visible, because: the attempt fixes the
// epoch's inputs (cut, time) before anything else is written, and the log
// below a past strong-read timestamp never changes, so a redo replays the
// same records into the same, deterministic statemachine; everything
// written before the commit is invisible and is either rewritten
// identically (leaf records, tree nodes) or discarded first (tree.Update
// discards version N before writing it); the commit is one transaction and
// idempotent; the signature is deterministic (Ed25519); publication happens
// only after the commit and is repeated until marked. The comments at each
// durable step of runner.go say why a crash right there is recoverable; the
// package tests crash at each of them.
//
// Durability before visibility: no signature is requested before the
// epoch's tree nodes and leaf records are durable, and no bundle is
// published before its epoch is committed.
package epoch
