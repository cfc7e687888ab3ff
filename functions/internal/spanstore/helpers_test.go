package spanstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

func TestMain(m *testing.M) { spantest.Main(m) }

// fixture is a store on a fresh database with a test realm.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	s      *spanstore.Store
	realm  *spantest.Realm
	signer *checkpoint.LogSigner
	token  int64
	now    uint64 // next epoch time, Unix ms
}

const realmName = "example.com/spanstore"

func newFixture(t *testing.T, verifiers, quorum int) *fixture {
	t.Helper()
	signer, err := spantest.LogSigner(realmName)
	if err != nil {
		t.Fatal(err)
	}
	r, err := spantest.NewRealm(realmName, signer.VerifierKey(), verifiers, quorum)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: context.Background(), s: spantest.Store(t, r.Config), realm: r, signer: signer,
		now: uint64(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixMilli())}
	f.token = f.lease("runner-a")
	return f
}

func (f *fixture) lease(holder string) int64 {
	f.t.Helper()
	tok, err := f.s.AcquireLease(f.ctx, storage.EpochLease, holder, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// append logs updates, failing the test on error.
func (f *fixture) append(as ...storage.Append) []storage.LogRow {
	f.t.Helper()
	var rows []storage.LogRow
	for _, a := range as {
		row, err := f.s.AppendUpdate(f.ctx, a, func(*storage.PendingUser) error { return nil })
		if err != nil {
			f.t.Fatal(err)
		}
		rows = append(rows, row)
	}
	return rows
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// prepared is an epoch written up to (not including) its commit.
type prepared struct {
	commit  storage.EpochCommit
	out     *statemachine.Output
	rows    []storage.LogRow
	attempt *storage.Attempt
}

// prepare does what the epoch runner does before CommitEpoch: cut, record
// the attempt, apply, write leaf records, append to the epoch log and sign.
func (f *fixture) prepare() *prepared {
	f.t.Helper()
	ctx, s := f.ctx, f.s
	f.now += 1000
	p := &prepared{}
	newest, err := s.NewestEpoch(ctx)
	var head []byte
	var root tree.Hash
	n := uint64(0)
	if errors.Is(err, storage.ErrNotFound) {
		p.attempt = must[*storage.Attempt](f.t)(s.CreateAttempt(ctx, storage.Attempt{Epoch: 0, Time: f.now, Token: f.token}))
		h := format.EpochHead{Realm: realmName, Epoch: 0, Time: f.now, TreeRoot: tree.Empty, UpdatesRoot: format.UpdatesRoot(nil)}
		head = must[[]byte](f.t)(h.Marshal())
		root = tree.Empty
	} else {
		if err != nil {
			f.t.Fatal(err)
		}
		n = newest.Epoch + 1
		k, cut, err := s.WaitingSince(ctx, newest.Cut, 12000)
		if err != nil {
			f.t.Fatal(err)
		}
		p.attempt = must[*storage.Attempt](f.t)(s.CreateAttempt(ctx, storage.Attempt{
			Epoch: n, PrevCut: newest.Cut, Cut: cut, Time: f.now, Token: f.token, Updates: int64(k)}))
		p.rows = must[[]storage.LogRow](f.t)(s.ReadLog(ctx, p.attempt.PrevCut, p.attempt.Cut))
		recs := make([][]byte, len(p.rows))
		for i, r := range p.rows {
			recs[i] = r.Record
		}
		p.out = must[*statemachine.Output](f.t)(statemachine.Apply(ctx, tree.New(s.FencedTree(f.token)), s.Entries(),
			statemachine.Input{Rules: f.realm.Rules, Epoch: n, Time: p.attempt.Time, Records: recs}))
		if err := s.WriteLeafRecords(ctx, f.token, n, p.out.Applied); err != nil {
			f.t.Fatal(err)
		}
		head, root = p.out.HeadBytes, tree.Hash(p.out.Head.TreeRoot)
	}
	nodes, logRoot, err := checkpoint.AppendLeaf(n, checkpoint.LeafHash(head), s.LogHashes())
	if err != nil {
		f.t.Fatal(err)
	}
	proof := must[[][32]byte](f.t)(checkpoint.InclusionProof(n, n+1, s.LogHashes()))
	note := must[[]byte](f.t)(checkpoint.Sign(checkpoint.Checkpoint{Origin: realmName, Size: n + 1, Hash: logRoot}, f.signer))
	p.commit = storage.EpochCommit{Epoch: n, Head: head, Checkpoint: note, HeadProof: proof, TreeRoot: root,
		LogNodes: nodes, UpdateCount: int64(len(p.rows)), Tombstoned: map[[32]byte]uint64{}}
	if p.out != nil {
		for _, r := range p.out.Rejected {
			p.commit.Rejected = append(p.commit.Rejected, r)
			p.commit.RejectedRows = append(p.commit.RejectedRows, p.rows[r.Position])
		}
		for _, a := range p.out.Applied {
			if a.Tombstone {
				p.commit.Tombstoned[a.Index] = a.Version
			}
		}
	}
	return p
}

// epoch makes and commits the next epoch.
func (f *fixture) epoch() *prepared {
	f.t.Helper()
	p := f.prepare()
	if err := f.s.CommitEpoch(f.ctx, f.token, p.commit); err != nil {
		f.t.Fatal(err)
	}
	return p
}
