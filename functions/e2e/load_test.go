package e2e

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/spanner"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/functions/internal/config"
	"github.com/conifer-kt/conifer/functions/internal/epoch"
	"github.com/conifer-kt/conifer/functions/internal/handlers"
	"github.com/conifer-kt/conifer/functions/internal/publish"
	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/statemachine"
)

var load = flag.Bool("load", false, "run TestLoad: throughput and latency with 32 concurrent clients against the emulators")

const loadClients = 32

// loadStack is the handlers served directly (not through package
// functions) over a store whose round trips are counted.
type loadStack struct {
	rc      *realm.Config
	runner  *epoch.Runner
	keys    *keys
	store   *spanstore.Store
	counted *countingStore
	rpcs    *rpcCounter
	srv     *handlers.Server
	ts      *httptest.Server
	log     *checkpoint.LogSigner
}

func newLoadStack(t *testing.T) *loadStack {
	const name = "load.example/conifer"
	k := newKeys(t, name, 1)
	ks, err := checkpoint.NewKeySigner(key(name + "/log"))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := checkpoint.NewLogSigner(name, ks)
	if err != nil {
		t.Fatal(err)
	}
	rc := k.realmConfig(name, ls.VerifierKey(), 0, nil)
	rpcs := newRPCCounter()
	db := spantest.NewDatabase(t)
	st, err := spanstore.Open(context.Background(), spanstore.Options{
		Database:      db,
		ClientOptions: append(spantest.Spanner(t).ClientOptions(), rpcs.options()...),
		Emulator:      true,
		Realm:         rc,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	cs := &countingStore{Store: st}
	l := config.DefaultLimits()
	l.UpdateBurst, l.LookupBurst, l.LookupRate, l.MaxConcurrent = 1000, 1_000_000, 1e6, 1000
	srv, err := handlers.New(handlers.Options{Store: cs, Realm: rc, VRF: k.vrf, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	rules, err := statemachine.RulesFromRealm(rc)
	if err != nil {
		t.Fatal(err)
	}
	ps := spantest.PubSub(t)
	topic, err := ps.CreateTopic(context.Background(), spantest.Unique("load-epochs"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := publish.New(context.Background(), publish.Options{Topic: topic, Realm: rc.Realm, ClientOptions: ps.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	runner := &epoch.Runner{Store: st, Realm: rc, Rules: rules, Signer: ks, Publisher: pub,
		Holder: "load", LeaseTTL: time.Minute, Now: time.Now}
	return &loadStack{rc: rc, runner: runner, keys: k, store: st, counted: cs, rpcs: rpcs, srv: srv, ts: ts, log: ls}
}

// runEpochs runs the epoch function until no epoch is due.
func (s *loadStack) runEpochs(ctx context.Context, t *testing.T) {
	for range 10 {
		res, err := s.runner.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("epoch run: %+v", res)
	}
}

// serialRW measures the emulator's rate of serial one-row read-write
// transactions (read a row, write it), the floor an update is compared to.
func serialRW(t *testing.T, c *spanner.Client, n int) float64 {
	ctx := context.Background()
	start := time.Now()
	for i := range n {
		_, err := c.ReadWriteTransaction(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
			key := spanner.Key{fmt.Sprintf("bench-%d", i%64)}
			if _, err := tx.ReadRow(ctx, "Leases", key, []string{"Token"}); err != nil && spanner.ErrCode(err) != 5 {
				return err
			}
			return tx.BufferWrite([]*spanner.Mutation{spanner.InsertOrUpdate("Leases",
				[]string{"Name", "Holder", "Token", "ExpiresAt", "RenewedAt"},
				[]any{key[0], "bench", int64(i + 1), time.Now(), spanner.CommitTimestamp})})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// runConcurrent sends reqs[i] from client i%loadClients, loadClients at a
// time, and returns the rate and latencies.
func runConcurrent(t *testing.T, n int, do func(i int) error) (rate float64, p50, p99 time.Duration) {
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	errs := make(chan error, loadClients)
	start := time.Now()
	for c := range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += loadClients {
				t0 := time.Now()
				if err := do(i); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(lat)
	return float64(n) / el.Seconds(), lat[n/2], lat[n*99/100]
}

func TestLoad(t *testing.T) {
	if !*load {
		t.Skip("run with -load")
	}
	s := newLoadStack(t)
	const users = 1600
	realmName := "load.example/conifer"
	rcfg := s.rc
	us := make([]*user, users)
	regs := make([]*pending, users)
	for i := range us {
		us[i] = newUser(rcfg, s.keys.vrf, fmt.Sprintf("user%d@load.example", i))
		regs[i] = us[i].next(t, realmName, false).withRegistrar(s.keys.registrar)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: loadClients}}
	cl := &httpClient{t: t, base: s.ts.URL, hc: hc}
	ctx := context.Background()
	post := func(p *pending) error {
		r := cl.callNoFatal(ctx, "POST", "/Update", p.req)
		if r.status != 200 {
			return fmt.Errorf("update: %d %+v %s", r.status, r.err, r.fault)
		}
		return nil
	}

	floor := serialRW(t, s.store.Client(), 2000)
	regRate, regP50, regP99 := runConcurrent(t, users, func(i int) error { return post(regs[i]) })
	for i := range us {
		us[i].applied(regs[i])
	}
	ups := make([]*pending, users)
	for i := range us {
		ups[i] = us[i].next(t, realmName, false)
	}
	upRate, upP50, upP99 := runConcurrent(t, users, func(i int) error { return post(ups[i]) })
	floor2 := serialRW(t, s.store.Client(), 2000)

	// One epoch with all of it, then lookups of random users.
	s.runEpochs(ctx, t)
	for i := range 5 {
		t0 := time.Now()
		if _, err := s.store.User(ctx, 1, us[i].index); err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if _, err := s.counted.LatestEpoch(ctx, nil, 0); err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		r := cl.call(ctx, "GET", "/Lookup?user="+urlQuery(us[i].id), nil)
		t.Logf("User %v, LatestEpoch %v, lookup %v (%d)", t1.Sub(t0), t2.Sub(t1), time.Since(t2), r.status)
	}
	const lookups = 3200
	before, calls0 := s.rpcs.snapshot(), s.counted.calls.Load()
	lkRate, lkP50, lkP99 := runConcurrent(t, lookups, func(i int) error {
		u := us[(i*7919)%users]
		r := cl.callNoFatal(ctx, "GET", "/Lookup?user="+urlQuery(u.id), nil)
		if r.status != 200 {
			return fmt.Errorf("lookup: %d %+v %s", r.status, r.err, r.fault)
		}
		return nil
	})
	after, calls1 := s.rpcs.snapshot(), s.counted.calls.Load()
	// One verified answer, to be sure the lookups were real.
	var p api.LookupProof
	cl.ok(ctx, "GET", "/Lookup?user="+urlQuery(us[0].id), nil, &p)
	if v, err := verifyLookup(rcfg, us[0].id, &p, 0); err != nil || !v.present || v.entry.Version != 2 {
		t.Fatalf("lookup after the load: %v", err)
	}
	perLookupRPC := float64(reads(before, after)) / lookups
	perLookupCalls := float64(calls1-calls0) / lookups

	t.Logf("emulator serial 1-row RW transactions: %.0f/s before, %.0f/s after", floor, floor2)
	t.Logf("registrations (%d clients, %d): %.0f/s (%.0f%% of serial RW), p50 %v, p99 %v", loadClients, users, regRate, 100*regRate/floor, regP50, regP99)
	t.Logf("updates       (%d clients, %d): %.0f/s (%.0f%% of serial RW), p50 %v, p99 %v", loadClients, users, upRate, 100*upRate/floor, upP50, upP99)
	t.Logf("lookups       (%d clients, %d): %.0f/s, p50 %v, p99 %v", loadClients, lookups, lkRate, lkP50, lkP99)
	t.Logf("database reads per lookup: %.2f Spanner read RPCs, %.2f store calls", perLookupRPC, perLookupCalls)
	if perLookupRPC > 3 || perLookupCalls > 3 {
		t.Errorf("a lookup costs more than 3 round trips")
	}
}
