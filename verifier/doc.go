// Package verifier is Conifer's third-party verifier: it replays every epoch
// of a realm with the same statemachine the keyserver runs, on its own
// embedded store, checks the epoch head and the keyserver's signed
// checkpoint against its replay and its own epoch log, and co-signs the
// checkpoint with a C2SP tlog-cosignature/v1 Ed25519 key. A client that
// demands a quorum of cosignatures therefore accepts only epochs that
// independent verifiers reproduced: a keyserver (even one holding its KMS
// key) that swaps a user's key without the user's signature, hides or
// reorders updates, or forks or rewinds its log, gets no cosignature, and
// the verifier writes evidence and stops signing for good.
//
// # Input
//
// The keyserver publishes each epoch's format.Bundle, cut into
// format.BundleChunks, one chunk per Pub/Sub message (data = the encoded
// chunk, ordering key = the realm name), and serves the same chunks at
// GET /Feed?epoch=N&part=P (api.FeedResponse). Run verifies epochs strictly
// in order. Chunks may arrive duplicated, reordered or not at all: they are
// grouped by (epoch, bundle digest, parts), a complete group is reassembled
// and its digest checked, and any epoch Pub/Sub did not deliver whole (a
// gap: a later epoch arrived whole first; the start: catch-up; silence for
// PollInterval) is fetched from the feed. Chunks carry no signature, so a
// chunk problem proves nothing and the epoch is fetched again; a bundle
// that reassembles is judged.
//
// # Checks
//
// For the next epoch N, in this order, the first failure being the one
// reported (Check):
//
//	bundle         the bytes split into head, checkpoint and records (caps, no trailing bytes)
//	log-signature  the checkpoint is a signed note with a valid signature by the realm's log key
//	origin         its origin is the realm
//	checkpoint     its text is a canonical checkpoint without extension lines
//	size           its size is N+1
//	head           the head is a canonical format.EpochHead
//	realm, epoch   the head is of the realm and of epoch N
//	count          there are head.UpdateCount records
//	records        each is a canonical format.LogRecord of the realm
//	updates-root   format.UpdatesRoot(records) = head.UpdatesRoot
//	               (and format.ParseBundle accepts the bundle: a safety net)
//	time           head.Time ≥ the previous head's time
//	tree-root      replaying the records with statemachine.Apply (the realm's
//	               Rules) on the verifier's store gives head.TreeRoot (the
//	               empty tree for the genesis, epoch 0)
//	replayed-head  the replayed head equals the bundle's byte for byte
//	log-root       appending LeafHash(head) to the verifier's own epoch log
//	               gives the checkpoint's root
//
// The last check is the consistency check: the verifier's log holds
// exactly the heads it verified, so a checkpoint whose root is not that
// log plus this head does not extend what was co-signed before (a fork, a
// rollback, a rewritten head). A bundle for an epoch already verified is
// acknowledged if its digest is the one verified; otherwise it passes the
// same checks up to updates-root and must have the same head and
// checkpoint text (only the note's signature lines may differ), or it is
// equivocation.
//
// When all checks pass the epoch is committed (see Durability), then the
// checkpoint text is co-signed at the verifier's clock time and the note
// signature line ("— <name> <base64>") is stored and sent to the Ratify
// function (api.RatifyRequest) by a background worker, newest epoch first,
// with retries and exponential backoff. Each epoch is co-signed right after
// it is verified and before the next one is looked at, so each
// cosignature truthfully says "this is the largest checkpoint I have
// verified" as of its timestamp.
//
// # Misbehaviour
//
// When a check fails the verifier writes an evidence file (Evidence, JSON
// with base64 bytes) under Dir/evidence: the epoch, the check and what was
// wrong, the offending bundle whole (head, signed checkpoint, records),
// whether the keyserver's signature on it verifies, the previous verified
// checkpoint and head (or, for equivocation, the ones verified for that
// epoch), and for replay failures the replayed head and the records the
// statemachine rejected. Then it records a halt in its state (synced), so
// it never signs again, not even after a restart; Run returns the
// *Misbehaviour (ErrMisbehaviour) and a restarted verifier returns
// ErrHalted. The status endpoint shows the halt and the evidence files.
//
// A verifier is only as available as its inputs are honest: any bundle
// that fails a check halts it, signed or not, so it must be fed only by the
// keyserver (its Pub/Sub topic, its feed over HTTPS). LogSignatureValid in
// the evidence tells an attributable failure from a forged input.
//
// # Storage
//
// The data directory holds the tree (package tree/disk, in Dir/tree) and a
// pebble database of the verifier's own data (Dir/state), laid out as
// documented on stateDB in store.go: per user the newest leaf record and
// signed entry as of each epoch it changed (which makes it the
// statemachine.Entries the replay reads), each verified epoch's head,
// checkpoint and bundle digest, the epoch log's perfect-subtree hashes,
// the cosignatures and their ratify state, and the halt record.
//
// # Durability
//
// An epoch N ≥ 1 is written in three steps: statemachine.Apply writes tree
// version N uncommitted; one synced batch writes the epoch's state (user
// records at epoch N, head, log nodes, the bundle as a redo record, and
// the new count of verified epochs); then the tree commits version N. A
// crash before the batch leaves epoch N unverified (the tree store
// discards the uncommitted version on Open). A crash between the batch
// and the tree commit leaves records at epoch N that reads at epoch N-1
// never see; Open replays epoch N again from the redo record, checks that
// it gives the same head and commits the tree. Only then is the epoch
// co-signed (the cosignature record is not synced: a lost one is made
// again by Open for the newest epoch). So a restart resumes at the newest
// epoch verified, and the checkpoint texts it co-signs are exactly those an
// uninterrupted run co-signs.
//
// # Example
//
//	v, err := verifier.Open(ctx, verifier.Config{
//		Realm: cfg, Dir: "verifier-data", Signer: signer,
//		Name: "verifier.example.net/conifer",
//		FeedURL: "https://europe-west1-example.cloudfunctions.net",
//		RatifyURL: "https://europe-west1-example.cloudfunctions.net",
//	})
//	...
//	msgs := make(chan verifier.Message)
//	go verifier.ReceivePubSub(ctx, client.Subscriber(subscription), msgs)
//	err = v.Run(ctx, msgs) // nil when ctx ends; *Misbehaviour when a check fails
//
// Epoch 3 of realm "example.com" arrives in two chunks, part 1 first and
// twice. The verifier holds them until part 0 arrives, reassembles the
// bundle, checks its digest, runs the checks above (the statemachine
// rejects record 2, a key change signed by a key not in the user's
// policy, and the head's tree root agrees: the keyserver rejected it too),
// commits, signs
//
//	cosignature/v1
//	time 1767225600
//	example.com
//	4
//	<base64 root of heads 0..3>
//
// and posts {"epoch":3,"signature":"— verifier.example.net/conifer …\n"} to
// Ratify, then acknowledges the three messages.
package verifier
