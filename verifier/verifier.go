package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/tree/disk"
)

// Config configures a Verifier. The struct is the documentation of every
// option; Open refuses unusable combinations.
type Config struct {
	// Realm is the pinned realm config. Required. Its realm name, log key
	// and registration rules decide what the verifier accepts; a data
	// directory is bound to the realm name, the log key and Name for good.
	Realm *realm.Config
	// Dir is the data directory (created with mode 0700 if missing): the
	// tree store in Dir/tree, the verifier's state in Dir/state and
	// evidence files in Dir/evidence. Required. One process at a time.
	Dir string
	// Signer holds the verifier's Ed25519 cosigning key (for example a
	// checkpoint.KeySigner over a seed file). Required.
	Signer checkpoint.Ed25519Signer
	// Name is the cosigner name, a schema-less URL naming this verifier
	// ("verifier.example.net/conifer"). Required. The realm config lists
	// the verifier by the key string VerifierKey returns.
	Name string
	// FeedURL is where the keyserver's Feed function is: either its full
	// URL (ending in "/Feed") or the functions' base URL, to which "/Feed"
	// is appended. Required by Run, which backfills every epoch it did
	// not get from Pub/Sub through it.
	FeedURL string
	// RatifyURL is the Ratify function, in the same way (full URL ending
	// in "/Ratify", or a base URL). Optional: without it, cosignatures
	// are made and recorded but not sent (an auditor that only checks).
	RatifyURL string
	// HTTPClient makes the feed and ratify requests. Default: a client
	// with a 2-minute timeout per request.
	HTTPClient *http.Client
	// Logger receives progress and warnings. Default: discard.
	Logger *slog.Logger
	// Now is the clock for cosignature timestamps and the status's lag.
	// Default time.Now.
	Now func() time.Time
	// PollInterval is how long Run waits for Pub/Sub before asking the
	// feed for the next epoch itself. Default: the realm's
	// MaxEpochInterval (an honest keyserver cuts an epoch at least that
	// often).
	PollInterval time.Duration
	// MaxBuffer caps the bytes of Pub/Sub chunks held for epochs not yet
	// verifiable; chunks beyond it are acknowledged and dropped, and those
	// epochs fetched from the feed instead. Default 256 MiB.
	MaxBuffer int
	// MaxAhead is how many epochs past the next one Run buffers from
	// Pub/Sub (later ones are dropped and fetched from the feed in turn).
	// Default 8.
	MaxAhead uint64
	// RatifyAttempts is how many times a cosignature is sent before it is
	// abandoned (logged, kept in the state). Default 8.
	RatifyAttempts int
	// RetryBackoff is the first wait after a failed feed or ratify
	// request, doubling with each failure up to PollInterval (feed) or a
	// minute (ratify); a longer Retry-After is honoured. Default 1s.
	RetryBackoff time.Duration
}

// Verifier replays, checks and co-signs the epochs of one realm. Its
// methods are safe for concurrent use; verification itself is serialised.
type Verifier struct {
	cfg         Config
	realm       *realm.Config
	rules       statemachine.Rules
	logVerifier note.Verifier
	cosigner    *checkpoint.Cosigner
	log         *slog.Logger
	now         func() time.Time
	http        *http.Client
	feedURL     string
	ratifyURL   string

	db    *stateDB
	store *disk.Store
	tree  *tree.Tree

	// vmu serialises verification (VerifyBundle and Run).
	vmu sync.Mutex

	// mu guards the fields below, which Status reads.
	mu         sync.Mutex
	size       uint64 // epochs verified
	newest     *epochRecord
	newestHead *format.EpochHead
	known      uint64 // highest epoch seen anywhere + 1
	halt       *Misbehaviour
	lastErr    string
	catchingUp bool
	ratified   uint64 // newest ratified epoch + 1 (0: none)
	closed     bool

	// ratifyWake is signalled when a cosignature is queued.
	ratifyWake chan struct{}

	// hook, if set (tests), runs at the named durable steps of an epoch
	// and can fail them, as a crash there would.
	hook func(step string, epoch uint64) error
}

// Steps passed to the test hook.
const (
	stepBeforeState = "before-state" // checks passed, nothing written
	stepBeforeTree  = "before-tree"  // state committed, tree not
	stepBeforeSign  = "before-sign"  // both committed, not co-signed
)

// Open opens (creating it if needed) the verifier's data directory and
// brings it to a consistent state. The newest verified epoch is the last
// one whose state commit completed; if its tree commit was lost in a
// crash, Open replays it again from the stored redo bundle and commits the
// tree. If that epoch was not co-signed yet (and signing is not halted),
// Open co-signs it.
func Open(ctx context.Context, cfg Config) (*Verifier, error) {
	v, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create data directory: %w", err)
	}
	if v.db, err = openStateDB(filepath.Join(cfg.Dir, "state")); err != nil {
		return nil, err
	}
	if v.store, err = disk.Open(filepath.Join(cfg.Dir, "tree")); err != nil {
		v.db.close()
		return nil, fmt.Errorf("couldn't open tree store: %w", err)
	}
	v.tree = tree.New(v.store)
	if err := v.load(ctx); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

func newVerifier(cfg Config) (*Verifier, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Realm == nil {
		return nil, bad("no realm config")
	}
	if err := cfg.Realm.Validate(); err != nil {
		return nil, bad("%v", err)
	}
	if cfg.Dir == "" {
		return nil, bad("no data directory")
	}
	if cfg.Signer == nil {
		return nil, bad("no cosigning key")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = cfg.Realm.MaxEpochInterval.Duration
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = 256 << 20
	}
	if cfg.MaxAhead == 0 {
		cfg.MaxAhead = 8
	}
	if cfg.RatifyAttempts <= 0 {
		cfg.RatifyAttempts = 8
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = time.Second
	}
	rules, err := statemachine.RulesFromRealm(cfg.Realm)
	if err != nil {
		return nil, bad("%v", err)
	}
	name, alg, _, err := checkpoint.ParseVerifierKey(cfg.Realm.LogKey)
	if err != nil {
		return nil, bad("log_key: %v", err)
	}
	if alg != checkpoint.AlgEd25519 || name != cfg.Realm.Realm {
		return nil, bad("log_key must be an Ed25519 note key named after the realm %q", cfg.Realm.Realm)
	}
	lv, err := checkpoint.NewVerifier(cfg.Realm.LogKey)
	if err != nil {
		return nil, bad("log_key: %v", err)
	}
	cs, err := checkpoint.NewCosigner(cfg.Name, cfg.Signer, cfg.Now)
	if err != nil {
		return nil, bad("cosigner: %v", err)
	}
	v := &Verifier{
		cfg: cfg, realm: cfg.Realm, rules: rules, logVerifier: lv, cosigner: cs,
		log: cfg.Logger, now: cfg.Now, http: cfg.HTTPClient,
		ratifyWake: make(chan struct{}, 1),
	}
	if cfg.FeedURL != "" {
		if v.feedURL, err = endpoint(cfg.FeedURL, "Feed"); err != nil {
			return nil, bad("feed URL: %v", err)
		}
	}
	if cfg.RatifyURL != "" {
		if v.ratifyURL, err = endpoint(cfg.RatifyURL, "Ratify"); err != nil {
			return nil, bad("ratify URL: %v", err)
		}
	}
	return v, nil
}

// load checks the directory's binding, recovers a lost tree commit and
// reads the status.
func (v *Verifier) load(ctx context.Context) error {
	if err := v.db.checkMeta(meta{v.realm.Realm, v.realm.LogKey, v.cosigner.Name()}); err != nil {
		return err
	}
	size, err := v.db.size()
	if err != nil {
		return err
	}
	if hb, ok, err := v.db.halt(); err != nil {
		return fmt.Errorf("couldn't read halt record: %w", err)
	} else if ok {
		m := &Misbehaviour{}
		if err := json.Unmarshal(hb, m); err != nil {
			return fmt.Errorf("%w: halt record: %v", errCorrupt, err)
		}
		v.halt = m
	}
	tv, _, err := v.store.Latest(ctx)
	if err != nil {
		return fmt.Errorf("couldn't read tree version: %w", err)
	}
	want := uint64(0) // epoch 0 leaves the tree at version 0
	if size > 1 {
		want = size - 1
	}
	switch {
	case tv == want:
	case size > 1 && tv == want-1:
		// The crash hit between the state commit and the tree commit of
		// epoch size-1: replay it again from the redo bundle.
		if err := v.redo(ctx, size-1); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: %d epochs verified, but the tree is at version %d", errCorrupt, size, tv)
	}
	v.size = size
	v.known = size
	if size > 0 {
		rec, err := v.db.epoch(size - 1)
		if err != nil {
			return err
		}
		if rec == nil {
			return fmt.Errorf("%w: no record of epoch %d", errCorrupt, size-1)
		}
		h, err := format.ParseEpochHead(rec.head)
		if err != nil {
			return fmt.Errorf("%w: head of epoch %d: %v", errCorrupt, size-1, err)
		}
		v.newest, v.newestHead = rec, h
		// A crash between the commits and the cosignature record: sign
		// now. Only the newest epoch: an older one is no longer the
		// largest checkpoint verified, which is what a cosignature says.
		c, err := v.db.cosig(size - 1)
		if err != nil {
			return err
		}
		if c == nil && v.halt == nil {
			if err := v.cosign(size-1, rec.note); err != nil {
				return err
			}
		}
	}
	if _, ok, err := v.db.newestQueued(); err != nil {
		return fmt.Errorf("couldn't read ratify queue: %w", err)
	} else if ok {
		v.wakeRatify()
	}
	return nil
}

// redo replays epoch n from the redo bundle and commits the tree.
func (v *Verifier) redo(ctx context.Context, n uint64) error {
	data, ok, err := v.db.redo()
	if err != nil {
		return err
	}
	rec, err := v.db.epoch(n)
	if err != nil {
		return err
	}
	if !ok || rec == nil || bundleDigest(data) != rec.digest {
		return fmt.Errorf("%w: no redo bundle for epoch %d", errCorrupt, n)
	}
	f, err := splitBundle(data)
	if err != nil {
		return fmt.Errorf("%w: redo bundle: %v", errCorrupt, err)
	}
	h, err := format.ParseEpochHead(f.head)
	if err != nil {
		return fmt.Errorf("%w: redo bundle: %v", errCorrupt, err)
	}
	out, err := statemachine.Apply(ctx, v.tree, v.db, statemachine.Input{Rules: v.rules, Epoch: n, Time: h.Time, Records: f.records})
	if err != nil {
		return fmt.Errorf("couldn't replay epoch %d again: %w", n, err)
	}
	if !bytes.Equal(out.HeadBytes, rec.head) {
		return fmt.Errorf("%w: replaying epoch %d again gave another head", errCorrupt, n)
	}
	if err := v.store.Commit(ctx, n, out.Head.TreeRoot); err != nil {
		return fmt.Errorf("couldn't commit tree version %d: %w", n, err)
	}
	v.log.InfoContext(ctx, "finished the tree commit of an epoch interrupted by a crash", "epoch", n)
	return nil
}

// Close closes the stores. Run must have returned.
func (v *Verifier) Close() error {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	v.mu.Unlock()
	var errs []error
	if v.store != nil {
		errs = append(errs, v.store.Close())
	}
	if v.db != nil {
		errs = append(errs, v.db.close())
	}
	return errors.Join(errs...)
}

// VerifierKey returns the verifier's cosignature key string (type 0x04),
// the form listed in a realm config's "verifiers".
func (v *Verifier) VerifierKey() string { return v.cosigner.VerifierKey() }

// Next returns the next epoch to verify (the number of epochs verified).
func (v *Verifier) Next() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.size
}

// Halted returns the misbehaviour that stopped signing, or nil.
func (v *Verifier) Halted() *Misbehaviour {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.halt
}

// Cosignature returns the note signature line the verifier made for
// epoch n, if any.
func (v *Verifier) Cosignature(n uint64) (string, bool, error) {
	c, err := v.db.cosig(n)
	if err != nil || c == nil {
		return "", false, err
	}
	return c.line, true, nil
}

// haltErr returns the error for a halted verifier, or nil.
func (v *Verifier) haltErr() error {
	if m := v.Halted(); m != nil {
		return fmt.Errorf("%w: %w", ErrHalted, m)
	}
	return nil
}

// VerifyBundle checks the encoded bundle delivered as epoch n.
//
// For the next epoch (n == Next()), it runs every check, replays the
// records, and if all pass commits the epoch to its stores, co-signs the
// checkpoint and queues the cosignature for Ratify. For an epoch already
// verified, it is a duplicate (nil) unless the bundle is different and
// validly signed: then it is equivocation. A failed check returns a
// *Misbehaviour after writing evidence and stopping signing for good;
// once halted, VerifyBundle returns ErrHalted. Other errors (a failing
// disk, a cancelled context) leave nothing half done: the epoch can be
// offered again.
func (v *Verifier) VerifyBundle(ctx context.Context, n uint64, data []byte) error {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	if err := v.haltErr(); err != nil {
		return err
	}
	next := v.Next()
	switch {
	case n > next:
		return fmt.Errorf("%w: epoch %d offered, next is %d", ErrOutOfOrder, n, next)
	case n < next:
		return v.checkOld(ctx, n, data)
	}
	s, fl := v.checkStatic(n, data)
	if fl == nil {
		fl = v.checkTime(s)
	}
	var out *statemachine.Output
	if fl == nil {
		var err error
		out, fl, err = v.replay(ctx, s)
		if err != nil {
			return err
		}
	}
	var nodes []checkpoint.Node
	if fl == nil {
		var root [32]byte
		var err error
		nodes, root, err = checkpoint.AppendLeaf(n, checkpoint.LeafHash(s.fields.head), v.db)
		if err != nil {
			return fmt.Errorf("couldn't append to the epoch log: %w", err)
		}
		if root != s.cp.Hash {
			fl = fail(CheckLogRoot, "the checkpoint's root %x is not %x, the root of the verified log with this head appended", s.cp.Hash, root)
		}
	}
	if fl != nil {
		if n > 0 {
			// Best effort: Open discards an uncommitted tree version anyway.
			v.store.Discard(ctx, n)
		}
		return v.misbehave(ctx, n, data, s, fl, nil)
	}
	return v.commit(ctx, n, data, s, out, nodes)
}

// checkTime checks that the head's time is not before the previous head's.
func (v *Verifier) checkTime(s *staticBundle) *failure {
	v.mu.Lock()
	prev := v.newestHead
	v.mu.Unlock()
	if prev != nil && s.head.Time < prev.Time {
		return fail(CheckTime, "head time %d ms is before the previous epoch's %d ms", s.head.Time, prev.Time)
	}
	return nil
}

// replay applies the records with the statemachine (writing, not
// committing, tree version n) and compares the result with the head.
func (v *Verifier) replay(ctx context.Context, s *staticBundle) (*statemachine.Output, *failure, error) {
	h := s.head
	if h.Epoch == 0 {
		// The genesis: the empty tree, no updates (the head format
		// enforces the latter).
		if h.TreeRoot != tree.Empty {
			return nil, fail(CheckTreeRoot, "the genesis tree root is %x, not the empty tree's %x", h.TreeRoot, tree.Empty), nil
		}
		return nil, nil, nil
	}
	out, err := statemachine.Apply(ctx, v.tree, v.db, statemachine.Input{
		Rules: v.rules, Epoch: h.Epoch, Time: h.Time, Records: s.fields.records,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't replay epoch %d: %w", h.Epoch, err)
	}
	var fl *failure
	switch {
	case out.Head.TreeRoot != h.TreeRoot:
		fl = fail(CheckTreeRoot, "replaying the %d records (%d rejected) gives tree root %x, the head says %x",
			len(s.fields.records), len(out.Rejected), out.Head.TreeRoot, h.TreeRoot)
	case !bytes.Equal(out.HeadBytes, s.fields.head):
		fl = fail(CheckReplayedHead, "the replayed head differs from the bundle's")
	}
	if fl != nil {
		fl.replayed = out.HeadBytes
		for _, r := range out.Rejected {
			fl.rejections = append(fl.rejections, Rejection{Position: r.Position, Code: r.Code.String(), Reason: r.Reason})
		}
	}
	return out, fl, nil
}

// commit makes epoch n durable, then co-signs it.
func (v *Verifier) commit(ctx context.Context, n uint64, data []byte, s *staticBundle, out *statemachine.Output, nodes []checkpoint.Node) error {
	c := &epochCommit{
		epoch:  n,
		record: epochRecord{digest: bundleDigest(data), head: s.fields.head, note: s.fields.checkpoint},
		nodes:  nodes,
	}
	if out != nil {
		c.users = out.Applied
		c.bundle = data
	}
	if err := v.step(stepBeforeState, n); err != nil {
		return err
	}
	// The durable step. A crash before it leaves epoch n unverified (an
	// uncommitted tree version, which the tree store discards); a crash
	// after it and before the tree commit is finished by Open (redo).
	if err := v.db.commitEpoch(c); err != nil {
		return err
	}
	if err := v.step(stepBeforeTree, n); err != nil {
		return err
	}
	if n > 0 {
		if err := v.store.Commit(ctx, n, out.Head.TreeRoot); err != nil {
			return fmt.Errorf("couldn't commit tree version %d: %w", n, err)
		}
	}
	v.mu.Lock()
	v.size = n + 1
	v.known = max(v.known, n+1)
	v.newest, v.newestHead = &c.record, s.head
	v.lastErr = ""
	v.mu.Unlock()
	if err := v.step(stepBeforeSign, n); err != nil {
		return err
	}
	// Co-sign only now: a cosignature must never speak for state that a
	// crash could lose. A crash before the record is written is caught by
	// Open, which signs the newest epoch if it has no cosignature.
	return v.cosign(n, s.fields.checkpoint)
}

func (v *Verifier) step(name string, n uint64) error {
	if v.hook == nil {
		return nil
	}
	return v.hook(name, n)
}

// cosign signs the checkpoint of verified epoch n, records the signature
// line and queues it for Ratify.
func (v *Verifier) cosign(n uint64, noteBytes []byte) error {
	nt, err := note.Open(noteBytes, note.VerifierList(v.logVerifier))
	if err != nil {
		return fmt.Errorf("%w: stored checkpoint of epoch %d: %v", errCorrupt, n, err)
	}
	signed, err := note.Sign(&note.Note{Text: nt.Text}, v.cosigner)
	if err != nil {
		return fmt.Errorf("couldn't co-sign epoch %d: %w", n, err)
	}
	line := string(signed[len(nt.Text)+1:]) // after the text and the blank line
	if err := v.db.putCosig(n, line, v.ratifyURL != ""); err != nil {
		return err
	}
	if v.ratifyURL != "" {
		v.wakeRatify()
	}
	return nil
}

// checkOld judges a bundle delivered for verified epoch n.
func (v *Verifier) checkOld(ctx context.Context, n uint64, data []byte) error {
	rec, err := v.db.epoch(n)
	if err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("%w: no record of verified epoch %d", errCorrupt, n)
	}
	if bundleDigest(data) == rec.digest {
		return nil
	}
	s, fl := v.checkStatic(n, data)
	if fl == nil {
		vt, err := note.Open(rec.note, note.VerifierList(v.logVerifier))
		if err != nil {
			return fmt.Errorf("%w: stored checkpoint of epoch %d: %v", errCorrupt, n, err)
		}
		// The same head and checkpoint text (the records are then the
		// same, by the updates root): only the note's signature lines
		// differ, as when co-signatures are merged in. Not a conflict.
		if bytes.Equal(s.fields.head, rec.head) && string(s.text) == vt.Text {
			return nil
		}
		fl = fail(CheckEquivocation, "a second, different bundle for epoch %d, which was verified with another head or checkpoint", n)
	}
	return v.misbehave(ctx, n, data, s, fl, rec)
}

// misbehave writes the evidence of a failed check, stops signing for good
// and returns the *Misbehaviour.
func (v *Verifier) misbehave(ctx context.Context, n uint64, data []byte, s *staticBundle, fl *failure, verified *epochRecord) error {
	now := v.now()
	e := &Evidence{
		Realm: v.realm.Realm, Verifier: v.cosigner.Name(), Epoch: n,
		Check: fl.check, Detail: fl.detail, Time: now.UTC().Format(time.RFC3339Nano),
		Bundle: data, ReplayedHead: fl.replayed, Rejections: fl.rejections,
	}
	if s != nil && s.fields != nil {
		e.Checkpoint, e.Head = s.fields.checkpoint, s.fields.head
		e.LogSignatureValid = v.logSigned(s.fields.checkpoint)
	}
	v.mu.Lock()
	if prev := v.newest; prev != nil && n > 0 && v.size == n {
		e.PreviousCheckpoint, e.PreviousHead = prev.note, prev.head
	}
	v.mu.Unlock()
	if verified != nil {
		e.VerifiedCheckpoint, e.VerifiedHead = verified.note, verified.head
	}
	m := &Misbehaviour{Epoch: n, Check: fl.check, Detail: fl.detail}
	path, err := writeEvidence(v.cfg.Dir, e, now)
	if err != nil {
		v.log.ErrorContext(ctx, "couldn't write evidence", "err", err)
	}
	m.Evidence = path
	hb, err := json.Marshal(m)
	if err != nil {
		panic("verifier: couldn't encode a halt record: " + err.Error())
	}
	// Halt in memory first: even if the disk fails now, this process
	// signs nothing more.
	v.mu.Lock()
	v.halt = m
	v.mu.Unlock()
	if err := v.db.setHalt(hb); err != nil {
		v.log.ErrorContext(ctx, "couldn't record the halt", "err", err)
	}
	v.log.ErrorContext(ctx, "keyserver misbehaviour: signing stopped", "epoch", n, "check", string(fl.check), "detail", fl.detail, "evidence", path)
	return m
}
