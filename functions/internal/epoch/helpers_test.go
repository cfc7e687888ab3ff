package epoch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"golang.org/x/mod/sumdb/note"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/epoch"
	"github.com/conifer-kt/conifer/functions/internal/kmssign"
	"github.com/conifer-kt/conifer/functions/internal/publish"
	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

func TestMain(m *testing.M) { spantest.Main(m) }

const realmName = "example.com/epoch"

var kmsSigner struct {
	once   sync.Once
	signer *kmssign.Signer
	err    error
}

// signer returns the test binary's KMS checkpoint signer (an
// EC_SIGN_ED25519 key in the KMS emulator, used through the real client).
func signer(t testing.TB) *kmssign.Signer {
	t.Helper()
	srv := spantest.KMS(t)
	kmsSigner.once.Do(func() {
		ctx := context.Background()
		c, err := kms.NewKeyManagementClient(ctx, srv.ClientOptions()...)
		if err != nil {
			kmsSigner.err = err
			return
		}
		ring, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/p/locations/global", KeyRingId: "epoch-test"})
		if err != nil {
			kmsSigner.err = err
			return
		}
		key, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{
			Parent: ring.Name, CryptoKeyId: "checkpoint",
			CryptoKey: &kmspb.CryptoKey{
				Purpose:         kmspb.CryptoKey_ASYMMETRIC_SIGN,
				VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_ED25519},
			},
		})
		if err != nil {
			kmsSigner.err = err
			return
		}
		kmsSigner.signer, kmsSigner.err = kmssign.NewSigner(ctx, c, key.Name+"/cryptoKeyVersions/1")
	})
	if kmsSigner.err != nil {
		t.Fatal(kmsSigner.err)
	}
	return kmsSigner.signer
}

// testRealm returns the test realm, whose log key is the KMS key.
func testRealm(t testing.TB, verifiers, quorum int) *spantest.Realm {
	t.Helper()
	ls, err := checkpoint.NewLogSigner(realmName, signer(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := spantest.NewRealm(realmName, ls.VerifierKey(), verifiers, quorum)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// publisher returns a real Pub/Sub publisher on a new topic, and the topic.
func publisher(t testing.TB) (*publish.Publisher, string) {
	t.Helper()
	ps := spantest.PubSub(t)
	ctx := context.Background()
	topic, err := ps.CreateTopic(ctx, spantest.Unique("epochs"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := publish.New(ctx, publish.Options{Topic: topic, Realm: realmName, ClientOptions: ps.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, topic
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// appendAll logs updates through the store.
func appendAll(t testing.TB, s storage.Store, as ...storage.Append) []storage.LogRow {
	t.Helper()
	var rows []storage.LogRow
	for _, a := range as {
		row, err := s.AppendUpdate(context.Background(), a, func(*storage.PendingUser) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	return rows
}

// memEntries is statemachine.Entries over a map, for replays.
type memEntries map[[32]byte]statemachine.Latest

func (m memEntries) Latest(_ context.Context, _ uint64, idx [][32]byte) (map[[32]byte]statemachine.Latest, error) {
	out := map[[32]byte]statemachine.Latest{}
	for _, i := range idx {
		if l, ok := m[i]; ok {
			out[i] = l
		}
	}
	return out, nil
}

// verifyLog checks a store's committed epochs as an independent verifier
// would, and returns the replayed heads: every epoch replays, with the
// statemachine on a memory tree, from its records into exactly its stored
// head; the heads chain (numbers, increasing times); each checkpoint is
// signed by the realm's log key, is consistent with the previous one and
// includes its head; every log row belongs to exactly one epoch, in
// order; and every user's stored history ends in the tree value its
// proof at the newest epoch shows.
func verifyLog(t testing.TB, s *spanstore.Store, r *spantest.Realm) [][]byte {
	t.Helper()
	ctx := context.Background()
	newest := must[*storage.Epoch](t)(s.NewestEpoch(ctx))
	logKey := must[note.Verifier](t)(checkpoint.NewVerifier(r.Config.LogKey))
	mstore := tree.NewMemoryStore()
	mtree := tree.New(mstore)
	entries := memEntries{}
	mlog := checkpoint.NewMemoryLog()
	var heads [][]byte
	var prevTime uint64
	var prevRoot [32]byte
	var prevCut time.Time
	var total int64
	users := map[[32]byte]bool{}
	for n := uint64(0); n <= newest.Epoch; n++ {
		e := must[*storage.Epoch](t)(s.GetEpoch(ctx, n))
		h := must[*format.EpochHead](t)(format.ParseEpochHead(e.Head))
		if h.Epoch != n || h.Realm != realmName || (n > 0 && h.Time <= prevTime) {
			t.Fatalf("epoch %d: head %+v does not chain (previous time %d)", n, h, prevTime)
		}
		if !e.PrevCut.Equal(prevCut) || (n > 0 && !e.Cut.After(e.PrevCut)) {
			t.Fatalf("epoch %d: cut (%v, %v] does not follow %v", n, e.PrevCut, e.Cut, prevCut)
		}
		prevTime, prevCut = h.Time, e.Cut
		rows := must[[]storage.LogRow](t)(s.Records(ctx, n))
		if n == 0 {
			want := format.EpochHead{Realm: realmName, Epoch: 0, Time: h.Time, TreeRoot: tree.Empty, UpdatesRoot: format.UpdatesRoot(nil)}
			if wb := must[[]byte](t)(want.Marshal()); !bytes.Equal(wb, e.Head) || len(rows) != 0 {
				t.Fatalf("genesis head %+v, %d records", h, len(rows))
			}
		} else {
			recs := make([][]byte, len(rows))
			for i, row := range rows {
				recs[i] = row.Record
			}
			out := must[*statemachine.Output](t)(statemachine.Apply(ctx, mtree, entries, statemachine.Input{
				Rules: r.Rules, Epoch: n, Time: h.Time, Records: recs}))
			if !bytes.Equal(out.HeadBytes, e.Head) {
				t.Fatalf("epoch %d: replayed head %+v, stored %+v", n, out.Head, h)
			}
			if err := mstore.Commit(ctx, n, tree.Hash(h.TreeRoot)); err != nil {
				t.Fatal(err)
			}
			for _, a := range out.Applied {
				entries[a.Index] = statemachine.Latest{LeafRecord: a.LeafRecord, SignedEntry: a.SignedEntry}
				users[a.Index] = true
			}
		}
		total += int64(len(rows))
		if e.UpdateCount != int64(len(rows)) {
			t.Fatalf("epoch %d counts %d updates, has %d records", n, e.UpdateCount, len(rows))
		}
		// The epoch log.
		root := must[[32]byte](t)(mlog.Append(checkpoint.LeafHash(e.Head)))
		v := must[*checkpoint.Verified](t)(checkpoint.Open(e.Checkpoint, realmName, logKey, nil, 0))
		if v.Checkpoint.Size != n+1 || v.Checkpoint.Hash != root {
			t.Fatalf("epoch %d: checkpoint %+v, replayed root %x", n, v.Checkpoint, root)
		}
		if err := checkpoint.VerifyInclusion(checkpoint.LeafHash(e.Head), n, n+1, e.HeadProof, root); err != nil {
			t.Fatalf("epoch %d: head proof: %v", n, err)
		}
		if n > 0 {
			p := must[[][32]byte](t)(checkpoint.ConsistencyProof(n, n+1, s.LogHashes()))
			if err := checkpoint.VerifyConsistency(n, n+1, p, prevRoot, root); err != nil {
				t.Fatalf("epoch %d: consistency with %d: %v", n, n-1, err)
			}
		}
		prevRoot = root
		heads = append(heads, e.Head)
	}
	// Every log row is in exactly one epoch.
	all := must[[]storage.LogRow](t)(s.ReadLog(ctx, time.Time{}, newest.Cut))
	if int64(len(all)) != total {
		t.Fatalf("the log holds %d rows up to the last cut, the epochs %d", len(all), total)
	}
	// Users: stored history against the stored tree.
	head := must[*format.EpochHead](t)(format.ParseEpochHead(newest.Head))
	st := tree.New(s.Tree())
	for idx := range users {
		u := must[*storage.UserState](t)(s.User(ctx, newest.Epoch, idx))
		last := u.Records[len(u.Records)-1].LeafRecord
		proof := must[*tree.Proof](t)(st.Prove(ctx, newest.Epoch, tree.Key(idx)))
		if err := tree.VerifyInclusion(tree.Hash(head.TreeRoot), tree.Key(idx), tree.Hash(format.LeafRecordHash(last)), proof); err != nil {
			t.Fatalf("user %x: %v", idx, err)
		}
		var prev [32]byte
		for i, rec := range u.Records {
			lr := must[*format.LeafRecord](t)(format.ParseLeafRecord(rec.LeafRecord))
			if lr.Prev != prev {
				t.Fatalf("user %x: record %d does not chain", idx, i)
			}
			prev = format.LeafRecordHash(rec.LeafRecord)
		}
	}
	return heads
}

// --- tracing and fault injection ---

var errInjected = errors.New("injected failure")

// fault fails the first call of a step (a durable write, a signature or a
// publication) for epoch Epoch: before it takes effect, or after.
type fault struct {
	Step  string
	After bool
	Epoch uint64
}

func (f fault) String() string {
	when := "before"
	if f.After {
		when = "after"
	}
	return fmt.Sprintf("%s/%s", f.Step, when)
}

// tracer records the durable and visible steps, in order, and injects at
// most one fault.
type tracer struct {
	mu     sync.Mutex
	events []string
	armed  *fault
	fired  bool
}

func (tr *tracer) record(ev string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, ev)
}

// do runs a step: it records it and applies the fault if it matches.
func (tr *tracer) do(step string, n uint64, f func() error) error {
	tr.mu.Lock()
	hit := tr.armed != nil && !tr.fired && tr.armed.Step == step && tr.armed.Epoch == n
	after := hit && tr.armed.After
	if hit {
		tr.fired = true
	}
	tr.mu.Unlock()
	if hit && !after {
		tr.record(fmt.Sprintf("%s(%d) FAILED", step, n))
		return errInjected
	}
	if err := f(); err != nil {
		return err
	}
	tr.record(fmt.Sprintf("%s(%d)", step, n))
	if after {
		return errInjected
	}
	return nil
}

func (tr *tracer) Events() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.events...)
}

// traceStore wraps a storage.Store, tracing its durable epoch writes.
type traceStore struct {
	storage.Store
	tr *tracer
}

func (s *traceStore) CreateAttempt(ctx context.Context, a storage.Attempt) (*storage.Attempt, error) {
	var got *storage.Attempt
	err := s.tr.do("CreateAttempt", a.Epoch, func() (err error) {
		got, err = s.Store.CreateAttempt(ctx, a)
		return err
	})
	return got, err
}

func (s *traceStore) WriteLeafRecords(ctx context.Context, token int64, n uint64, applied []statemachine.Applied) error {
	return s.tr.do("WriteLeafRecords", n, func() error { return s.Store.WriteLeafRecords(ctx, token, n, applied) })
}

func (s *traceStore) CommitEpoch(ctx context.Context, token int64, c storage.EpochCommit) error {
	return s.tr.do("CommitEpoch", c.Epoch, func() error { return s.Store.CommitEpoch(ctx, token, c) })
}

func (s *traceStore) MarkPublished(ctx context.Context, n uint64) error {
	return s.tr.do("MarkPublished", n, func() error { return s.Store.MarkPublished(ctx, n) })
}

func (s *traceStore) FencedTree(token int64) tree.Store {
	return &traceTree{Store: s.Store.FencedTree(token), tr: s.tr}
}

// traceTree traces the tree's durable writes.
type traceTree struct {
	tree.Store
	tr *tracer
}

func (t *traceTree) WriteNodes(ctx context.Context, v uint64, nodes []tree.Node) error {
	return t.tr.do("WriteNodes", v, func() error { return t.Store.WriteNodes(ctx, v, nodes) })
}

func (t *traceTree) Discard(ctx context.Context, v uint64) error {
	return t.tr.do("Discard", v, func() error { return t.Store.Discard(ctx, v) })
}

func (t *traceTree) Commit(ctx context.Context, v uint64, root tree.Hash) error {
	return t.tr.do("TreeCommit", v, func() error { return t.Store.Commit(ctx, v, root) })
}

// traceSigner traces signature requests. The epoch is read from the
// checkpoint's size line.
type traceSigner struct {
	checkpoint.Ed25519Signer
	tr *tracer
}

func (s *traceSigner) Sign(msg []byte) ([]byte, error) {
	var n uint64
	if c, err := checkpoint.Parse(msg); err == nil && c.Size > 0 {
		n = c.Size - 1
	}
	var sig []byte
	err := s.tr.do("Sign", n, func() (err error) {
		sig, err = s.Ed25519Signer.Sign(msg)
		return err
	})
	return sig, err
}

// tracePublisher traces publications and keeps every bundle published.
type tracePublisher struct {
	epoch.Publisher
	tr      *tracer
	mu      sync.Mutex
	bundles map[uint64][][]byte
}

func (p *tracePublisher) Publish(ctx context.Context, n uint64, bundle []byte) error {
	return p.tr.do("Publish", n, func() error {
		if err := p.Publisher.Publish(ctx, n, bundle); err != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.bundles == nil {
			p.bundles = map[uint64][][]byte{}
		}
		p.bundles[n] = append(p.bundles[n], bundle)
		return nil
	})
}
