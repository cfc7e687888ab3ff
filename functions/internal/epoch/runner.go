package epoch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

// Publisher sends an epoch's encoded format.Bundle to the verifiers
// (package publish: Pub/Sub). Publish returns nil only once every part has
// been accepted; it may be called again for the same epoch (at least once
// delivery).
type Publisher interface {
	Publish(ctx context.Context, epoch uint64, bundle []byte) error
}

// Defaults and limits of Runner.
const (
	// DefaultLeaseTTL is the default lease duration. It must exceed the
	// time one epoch takes (a slower runner is fenced, not wrong, but
	// wastes its work).
	DefaultLeaseTTL = 5 * time.Minute
	// DefaultMaxUpdates is the default number of updates per epoch.
	DefaultMaxUpdates = 10000
	// MaxUpdatesLimit bounds MaxUpdates: the epoch commit writes one
	// EpochRejections row (6 mutations) per rejected update, and must stay
	// under Spanner's 80,000 mutations per commit.
	MaxUpdatesLimit = 12000
	// DefaultMaxEpochs is the default number of epochs one invocation makes.
	DefaultMaxEpochs = 4
)

// Runner makes epochs. Configure the exported fields, then call Run (or
// serve ServeHTTP / HandleCloudEvent). Runs of one Runner are serialised;
// Runners in different processes coordinate through the lease.
type Runner struct {
	// Store is the database. Required.
	Store storage.Store
	// Realm is the public realm config: its name is the checkpoint origin,
	// its LogKey must be Signer's key (the runner refuses to sign with a
	// key clients would not accept), its epoch intervals decide due-ness.
	// Required.
	Realm *realm.Config
	// Rules are the statemachine rules, statemachine.RulesFromRealm(Realm).
	// Required (Rules.Realm must be Realm.Realm).
	Rules statemachine.Rules
	// Signer holds the keyserver's checkpoint key (kmssign.Signer in
	// production). Required.
	Signer checkpoint.Ed25519Signer
	// Publisher sends epoch bundles. Required.
	Publisher Publisher
	// Holder names this runner in the lease: unique per process (e.g. the
	// function instance id plus a random suffix). Required.
	Holder string
	// LeaseTTL is how long the lease is taken for. Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Now is the clock (epoch times, due-ness). Default time.Now.
	Now func() time.Time
	// Log receives structured logs. Default: discarded.
	Log *slog.Logger
	// MaxUpdates caps the updates of one epoch. Default DefaultMaxUpdates;
	// at most MaxUpdatesLimit.
	MaxUpdates int
	// MaxEpochs caps the epochs made by one Run. Default DefaultMaxEpochs.
	MaxEpochs int

	mu sync.Mutex
}

// Result is what one Run did.
type Result struct {
	// Epoch is the newest committed epoch after the run.
	Epoch uint64 `json:"epoch"`
	// Updates is the number of log records in the epochs the run made.
	Updates int64 `json:"updates"`
	// Skipped says another runner held the lease, or took it over during
	// the run.
	Skipped bool `json:"skipped"`
	// Made lists the epochs the run committed; Published those it
	// published (from the outbox or just made).
	Made      []uint64 `json:"-"`
	Published []uint64 `json:"-"`
}

// config is a Runner's validated configuration.
type config struct {
	signer     *checkpoint.LogSigner
	ttl        time.Duration
	now        func() time.Time
	log        *slog.Logger
	maxUpdates int
	maxEpochs  int
}

func (r *Runner) config() (*config, error) {
	switch {
	case r.Store == nil || r.Realm == nil || r.Signer == nil || r.Publisher == nil:
		return nil, errors.New("epoch runner needs Store, Realm, Signer and Publisher")
	case r.Holder == "":
		return nil, errors.New("epoch runner needs a Holder")
	case r.Rules.Realm != r.Realm.Realm:
		return nil, fmt.Errorf("epoch runner: rules are for realm %q, config for %q", r.Rules.Realm, r.Realm.Realm)
	case r.MaxUpdates < 0 || r.MaxUpdates > MaxUpdatesLimit:
		return nil, fmt.Errorf("epoch runner: MaxUpdates %d out of 0..%d", r.MaxUpdates, MaxUpdatesLimit)
	case r.LeaseTTL < 0 || r.MaxEpochs < 0:
		return nil, errors.New("epoch runner: negative LeaseTTL or MaxEpochs")
	}
	signer, err := checkpoint.NewLogSigner(r.Realm.Realm, r.Signer)
	if err != nil {
		return nil, fmt.Errorf("epoch runner: couldn't make the log signer: %w", err)
	}
	if signer.VerifierKey() != r.Realm.LogKey {
		return nil, fmt.Errorf("epoch runner: the signer's key %s is not the realm's log key %s", signer.VerifierKey(), r.Realm.LogKey)
	}
	c := &config{signer: signer, ttl: r.LeaseTTL, now: r.Now, log: r.Log, maxUpdates: r.MaxUpdates, maxEpochs: r.MaxEpochs}
	if c.ttl == 0 {
		c.ttl = DefaultLeaseTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.maxUpdates == 0 {
		c.maxUpdates = DefaultMaxUpdates
	}
	if c.maxEpochs == 0 {
		c.maxEpochs = DefaultMaxEpochs
	}
	return c, nil
}

// run is the state of one Run.
type run struct {
	*Runner
	c     *config
	token int64
	res   Result
}

// Run does one invocation: lease, outbox, then as many due epochs as
// MaxEpochs allows. Losing the lease is not an error (Result.Skipped);
// any other failure is returned after the state is left recoverable.
func (r *Runner) Run(ctx context.Context) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.config()
	if err != nil {
		return Result{}, err
	}
	token, err := r.Store.AcquireLease(ctx, storage.EpochLease, r.Holder, c.ttl)
	if errors.Is(err, storage.ErrLeaseHeld) {
		c.log.InfoContext(ctx, "epoch lease held by another runner; skipping", "holder", r.Holder)
		return Result{Skipped: true}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("couldn't take the epoch lease: %w", err)
	}
	x := &run{Runner: r, c: c, token: token}
	defer func() {
		// Give the lease up so the next scheduled run need not wait for it
		// to expire. Best effort: an expired lease is free anyway.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.Store.ReleaseLease(ctx, storage.EpochLease, x.token); err != nil {
			c.log.WarnContext(ctx, "couldn't release the epoch lease", "error", err)
		}
	}()
	err = x.work(ctx)
	if errors.Is(err, storage.ErrFenced) || errors.Is(err, storage.ErrLeaseHeld) {
		c.log.WarnContext(ctx, "epoch lease lost to another runner; stopping", "error", err)
		x.res.Skipped = true
		err = nil
	}
	if e, nerr := r.Store.NewestEpoch(ctx); nerr == nil {
		x.res.Epoch = e.Epoch
	}
	return x.res, err
}

func (x *run) work(ctx context.Context) error {
	if err := x.outbox(ctx); err != nil {
		return err
	}
	for i := range x.c.maxEpochs {
		if i > 0 {
			// Renew the lease between epochs (same token while it is ours).
			tok, err := x.Store.AcquireLease(ctx, storage.EpochLease, x.Holder, x.c.ttl)
			if err != nil {
				return fmt.Errorf("couldn't renew the epoch lease: %w", err)
			}
			x.token = tok
		}
		made, err := x.next(ctx)
		if err != nil || !made {
			return err
		}
	}
	return nil
}

// outbox publishes the committed epochs not yet marked published, oldest
// first.
func (x *run) outbox(ctx context.Context) error {
	pending, err := x.Store.Unpublished(ctx)
	if err != nil {
		return fmt.Errorf("couldn't list unpublished epochs: %w", err)
	}
	for _, n := range pending {
		e, err := x.Store.GetEpoch(ctx, n)
		if err != nil {
			return fmt.Errorf("couldn't read unpublished epoch %d: %w", n, err)
		}
		rows, err := x.Store.Records(ctx, n)
		if err != nil {
			return fmt.Errorf("couldn't read the records of unpublished epoch %d: %w", n, err)
		}
		records := make([][]byte, len(rows))
		for i, row := range rows {
			records[i] = row.Record
		}
		if err := x.publish(ctx, n, e.Head, e.Checkpoint, records); err != nil {
			return err
		}
	}
	return nil
}

// publish sends epoch n's bundle and marks it published.
func (x *run) publish(ctx context.Context, n uint64, head, note []byte, records [][]byte) error {
	bundle, err := (&format.Bundle{Head: head, Checkpoint: note, Records: records}).Marshal()
	if err != nil {
		return fmt.Errorf("couldn't encode the bundle of epoch %d: %w", n, err)
	}
	// Visible step (the epoch leaves the system): only committed epochs get
	// here. A crash after it and before MarkPublished publishes the bundle
	// again from the outbox (verifiers ignore the duplicate).
	if err := x.Publisher.Publish(ctx, n, bundle); err != nil {
		return fmt.Errorf("couldn't publish epoch %d: %w", n, err)
	}
	// Durable step: the outbox forgets the epoch. A crash before it only
	// means one more publication.
	if err := x.Store.MarkPublished(ctx, n); err != nil {
		return fmt.Errorf("couldn't mark epoch %d published: %w", n, err)
	}
	x.res.Published = append(x.res.Published, n)
	x.c.log.InfoContext(ctx, "published epoch", "epoch", n, "bytes", len(bundle))
	return nil
}

// next makes the next epoch if one is due (or half made), and reports
// whether it made one.
func (x *run) next(ctx context.Context) (bool, error) {
	prev, err := x.Store.NewestEpoch(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return true, x.genesis(ctx)
	}
	if err != nil {
		return false, fmt.Errorf("couldn't read the newest epoch: %w", err)
	}
	prevHead, err := format.ParseEpochHead(prev.Head)
	if err != nil {
		return false, fmt.Errorf("couldn't parse the head of epoch %d: %w", prev.Epoch, err)
	}
	n := prev.Epoch + 1
	att, err := x.Store.GetAttempt(ctx, n)
	switch {
	case err == nil:
		// A run before us recorded this epoch's inputs and crashed (or lost
		// its lease): redo exactly that attempt, due or not.
		x.c.log.InfoContext(ctx, "redoing a recorded epoch attempt", "epoch", n, "updates", att.Updates)
	case errors.Is(err, storage.ErrNotFound):
		att = nil
	default:
		return false, fmt.Errorf("couldn't read the attempt at epoch %d: %w", n, err)
	}
	if att == nil {
		waiting, cut, err := x.Store.WaitingSince(ctx, prev.Cut, x.c.maxUpdates)
		if err != nil {
			return false, fmt.Errorf("couldn't count waiting updates: %w", err)
		}
		now := x.c.now().UnixMilli()
		elapsed := time.Duration(now-int64(prevHead.Time)) * time.Millisecond
		due := elapsed >= x.Realm.MaxEpochInterval.Duration ||
			elapsed >= x.Realm.MinEpochInterval.Duration && waiting > 0
		if !due {
			return false, nil
		}
		att = &storage.Attempt{
			Epoch: n, PrevCut: prev.Cut, Cut: cut,
			Time:    max(uint64(max(now, 0)), prevHead.Time+1),
			Updates: int64(waiting),
		}
	}
	att.Token = x.token
	// Durable step: the attempt fixes the epoch's inputs. A crash after it
	// leaves an attempt that the next run redoes (above) with the same
	// inputs; nothing of the epoch is visible yet. CreateAttempt keeps an
	// existing attempt, so a concurrent runner's cannot be replaced.
	att, err = x.Store.CreateAttempt(ctx, *att)
	if err != nil {
		return false, fmt.Errorf("couldn't record the attempt at epoch %d: %w", n, err)
	}
	if att.Epoch != n || !att.PrevCut.Equal(prev.Cut) {
		return false, fmt.Errorf("the recorded attempt at epoch %d does not follow epoch %d", att.Epoch, prev.Epoch)
	}
	return true, x.make(ctx, att)
}

// genesis makes epoch 0: the empty tree, no updates, the zero cut.
func (x *run) genesis(ctx context.Context) error {
	// Durable step: as for any attempt, a crash after it redoes epoch 0
	// with the recorded time.
	att, err := x.Store.CreateAttempt(ctx, storage.Attempt{
		Epoch: 0, Time: uint64(max(x.c.now().UnixMilli(), 0)), Token: x.token,
	})
	if err != nil {
		return fmt.Errorf("couldn't record the genesis attempt: %w", err)
	}
	h := format.EpochHead{Realm: x.Realm.Realm, Epoch: 0, Time: att.Time, TreeRoot: tree.Empty, UpdatesRoot: format.UpdatesRoot(nil)}
	head, err := h.Marshal()
	if err != nil {
		return fmt.Errorf("couldn't encode the genesis head: %w", err)
	}
	return x.finish(ctx, 0, head, nil, nil, nil, nil)
}

// make makes epoch att.Epoch from its recorded attempt.
func (x *run) make(ctx context.Context, att *storage.Attempt) error {
	n := att.Epoch
	start := time.Now()
	rows, err := x.Store.ReadLog(ctx, att.PrevCut, att.Cut)
	readLog := time.Since(start)
	if err != nil {
		return fmt.Errorf("couldn't read the log of epoch %d: %w", n, err)
	}
	if int64(len(rows)) != att.Updates {
		// Rows below a past strong-read timestamp never change: this is a
		// broken invariant, not something a redo could fix.
		return fmt.Errorf("the log of epoch %d holds %d rows, the attempt counted %d: refusing to go on", n, len(rows), att.Updates)
	}
	records := make([][]byte, len(rows))
	for i, row := range rows {
		records[i] = row.Record
	}
	// Durable step (inside Apply): the tree nodes of version n, invisible
	// until the commit. A crash during or after it is harmless: the redo's
	// tree.Update discards version n first, and writes the same nodes (same
	// records, same base version, deterministic statemachine). The fenced
	// tree refuses the writes of a runner that lost the lease, so it can
	// never discard the nodes of the runner that took over.
	out, err := statemachine.Apply(ctx, tree.New(x.Store.FencedTree(x.token)), x.Store.Entries(), statemachine.Input{
		Rules: x.Rules, Epoch: n, Time: att.Time, Records: records,
	})
	if err != nil {
		return fmt.Errorf("couldn't apply epoch %d: %w", n, err)
	}
	applied := time.Since(start)
	// Durable step: the leaf records of epoch n, invisible until the
	// commit (readers only see records of committed epochs). A redo writes
	// identical rows over them.
	if err := x.Store.WriteLeafRecords(ctx, x.token, n, out.Applied); err != nil {
		return fmt.Errorf("couldn't write the leaf records of epoch %d: %w", n, err)
	}
	tombstoned := map[[32]byte]uint64{}
	for _, a := range out.Applied {
		if a.Tombstone {
			tombstoned[a.Index] = max(tombstoned[a.Index], a.Version)
		}
	}
	rejectedRows := make([]storage.LogRow, len(out.Rejected))
	for i, r := range out.Rejected {
		rejectedRows[i] = rows[r.Position]
	}
	x.c.log.InfoContext(ctx, "applied epoch", "epoch", n, "updates", len(records),
		"applied", len(out.Applied), "rejected", len(out.Rejected),
		"read_log", readLog, "apply", applied-readLog, "leaf_records", time.Since(start)-applied)
	return x.finish(ctx, n, out.HeadBytes, records, out.Rejected, rejectedRows, tombstoned)
}

// finish appends the head to the epoch log, signs the checkpoint, commits
// epoch n and publishes it.
func (x *run) finish(ctx context.Context, n uint64, head []byte, records [][]byte,
	rejected []statemachine.Rejected, rejectedRows []storage.LogRow, tombstoned map[[32]byte]uint64) error {
	h, err := format.ParseEpochHead(head)
	if err != nil {
		return fmt.Errorf("couldn't parse the head of epoch %d: %w", n, err)
	}
	start := time.Now()
	leaf := checkpoint.LeafHash(head)
	// The log holds epochs 0..n-1 (all committed): append leaf n.
	nodes, root, err := checkpoint.AppendLeaf(n, leaf, x.Store.LogHashes())
	if err != nil {
		return fmt.Errorf("couldn't append epoch %d to the epoch log: %w", n, err)
	}
	proof, err := checkpoint.InclusionProof(n, n+1, x.Store.LogHashes())
	if err != nil {
		return fmt.Errorf("couldn't prove epoch %d in the epoch log: %w", n, err)
	}
	if err := checkpoint.VerifyInclusion(leaf, n, n+1, proof, root); err != nil {
		return fmt.Errorf("the epoch log's stored nodes are inconsistent at epoch %d: %w", n, err)
	}
	// Signing reveals nothing by itself: the note stays here until the
	// commit. It comes after the tree nodes and leaf records are durable,
	// and a crash after it simply signs again (Ed25519 is deterministic:
	// the same note).
	note, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: x.Realm.Realm, Size: n + 1, Hash: root}, x.c.signer)
	if err != nil {
		return fmt.Errorf("couldn't sign the checkpoint of epoch %d: %w", n, err)
	}
	// Durable and visible step: the epoch commits, in one transaction, with
	// its tree version, log nodes and rejections. A crash before it leaves
	// the attempt to redo; a crash after it leaves a committed, unpublished
	// epoch that the next run's outbox publishes. A retried commit of the
	// same head is a no-op.
	err = x.Store.CommitEpoch(ctx, x.token, storage.EpochCommit{
		Epoch: n, Head: head, Checkpoint: note, HeadProof: proof, TreeRoot: h.TreeRoot,
		LogNodes: nodes, Rejected: rejected, RejectedRows: rejectedRows, Tombstoned: tombstoned,
		UpdateCount: int64(len(records)),
	})
	if err != nil {
		return fmt.Errorf("couldn't commit epoch %d: %w", n, err)
	}
	x.res.Made = append(x.res.Made, n)
	x.res.Updates += int64(len(records))
	x.c.log.InfoContext(ctx, "committed epoch", "epoch", n, "updates", len(records),
		"tree_root", fmt.Sprintf("%x", h.TreeRoot), "sign_and_commit", time.Since(start))
	start = time.Now()
	err = x.publish(ctx, n, head, note, records)
	x.c.log.InfoContext(ctx, "publication done", "epoch", n, "elapsed", time.Since(start))
	return err
}
