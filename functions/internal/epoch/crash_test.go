package epoch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/spanner"

	"github.com/conifer-kt/conifer/functions/internal/epoch"
	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
	"github.com/conifer-kt/conifer/functions/internal/storage"
)

// scenario is a fixed history: genesis, six registrations, then a mixed
// epoch (updates, a double update, a tombstone, a forged update, a new
// registration). Each step runs the given run function at a fixed time.
type scenario struct {
	t     *testing.T
	s     *spanstore.Store
	clk   *clock
	users []*spantest.User
	realm *spantest.Realm
}

func newScenario(t *testing.T, s *spanstore.Store, r *spantest.Realm, clk *clock) *scenario {
	sc := &scenario{t: t, s: s, clk: clk, realm: r}
	for i := range 7 {
		sc.users = append(sc.users, spantest.NewUser(fmt.Sprintf("user%d", i)))
	}
	return sc
}

// step1 runs genesis (at t0) and logs the registrations.
func (sc *scenario) genesisAndBatch1(run func()) {
	sc.clk.Set(t0)
	run()
	for _, u := range sc.users[:6] {
		appendAll(sc.t, sc.s, must[storage.Append](sc.t)(u.Register(realmName, sc.realm.Registrar)))
	}
	sc.clk.Set(t0.Add(2 * time.Second))
	run()
	u := sc.users
	appendAll(sc.t, sc.s,
		must[storage.Append](sc.t)(u[0].Update(realmName)),
		must[storage.Append](sc.t)(u[1].Update(realmName)),
		must[storage.Append](sc.t)(u[2].Tombstone(realmName)),
		must[storage.Append](sc.t)(u[3].Forged(realmName)),
		must[storage.Append](sc.t)(u[6].Register(realmName, sc.realm.Registrar)),
		must[storage.Append](sc.t)(u[1].Update(realmName)))
	sc.clk.Set(t0.Add(4 * time.Second))
}

// dump returns the rows of every table an epoch writes, in key order,
// without the columns that differ between databases (commit timestamps,
// cuts, lease tokens).
func dump(t *testing.T, s *spanstore.Store) map[string][]string {
	t.Helper()
	queries := map[string]string{
		"Epochs":          `SELECT Epoch, Head, TreeRoot, Checkpoint, HeadProof, EpochTime, Updates, Rejected, PublishedAt IS NOT NULL FROM Epochs ORDER BY Epoch`,
		"LeafRecords":     `SELECT UserIndex, Version, Epoch, Record, Entry FROM LeafRecords ORDER BY UserIndex, Version`,
		"TreeNodes":       `SELECT Position, Version, Node FROM TreeNodes ORDER BY Position, Version`,
		"EpochLogNodes":   `SELECT Level, Idx, NodeHash FROM EpochLogNodes ORDER BY Level, Idx`,
		"EpochRejections": `SELECT Epoch, Position, Reason FROM EpochRejections ORDER BY Epoch, Position`,
		"Profiles":        `SELECT UserIndex, Version, Profile, Opening FROM Profiles ORDER BY UserIndex, Version`,
		"Users":           `SELECT UserIndex, Version, EntryHash, Entry FROM Users ORDER BY UserIndex`,
		"EpochAttempts":   `SELECT Epoch, EpochTime, Updates FROM EpochAttempts ORDER BY Epoch`,
	}
	out := map[string][]string{}
	for table, q := range queries {
		err := s.Client().Single().Query(context.Background(), spanner.Statement{SQL: q}).Do(func(r *spanner.Row) error {
			var cols []string
			for i := range r.Size() {
				var g spanner.GenericColumnValue
				if err := r.Column(i, &g); err != nil {
					return err
				}
				cols = append(cols, g.Value.String())
			}
			out[table] = append(out[table], strings.Join(cols, " "))
			return nil
		})
		if err != nil {
			t.Fatalf("couldn't dump %s: %v", table, err)
		}
	}
	return out
}

var reference struct {
	once    sync.Once
	tables  map[string][]string
	bundles map[uint64][]byte
}

// referenceRun runs the scenario without faults on its own database.
func referenceRun(t *testing.T, r *spantest.Realm, pub epoch.Publisher) (map[string][]string, map[uint64][]byte) {
	reference.once.Do(func() {
		s := spantest.Store(t, r.Config)
		clk := newClock()
		tr := &tracer{}
		tp := &tracePublisher{Publisher: pub, tr: tr}
		runner := &epoch.Runner{Store: s, Realm: r.Config, Rules: r.Rules, Signer: signer(t), Publisher: tp, Holder: "ref", Now: clk.Now}
		sc := newScenario(t, s, r, clk)
		run := func() {
			if _, err := runner.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		sc.genesisAndBatch1(run)
		run()
		verifyLog(t, s, r)
		reference.tables = dump(t, s)
		reference.bundles = map[uint64][]byte{}
		for n, bs := range tp.bundles {
			reference.bundles[n] = bs[0]
		}
	})
	if reference.tables == nil {
		t.Fatal("the reference run failed")
	}
	return reference.tables, reference.bundles
}

// TestCrashMatrix fails the epoch at each durable step, before the step
// takes effect and after, then runs again, and checks the outcome is
// exactly the uninterrupted reference run's: the same rows in every table
// (no epoch twice, nothing applied twice, no node of a failed attempt
// left), every epoch published at least once with the reference's bundle,
// and the log verifying from scratch.
func TestCrashMatrix(t *testing.T) {
	r := testRealm(t, 0, 0)
	pub, _ := publisher(t)
	want, wantBundles := referenceRun(t, r, pub)
	if len(want["Epochs"]) != 3 || len(want["EpochRejections"]) != 1 {
		t.Fatalf("reference run: %d epochs, rejections %v", len(want["Epochs"]), want["EpochRejections"])
	}
	steps := []string{"CreateAttempt", "Discard", "WriteNodes", "WriteLeafRecords", "Sign", "CommitEpoch", "Publish", "MarkPublished"}
	for _, step := range steps {
		for _, after := range []bool{false, true} {
			f := fault{Step: step, After: after, Epoch: 2}
			t.Run(f.String(), func(t *testing.T) {
				s := spantest.Store(t, r.Config)
				clk := newClock()
				tr := &tracer{}
				tp := &tracePublisher{Publisher: pub, tr: tr}
				newRunner := func(holder string) *epoch.Runner {
					return &epoch.Runner{Store: &traceStore{Store: s, tr: tr}, Realm: r.Config, Rules: r.Rules,
						Signer: &traceSigner{Ed25519Signer: signer(t), tr: tr}, Publisher: tp, Holder: holder, Now: clk.Now}
				}
				first := newRunner("first")
				sc := newScenario(t, s, r, clk)
				sc.genesisAndBatch1(func() {
					if _, err := first.Run(context.Background()); err != nil {
						t.Fatal(err)
					}
				})
				tr.mu.Lock()
				tr.armed = &f
				tr.mu.Unlock()
				if _, err := first.Run(context.Background()); !errors.Is(err, errInjected) {
					t.Fatalf("run with %v failing: err = %v", f, err)
				}
				tr.mu.Lock()
				fired := tr.fired
				tr.mu.Unlock()
				if !fired {
					t.Fatal("the fault never fired")
				}
				// A crash: the next invocation is a new runner, later (the
				// lease was released by the failed run's deferred release,
				// or would expire). Once the attempt is recorded, the later
				// clock must not change the epoch: its time is the
				// attempt's.
				if f != (fault{Step: "CreateAttempt", Epoch: 2}) {
					clk.Add(time.Second)
				}
				if res, err := newRunner("second").Run(context.Background()); err != nil || res.Skipped {
					t.Fatalf("run after the failure = %+v, %v", res, err)
				}
				got := dump(t, s)
				for table, rows := range want {
					if !slices.Equal(got[table], rows) {
						t.Errorf("%s differs from the reference run:\n got %d rows %v\nwant %d rows %v",
							table, len(got[table]), abbreviate(got[table]), len(rows), abbreviate(rows))
					}
				}
				for n := uint64(0); n <= 2; n++ {
					bs := tp.bundles[n]
					if len(bs) == 0 {
						t.Errorf("epoch %d was never published", n)
						continue
					}
					for _, b := range bs {
						if !bytes.Equal(b, wantBundles[n]) {
							t.Errorf("epoch %d was published with other bytes than the reference's", n)
						}
					}
				}
				checkOrder(t, tr.Events())
				verifyLog(t, s, r)
			})
		}
	}
}

func abbreviate(rows []string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		if len(r) > 60 {
			r = r[:60] + "…"
		}
		out[i] = r
	}
	return out
}

// TestOverlappingRunners runs two runners at once, many times, with a lease
// so short that they keep taking it from each other mid-epoch, while
// updates arrive. Fencing must keep every epoch whole and unique: the log
// verifies from scratch (every epoch replays into its stored head, the
// heads chain, every update is in exactly one epoch).
func TestOverlappingRunners(t *testing.T) {
	ctx := context.Background()
	r := testRealm(t, 0, 0)
	s := spantest.Store(t, r.Config)
	// Every reading of the clock is a minute after the previous one, so an
	// epoch is always due.
	var ticks atomic.Int64
	now := func() time.Time { return t0.Add(time.Duration(ticks.Add(1)) * (time.Minute + time.Millisecond)) }
	var (
		wg                     sync.WaitGroup
		mu                     sync.Mutex
		made, skipped, appends int
	)
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // updates keep arriving
		defer wg.Done()
		users := []*spantest.User{}
		for i := 0; i < 60; i++ { // bounded: an unbounded stream makes each epoch larger and the test time superlinear under load
			select {
			case <-stop:
				return
			default:
			}
			var a storage.Append
			if i%3 == 2 {
				a = must[storage.Append](t)(users[i%len(users)].Update(realmName))
			} else {
				u := spantest.NewUser(fmt.Sprintf("overlap%d", i))
				users = append(users, u)
				a = must[storage.Append](t)(u.Register(realmName, r.Registrar))
			}
			if _, err := s.AppendUpdate(ctx, a, func(*storage.PendingUser) error { return nil }); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			appends++
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var runners sync.WaitGroup
	for _, holder := range []string{"left", "right"} {
		pub, _ := publisher(t)
		runner := &epoch.Runner{Store: s, Realm: r.Config, Rules: r.Rules, Signer: signer(t), Publisher: pub,
			Holder: holder, Now: now, LeaseTTL: 80 * time.Millisecond, MaxEpochs: 2}
		runners.Add(1)
		go func() {
			defer runners.Done()
			for range 15 {
				res, err := runner.Run(ctx)
				if err != nil {
					t.Errorf("%s: %v", holder, err)
					return
				}
				mu.Lock()
				made += len(res.Made)
				if res.Skipped {
					skipped++
				}
				mu.Unlock()
			}
		}()
	}
	runners.Wait()
	close(stop)
	wg.Wait()
	// A last, lone run takes in every update.
	pub, _ := publisher(t)
	final := &epoch.Runner{Store: s, Realm: r.Config, Rules: r.Rules, Signer: signer(t), Publisher: pub, Holder: "final", Now: now}
	if _, err := final.Run(ctx); err != nil {
		t.Fatal(err)
	}
	heads := verifyLog(t, s, r)
	newest := must[*storage.Epoch](t)(s.NewestEpoch(ctx))
	if waiting, _, err := s.WaitingSince(ctx, newest.Cut, 100000); err != nil || waiting != 0 {
		t.Fatalf("%d updates left after the final run (%v)", waiting, err)
	}
	if u := must[[]uint64](t)(s.Unpublished(ctx)); len(u) != 0 {
		t.Errorf("unpublished after the final run: %v", u)
	}
	t.Logf("%d epochs (%d made by the overlapping runners), %d updates, %d runs skipped or fenced",
		len(heads), made, appends, skipped)
	if made == 0 || len(heads) < 3 {
		t.Errorf("only %d epochs were made (%d by the overlapping runners)", len(heads), made)
	}
}
