package spanstore_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/spanner"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/tree/treetest"
)

func TestTreeConformance(t *testing.T) {
	treetest.Run(t, func(t *testing.T) (tree.Store, func() tree.Store) {
		db := spantest.NewDatabase(t)
		s := spantest.Open(t, db, nil)
		return s.Tree(), func() tree.Store { return spantest.Open(t, db, nil).Tree() }
	})
}

func count(t *testing.T, s *spanstore.Store, sql string, params map[string]any) int64 {
	t.Helper()
	var n int64
	err := s.Client().Single().Query(context.Background(), spanner.Statement{SQL: sql, Params: params}).Do(func(r *spanner.Row) error {
		return r.Column(0, &n)
	})
	if err != nil {
		t.Fatalf("couldn't run %q: %v", sql, err)
	}
	return n
}

func TestAppendUpdate(t *testing.T) {
	f := newFixture(t, 0, 0)
	ctx, s := f.ctx, f.s
	alice := spantest.NewUser("alice")
	reg := must[storage.Append](t)(alice.Register(realmName, f.realm.Registrar))

	var seen []*storage.PendingUser
	check := func(p *storage.PendingUser) error { seen = append(seen, p); return nil }
	row1, err := s.AppendUpdate(ctx, reg, check)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != nil {
		t.Fatalf("check of a new user got %v, want nil", seen)
	}
	if row1.Index != alice.Index || row1.Shard != int64(alice.Index[0]%spanstore.DefaultShards) ||
		!bytes.Equal(row1.Record, reg.Record) || row1.CommitTs.IsZero() {
		t.Fatalf("log row = %+v", row1)
	}

	upd := must[storage.Append](t)(alice.Update(realmName))
	seen = nil
	row2, err := s.AppendUpdate(ctx, upd, check)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] == nil || seen[0].Version != 1 || seen[0].EntryHash != reg.EntryHash ||
		!bytes.Equal(seen[0].SignedEntry, reg.SignedEntry) {
		t.Fatalf("check of a registered user got %+v", seen)
	}
	if !row2.CommitTs.After(row1.CommitTs) {
		t.Fatalf("second append at %v, not after %v", row2.CommitTs, row1.CommitTs)
	}

	// A failing check writes nothing and its error comes back unchanged.
	errNo := errors.New("no")
	next := must[storage.Append](t)(alice.Update(realmName))
	_, err = s.AppendUpdate(ctx, next, func(*storage.PendingUser) error { return errNo })
	if err != errNo {
		t.Fatalf("failing check: err = %v, want it unchanged", err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM Log`, nil); n != 2 {
		t.Fatalf("%d log rows after a refused append, want 2", n)
	}
	_, err = s.AppendUpdate(ctx, next, func(p *storage.PendingUser) error {
		if p.Version != 2 || p.EntryHash != upd.EntryHash {
			t.Errorf("pending after refused append = version %d", p.Version)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Profiles: one per non-tombstone version; none for a tombstone.
	tomb := must[storage.Append](t)(alice.Tombstone(realmName))
	if tomb.Profile != nil {
		t.Fatal("tombstone fixture has a profile")
	}
	f.append(tomb)
	got := map[int64][]byte{}
	err = s.Client().Single().Query(ctx, spanner.Statement{
		SQL: `SELECT Version, Profile, Opening FROM Profiles WHERE UserIndex = @i`, Params: map[string]any{"i": alice.Index[:]},
	}).Do(func(r *spanner.Row) error {
		var v int64
		var p, o []byte
		if err := r.Columns(&v, &p, &o); err != nil {
			return err
		}
		if !bytes.Equal(o, alice.Opening(uint64(v))) {
			t.Errorf("opening of version %d differs", v)
		}
		got[v] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !bytes.Equal(got[1], alice.Profile(1)) || !bytes.Equal(got[3], alice.Profile(3)) {
		t.Fatalf("profiles = %v, want versions 1..3", got)
	}

	// Shapes the store refuses.
	bad := reg
	bad.Opening = []byte{1, 2, 3}
	if _, err := s.AppendUpdate(ctx, bad, check); err == nil {
		t.Error("append with a 3-byte opening succeeded")
	}
	bad = reg
	bad.Version = 0
	if _, err := s.AppendUpdate(ctx, bad, check); err == nil {
		t.Error("append of version 0 succeeded")
	}

	// Shards: the configured count, and a refused one.
	s4 := must[*spanstore.Store](t)(spanstore.Open(ctx, spanstore.Options{Database: spantest.NewDatabase(t),
		ClientOptions: spantest.Spanner(t).ClientOptions(), Emulator: true, Shards: 4}))
	defer s4.Close()
	row := must[storage.LogRow](t)(s4.AppendUpdate(ctx, reg, check))
	if row.Shard != int64(alice.Index[0]%4) {
		t.Errorf("shard with 4 shards = %d, want %d", row.Shard, alice.Index[0]%4)
	}
	if _, err := spanstore.Open(ctx, spanstore.Options{Database: "x", Shards: 257}); err == nil {
		t.Error("Open with 257 shards succeeded")
	}
}

func TestLease(t *testing.T) {
	f := newFixture(t, 0, 0)
	ctx, s := f.ctx, f.s
	if f.token != 1 {
		t.Fatalf("first token = %d, want 1", f.token)
	}
	if tok := f.lease("runner-a"); tok != 1 {
		t.Fatalf("renewal token = %d, want 1", tok)
	}
	if _, err := s.AcquireLease(ctx, storage.EpochLease, "runner-b", time.Hour); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("second holder: err = %v, want ErrLeaseHeld", err)
	}
	// A stale release does nothing; the holder's release frees the lease.
	if err := s.ReleaseLease(ctx, storage.EpochLease, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, storage.EpochLease, "runner-b", time.Hour); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("after a stale release: err = %v, want ErrLeaseHeld", err)
	}
	if err := s.ReleaseLease(ctx, storage.EpochLease, 1); err != nil {
		t.Fatal(err)
	}
	if tok := f.lease("runner-b"); tok != 2 {
		t.Fatalf("takeover token = %d, want 2", tok)
	}
	if _, err := s.AcquireLease(ctx, storage.EpochLease, "runner-a", time.Hour); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("old holder: err = %v, want ErrLeaseHeld", err)
	}

	// Token 1 is fenced everywhere the epoch writes.
	if _, err := s.CreateAttempt(ctx, storage.Attempt{Epoch: 0, Time: 1, Token: 1}); !errors.Is(err, storage.ErrFenced) {
		t.Errorf("CreateAttempt with a stale token: %v", err)
	}
	leaf := tree.Node{ID: tree.Position(tree.Key{}, 0), Kind: tree.Leaf, Value: tree.Hash{1}}
	if err := s.FencedTree(1).WriteNodes(ctx, 1, []tree.Node{leaf}); !errors.Is(err, storage.ErrFenced) {
		t.Errorf("FencedTree.WriteNodes with a stale token: %v", err)
	}
	if err := s.FencedTree(1).Discard(ctx, 1); !errors.Is(err, storage.ErrFenced) {
		t.Errorf("FencedTree.Discard with a stale token: %v", err)
	}
	if err := s.FencedTree(1).Commit(ctx, 1, tree.Hash{1}); !errors.Is(err, storage.ErrFenced) {
		t.Errorf("FencedTree.Commit with a stale token: %v", err)
	}
	if err := s.WriteLeafRecords(ctx, 1, 1, nil); !errors.Is(err, storage.ErrFenced) {
		t.Errorf("WriteLeafRecords with a stale token: %v", err)
	}
	// The current token works, and fences the old one's commit.
	f.token = 2
	p := f.prepare()
	if err := s.CommitEpoch(ctx, 1, p.commit); !errors.Is(err, storage.ErrFenced) {
		t.Errorf("CommitEpoch with a stale token: %v", err)
	}
	if err := s.CommitEpoch(ctx, 2, p.commit); err != nil {
		t.Fatal(err)
	}
	if err := s.FencedTree(2).WriteNodes(ctx, 1, []tree.Node{leaf}); err != nil {
		t.Errorf("FencedTree.WriteNodes with the current token: %v", err)
	}

	// Expiry, judged by Spanner's clock.
	const ttl = 300 * time.Millisecond
	t1 := must[int64](t)(s.AcquireLease(ctx, "other", "x", ttl))
	if _, err := s.AcquireLease(ctx, "other", "y", ttl); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("before expiry: err = %v, want ErrLeaseHeld", err)
	}
	time.Sleep(ttl + 200*time.Millisecond)
	if t2 := must[int64](t)(s.AcquireLease(ctx, "other", "y", ttl)); t2 != t1+1 {
		t.Fatalf("token after expiry = %d, want %d", t2, t1+1)
	}
	if _, err := s.AcquireLease(ctx, "", "y", ttl); err == nil {
		t.Error("lease with an empty name")
	}
}

func TestCutAndReadLog(t *testing.T) {
	f := newFixture(t, 0, 0)
	ctx, s := f.ctx, f.s
	f.epoch() // genesis
	var users []*spantest.User
	var as []storage.Append
	for _, n := range []string{"u0", "u1", "u2", "u3", "u4"} {
		u := spantest.NewUser(n)
		users = append(users, u)
		as = append(as, must[storage.Append](t)(u.Register(realmName, f.realm.Registrar)))
	}
	rows := f.append(as[:3]...)
	n, cut, err := s.WaitingSince(ctx, time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || cut.Before(rows[2].CommitTs) {
		t.Fatalf("WaitingSince = %d, %v; want 3 and a cut at or after %v", n, cut, rows[2].CommitTs)
	}
	rows = append(rows, f.append(as[3:]...)...)
	if !rows[3].CommitTs.After(cut) {
		t.Fatalf("an append after the cut got %v ≤ cut %v", rows[3].CommitTs, cut)
	}
	same := func(got, want []storage.LogRow) bool {
		return slices.EqualFunc(got, want, func(a, b storage.LogRow) bool {
			return a.CommitTs.Equal(b.CommitTs) && a.Shard == b.Shard && a.Seq == b.Seq && a.Index == b.Index && bytes.Equal(a.Record, b.Record)
		})
	}
	for _, c := range []struct {
		prev, cut time.Time
		want      []storage.LogRow
	}{
		{time.Time{}, cut, rows[:3]},
		{time.Time{}, rows[1].CommitTs, rows[:2]},       // the cut is inclusive
		{rows[0].CommitTs, rows[1].CommitTs, rows[1:2]}, // the previous cut exclusive
		{rows[2].CommitTs, rows[4].CommitTs, rows[3:]},
		{rows[4].CommitTs, rows[4].CommitTs, nil},
	} {
		got, err := s.ReadLog(ctx, c.prev, c.cut)
		if err != nil {
			t.Fatal(err)
		}
		if !same(got, c.want) {
			t.Errorf("ReadLog(%v, %v) = %d rows, want %d", c.prev, c.cut, len(got), len(c.want))
		}
	}
	// Capped: the cut moves back to a row's commit timestamp.
	if n, c, err := s.WaitingSince(ctx, time.Time{}, 2); err != nil || n != 2 || !c.Equal(rows[1].CommitTs) {
		t.Errorf("WaitingSince(limit 2) = %d, %v, %v; want 2, %v", n, c, err, rows[1].CommitTs)
	}

	// Rows of one commit timestamp (several shards, one transaction) come
	// in (Shard, Seq) order, and a capped cut never splits them.
	var ms []*spanner.Mutation
	for i, sh := range []int64{200, 3, 3, 77} {
		ms = append(ms, spanner.Insert("Log", []string{"Shard", "CommitTs", "Seq", "UserIndex", "Record"},
			[]any{sh, spanner.CommitTimestamp, bytes.Repeat([]byte{byte(9 - i)}, 16), users[0].Index[:], as[0].Record}))
	}
	ts := must[time.Time](t)(s.Client().Apply(ctx, ms))
	tied := must[[]storage.LogRow](t)(s.ReadLog(ctx, rows[4].CommitTs, ts))
	var order []int64
	for _, r := range tied {
		order = append(order, r.Shard*100+int64(r.Seq[0]))
	}
	if !slices.Equal(order, []int64{307, 308, 7706, 20009}) {
		t.Errorf("tied rows in order %v", order)
	}
	if n, c, err := s.WaitingSince(ctx, rows[3].CommitTs, 3); err != nil || n != 1 || !c.Equal(rows[4].CommitTs) {
		t.Errorf("WaitingSince before a tie = %d, %v, %v; want 1, %v", n, c, err, rows[4].CommitTs)
	}
	if n, c, err := s.WaitingSince(ctx, rows[4].CommitTs, 2); err != nil || n != 4 || !c.Equal(ts) {
		t.Errorf("WaitingSince inside a tie = %d, %v, %v; want 4, %v", n, c, err, ts)
	}
}

func TestEpochVisibility(t *testing.T) {
	f := newFixture(t, 2, 1)
	ctx, s := f.ctx, f.s
	if _, err := s.NewestEpoch(ctx); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("NewestEpoch of an empty store: %v", err)
	}
	if _, err := s.LatestEpoch(ctx, nil, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("LatestEpoch of an empty store: %v", err)
	}
	g := f.epoch()
	e0 := must[*storage.Epoch](t)(s.GetEpoch(ctx, 0))
	if !bytes.Equal(e0.Head, g.commit.Head) || len(e0.HeadProof) != 0 || !e0.Cut.IsZero() || !e0.PrevCut.IsZero() || e0.UpdateCount != 0 {
		t.Fatalf("genesis = %+v", e0)
	}
	if v, root, err := s.Tree().Latest(ctx); err != nil || v != 0 || root != tree.Empty {
		t.Fatalf("tree after genesis = %d, %v, %v", v, root, err)
	}

	alice, bob := spantest.NewUser("alice"), spantest.NewUser("bob")
	rows := f.append(must[storage.Append](t)(alice.Register(realmName, f.realm.Registrar)),
		must[storage.Append](t)(bob.Register(realmName, f.realm.Registrar)))
	p := f.prepare()
	if len(p.out.Applied) != 2 || len(p.out.Rejected) != 0 {
		t.Fatalf("epoch 1 applied %d, rejected %v", len(p.out.Applied), p.out.Rejected)
	}

	// Written but not committed: invisible everywhere.
	if _, err := s.GetEpoch(ctx, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetEpoch(1) before commit: %v", err)
	}
	if e := must[*storage.Epoch](t)(s.NewestEpoch(ctx)); e.Epoch != 0 {
		t.Errorf("newest epoch before commit = %d", e.Epoch)
	}
	if _, err := s.User(ctx, 1, alice.Index); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("User at uncommitted epoch: %v", err)
	}
	if _, err := s.User(ctx, 0, alice.Index); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("User before its epoch: %v", err)
	}
	if m := must[map[[32]byte]statemachine.Latest](t)(s.Entries().Latest(ctx, 0, [][32]byte{alice.Index})); len(m) != 0 {
		t.Errorf("Entries at epoch 0 = %v", m)
	}
	if _, err := s.Entries().Latest(ctx, 1, [][32]byte{alice.Index}); err == nil {
		t.Error("Entries at an uncommitted epoch succeeded")
	}
	if _, err := s.Tree().ReadNodes(ctx, 1, []tree.NodeID{{}}); !errors.Is(err, tree.ErrNotCommitted) {
		t.Errorf("tree read at uncommitted version: %v", err)
	}
	if _, err := s.Records(ctx, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Records of an uncommitted epoch: %v", err)
	}
	if _, err := s.LogHashes().ReadHashes([]compact.NodeID{compact.NewNodeID(0, 1)}); !errors.Is(err, checkpoint.ErrNodeNotFound) {
		t.Errorf("log node of an uncommitted epoch: %v", err)
	}

	if err := s.CommitEpoch(ctx, f.token, p.commit); err != nil {
		t.Fatal(err)
	}
	e1 := must[*storage.Epoch](t)(s.GetEpoch(ctx, 1))
	if !bytes.Equal(e1.Head, p.commit.Head) || !bytes.Equal(e1.Checkpoint, p.commit.Checkpoint) ||
		!slices.Equal(e1.HeadProof, p.commit.HeadProof) || !e1.PrevCut.IsZero() || !e1.Cut.Equal(p.attempt.Cut) ||
		e1.UpdateCount != 2 || e1.Published || len(e1.Cosigners) != 0 {
		t.Fatalf("epoch 1 = %+v", e1)
	}
	if e := must[*storage.Epoch](t)(s.NewestEpoch(ctx)); e.Epoch != 1 {
		t.Errorf("newest epoch = %d", e.Epoch)
	}
	// The checkpoint verifies, the head is in it, the tree proves alice.
	v := must[*checkpoint.Verified](t)(checkpoint.Open(e1.Checkpoint, realmName, f.signer.Verifier(), nil, 0))
	if err := checkpoint.VerifyInclusion(checkpoint.LeafHash(e1.Head), 1, 2, e1.HeadProof, v.Checkpoint.Hash); err != nil {
		t.Fatal(err)
	}
	st := must[*storage.UserState](t)(s.User(ctx, 1, alice.Index))
	if len(st.Records) != 1 || st.Records[0].Epoch != 1 || st.Records[0].Version != 1 ||
		!bytes.Equal(st.Profile, alice.Profile(1)) || !bytes.Equal(st.Opening, alice.Opening(1)) {
		t.Fatalf("alice at epoch 1 = %+v", st)
	}
	proof := must[*tree.Proof](t)(tree.New(s.Tree()).Prove(ctx, 1, tree.Key(alice.Index)))
	if err := tree.VerifyInclusion(tree.Hash(p.out.Head.TreeRoot), tree.Key(alice.Index),
		tree.Hash(format.LeafRecordHash(st.Records[0].LeafRecord)), proof); err != nil {
		t.Fatal(err)
	}
	recs := must[[]storage.LogRow](t)(s.Records(ctx, 1))
	if len(recs) != 2 || !recs[0].CommitTs.Equal(rows[0].CommitTs) || recs[1].Seq != rows[1].Seq {
		t.Fatalf("records of epoch 1 = %+v", recs)
	}
	if m := must[map[[32]byte]statemachine.Latest](t)(s.Entries().Latest(ctx, 1, [][32]byte{alice.Index, bob.Index})); len(m) != 2 {
		t.Errorf("Entries at epoch 1 = %d users", len(m))
	}

	// Idempotent commit; a different epoch 1 is a conflict.
	if err := s.CommitEpoch(ctx, f.token, p.commit); err != nil {
		t.Errorf("repeated commit: %v", err)
	}
	other := p.commit
	h, _ := format.ParseEpochHead(other.Head)
	h.Time++
	other.Head, _ = h.Marshal()
	if err := s.CommitEpoch(ctx, f.token, other); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("conflicting commit: %v", err)
	}
	if _, err := s.CreateAttempt(ctx, storage.Attempt{Epoch: 1, Cut: time.Now(), Time: 1, Token: f.token}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("attempt at a committed epoch: %v", err)
	}
	if err := s.WriteLeafRecords(ctx, f.token, 1, p.out.Applied); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("leaf records of a committed epoch: %v", err)
	}

	// The outbox, in order.
	if u := must[[]uint64](t)(s.Unpublished(ctx)); !slices.Equal(u, []uint64{0, 1}) {
		t.Errorf("unpublished = %v", u)
	}
	if err := s.MarkPublished(ctx, 1); err == nil {
		t.Error("marking epoch 1 before epoch 0 succeeded")
	}
	for _, n := range []uint64{0, 0, 1} {
		if err := s.MarkPublished(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if u := must[[]uint64](t)(s.Unpublished(ctx)); len(u) != 0 {
		t.Errorf("unpublished after marking = %v", u)
	}
	if err := s.MarkPublished(ctx, 5); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("marking a missing epoch: %v", err)
	}
	if !must[*storage.Epoch](t)(s.GetEpoch(ctx, 1)).Published {
		t.Error("epoch 1 not published")
	}
}

// cosign returns the signature line of cosigner c on the note's text.
func cosign(t *testing.T, c *checkpoint.Cosigner, signed []byte) (line, noteBytes []byte) {
	t.Helper()
	text, _, _ := bytes.Cut(signed, []byte("\n\n"))
	msg := must[[]byte](t)(note.Sign(&note.Note{Text: string(text) + "\n"}, c))
	_, sigs, _ := bytes.Cut(msg, []byte("\n\n"))
	return sigs, msg
}

func TestCosignatures(t *testing.T) {
	f := newFixture(t, 3, 2)
	ctx, s := f.ctx, f.s
	f.epoch()
	f.epoch()
	names := []string{f.realm.Cosigners[0].Name(), f.realm.Cosigners[1].Name(), f.realm.Cosigners[2].Name()}
	if _, err := s.LatestEpoch(ctx, names, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("LatestEpoch without co-signatures: %v", err)
	}
	e1 := must[*storage.Epoch](t)(s.GetEpoch(ctx, 1))
	stored := e1.Checkpoint
	cv := make([]*checkpoint.CosignatureVerifier, 3)
	for i, c := range f.realm.Cosigners {
		cv[i] = c.Verifier()
	}
	l0, n0 := cosign(t, f.realm.Cosigners[0], stored)
	l2, n2 := cosign(t, f.realm.Cosigners[2], stored)

	// Arrival order does not matter: the note equals checkpoint.Merge's.
	got := must[*storage.Epoch](t)(s.AddCosignature(ctx, 1, names[2], l2))
	if !slices.Equal(got.Cosigners, names[2:3]) {
		t.Fatalf("cosigners = %v", got.Cosigners)
	}
	got = must[*storage.Epoch](t)(s.AddCosignature(ctx, 1, names[0], l0))
	want := must[[]byte](t)(checkpoint.Merge(realmName, f.signer.Verifier(), cv, stored, n2, n0))
	if !bytes.Equal(got.Checkpoint, want) || !slices.Equal(got.Cosigners, []string{names[0], names[2]}) {
		t.Fatalf("merged note:\n%s\nwant\n%s", got.Checkpoint, want)
	}
	if _, err := checkpoint.Open(got.Checkpoint, realmName, f.signer.Verifier(), cv, 2); err != nil {
		t.Fatal(err)
	}
	// Quorums.
	if e := must[*storage.Epoch](t)(s.LatestEpoch(ctx, names, 2)); e.Epoch != 1 {
		t.Errorf("LatestEpoch(2) = %d", e.Epoch)
	}
	if _, err := s.LatestEpoch(ctx, names[:2], 2); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("LatestEpoch(2 of the first two): %v", err)
	}
	if _, err := s.LatestEpoch(ctx, names, 3); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("LatestEpoch(3): %v", err)
	}
	if _, err := s.LatestEpoch(ctx, names, 4); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("LatestEpoch(4 of 3): %v", err)
	}
	f.epoch() // epoch 2, not co-signed: quorum still finds 1
	if e := must[*storage.Epoch](t)(s.LatestEpoch(ctx, []string{names[0], names[0], names[2]}, 2)); e.Epoch != 1 {
		t.Errorf("LatestEpoch after an uncosigned epoch = %d", e.Epoch)
	}
	if e := must[*storage.Epoch](t)(s.LatestEpoch(ctx, names, 0)); e.Epoch != 2 {
		t.Errorf("LatestEpoch(0) = %d", e.Epoch)
	}

	// The first co-signature of a verifier stays.
	again := must[*storage.Epoch](t)(s.AddCosignature(ctx, 1, names[0], l0))
	if !bytes.Equal(again.Checkpoint, want) {
		t.Error("a repeated co-signature changed the note")
	}
	// Refused: a bad signature, a line by another verifier than named, a
	// key not in the realm, garbage.
	bad := bytes.Clone(l0)
	bad[len(bad)-3] ^= 'A' ^ 'B'
	if _, err := s.AddCosignature(ctx, 1, names[0], bad); err == nil {
		t.Error("a corrupted co-signature was accepted")
	}
	l1, _ := cosign(t, f.realm.Cosigners[1], stored)
	if _, err := s.AddCosignature(ctx, 1, names[0], l1); err == nil {
		t.Error("a line by another verifier was accepted under names[0]")
	}
	stranger := must[*checkpoint.Cosigner](t)(checkpoint.NewCosigner(names[1],
		must[*checkpoint.KeySigner](t)(checkpoint.NewKeySigner(spantest.Key("stranger"))), func() time.Time { return spantest.CosignTime }))
	ls, _ := cosign(t, stranger, stored)
	if _, err := s.AddCosignature(ctx, 1, names[1], ls); err == nil {
		t.Error("a co-signature by an unknown key was accepted")
	}
	for _, g := range []string{"", "— x\n", "— " + names[1] + " AAAA\n", strings.TrimSuffix(string(l1), "\n"), string(l1) + string(l1)} {
		if _, err := s.AddCosignature(ctx, 1, names[1], []byte(g)); err == nil {
			t.Errorf("line %q was accepted", g)
		}
	}
	// Epoch 2's line on epoch 1 fails: another checkpoint.
	e2 := must[*storage.Epoch](t)(s.GetEpoch(ctx, 2))
	l2e2, _ := cosign(t, f.realm.Cosigners[1], e2.Checkpoint)
	if _, err := s.AddCosignature(ctx, 1, names[1], l2e2); err == nil {
		t.Error("a co-signature of epoch 2 was accepted for epoch 1")
	}
	if _, err := s.AddCosignature(ctx, 9, names[1], l1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("co-signature of a missing epoch: %v", err)
	}
}

func TestTombstoneErasure(t *testing.T) {
	f := newFixture(t, 0, 0)
	ctx, s := f.ctx, f.s
	f.epoch()
	alice, bob := spantest.NewUser("alice"), spantest.NewUser("bob")
	f.append(must[storage.Append](t)(alice.Register(realmName, f.realm.Registrar)), must[storage.Append](t)(bob.Register(realmName, f.realm.Registrar)))
	f.epoch()
	f.append(must[storage.Append](t)(alice.Update(realmName)))
	f.epoch()
	f.append(must[storage.Append](t)(alice.Tombstone(realmName)))
	p := f.epoch()
	if p.commit.Tombstoned[alice.Index] != 3 {
		t.Fatalf("tombstoned = %v", p.commit.Tombstoned)
	}
	for n := uint64(1); n <= 3; n++ {
		st := must[*storage.UserState](t)(s.User(ctx, n, alice.Index))
		if st.Profile != nil || st.Opening != nil {
			t.Errorf("alice's profile at epoch %d survived the erasure", n)
		}
		if len(st.Records) != int(n) {
			t.Errorf("alice has %d records at epoch %d", len(st.Records), n)
		}
	}
	if st := must[*storage.UserState](t)(s.User(ctx, 3, bob.Index)); !bytes.Equal(st.Profile, bob.Profile(1)) {
		t.Error("bob's profile was erased")
	}
	// Revival: a later version has a profile again.
	f.append(must[storage.Append](t)(alice.Update(realmName)))
	f.epoch()
	if st := must[*storage.UserState](t)(s.User(ctx, 4, alice.Index)); !bytes.Equal(st.Profile, alice.Profile(4)) || len(st.Records) != 4 {
		t.Errorf("alice after revival = %+v", st)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM Profiles WHERE UserIndex = @i`, map[string]any{"i": alice.Index[:]}); n != 1 {
		t.Errorf("alice has %d profile rows, want 1", n)
	}
}

func TestRewindRejected(t *testing.T) {
	f := newFixture(t, 0, 0)
	ctx, s := f.ctx, f.s
	f.epoch()
	alice, dave, carol := spantest.NewUser("alice"), spantest.NewUser("dave"), spantest.NewUser("carol")
	f.append(must[storage.Append](t)(alice.Register(realmName, f.realm.Registrar)), must[storage.Append](t)(dave.Register(realmName, f.realm.Registrar)))
	f.epoch()
	v1 := alice.Hash
	forged := must[storage.Append](t)(alice.Forged(realmName))
	badReg := must[storage.Append](t)(carol.Register(realmName, spantest.Key("not a registrar")))
	forgedDave := must[storage.Append](t)(dave.Forged(realmName))
	f.append(forged, badReg, forgedDave)
	pending := func(u *spantest.User) *storage.PendingUser {
		var got *storage.PendingUser
		errPeek := errors.New("peek")
		_, err := s.AppendUpdate(ctx, must[storage.Append](t)(spantest.NewUser(u.Name).Register(realmName, f.realm.Registrar)),
			func(p *storage.PendingUser) error { got = p; return errPeek })
		if err != errPeek {
			t.Fatal(err)
		}
		return got
	}
	if p := pending(alice); p.Version != 2 || p.EntryHash != forged.EntryHash {
		t.Fatalf("alice pending before the epoch = %+v", p)
	}
	p := f.prepare()
	if len(p.out.Rejected) != 3 {
		t.Fatalf("rejected = %+v", p.out.Rejected)
	}
	// Dave moves on after the cut: his row must be left alone.
	daveNext := must[storage.Append](t)(dave.Update(realmName))
	f.append(daveNext)
	if err := s.CommitEpoch(ctx, f.token, p.commit); err != nil {
		t.Fatal(err)
	}
	if got := pending(alice); got == nil || got.Version != 1 || got.EntryHash != v1 {
		t.Errorf("alice pending after the epoch = %+v, want version 1", got)
	}
	if got := pending(carol); got != nil {
		t.Errorf("carol pending after her registration was rejected = %+v, want none", got)
	}
	if got := pending(dave); got == nil || got.EntryHash != daveNext.EntryHash {
		t.Errorf("dave pending = %+v, want his later append", got)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM EpochRejections WHERE Epoch = 2 AND Reason LIKE @r`, map[string]any{"r": "quorum-old%"}); n != 2 {
		t.Errorf("%d quorum-old rejections stored, want 2", n)
	}
	// Alice can now send a valid successor of what was applied.
	f.append(must[storage.Append](t)(alice.Update(realmName)))
	p3 := f.epoch()
	if len(p3.out.Applied) != 2 || len(p3.out.Rejected) != 0 {
		t.Errorf("epoch 3: applied %d, rejected %+v", len(p3.out.Applied), p3.out.Rejected)
	}
}
