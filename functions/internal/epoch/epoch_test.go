package epoch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/epoch"
	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
	"github.com/conifer-kt/conifer/functions/internal/storage"
)

// checkOrder checks durability before visibility in a trace: for each
// epoch, no signature before its tree nodes and leaf records were written
// (and its attempt recorded), no commit before its signature, no
// publication before its commit, no mark before a publication.
func checkOrder(t *testing.T, events []string) {
	t.Helper()
	first := func(ev string) int { return slices.Index(events, ev) }
	for i, ev := range events {
		if strings.HasSuffix(ev, "FAILED") {
			continue
		}
		var step string
		var n uint64
		if _, err := fmt.Sscanf(strings.NewReplacer("(", " ", ")", "").Replace(ev), "%s %d", &step, &n); err != nil {
			t.Fatalf("bad event %q", ev)
		}
		before := events[:i]
		has := func(s string) bool { return slices.Contains(before, fmt.Sprintf("%s(%d)", s, n)) }
		switch step {
		case "Sign":
			if !has("CreateAttempt") || n > 0 && !has("WriteLeafRecords") {
				t.Errorf("event %d: Sign(%d) before the epoch's attempt and leaf records: %v", i, n, events)
			}
			for j := i + 1; j < len(events); j++ {
				if events[j] == fmt.Sprintf("WriteNodes(%d)", n) || events[j] == fmt.Sprintf("WriteLeafRecords(%d)", n) {
					// Allowed only in a later attempt, after a failure.
					if !slices.ContainsFunc(events[i:j], func(e string) bool { return strings.HasSuffix(e, "FAILED") }) &&
						first(fmt.Sprintf("CommitEpoch(%d)", n)) < 0 {
						t.Errorf("event %d: %s after Sign(%d) in the same attempt", j, events[j], n)
					}
				}
			}
		case "CommitEpoch":
			if !has("Sign") {
				t.Errorf("event %d: CommitEpoch(%d) before any signature", i, n)
			}
		case "Publish":
			if !has("CommitEpoch") {
				t.Errorf("event %d: Publish(%d) before CommitEpoch(%d): %v", i, n, n, events)
			}
		case "MarkPublished":
			if !has("Publish") {
				t.Errorf("event %d: MarkPublished(%d) before Publish(%d)", i, n, n)
			}
		}
	}
}

func TestHappyPath(t *testing.T) {
	ctx := context.Background()
	r := testRealm(t, 1, 0)
	s := spantest.Store(t, r.Config)
	pub, topic := publisher(t)
	ps := spantest.PubSub(t)
	sub := must[string](t)(ps.CreateSubscription(ctx, spantest.Unique("happy"), topic, true))
	clk := newClock()
	tr := &tracer{}
	tp := &tracePublisher{Publisher: pub, tr: tr}
	runner := &epoch.Runner{Store: &traceStore{Store: s, tr: tr}, Realm: r.Config, Rules: r.Rules,
		Signer: &traceSigner{Ed25519Signer: signer(t), tr: tr}, Publisher: tp, Holder: "a", Now: clk.Now}
	run := func(wantMade ...uint64) epoch.Result {
		t.Helper()
		res, err := runner.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Made, wantMade) || res.Skipped {
			t.Fatalf("run at %v made %v (skipped %v), want %v", clk.Now(), res.Made, res.Skipped, wantMade)
		}
		return res
	}

	run(0) // genesis
	run()  // nothing waits, MaxEpochInterval not reached
	users := map[string]*spantest.User{}
	for _, n := range []string{"alice", "bob", "carol"} {
		users[n] = spantest.NewUser(n)
		appendAll(t, s, must[storage.Append](t)(users[n].Register(realmName, r.Registrar)))
	}
	dave := spantest.NewUser("dave")
	appendAll(t, s, must[storage.Append](t)(dave.Register(realmName, spantest.Key("not a registrar"))))
	clk.Add(500 * time.Millisecond)
	run() // updates wait, but MinEpochInterval has not passed
	clk.Add(time.Second)
	if res := run(1); res.Updates != 4 || res.Epoch != 1 || !slices.Equal(res.Published, []uint64{1}) {
		t.Fatalf("epoch 1 run = %+v", res)
	}
	appendAll(t, s,
		must[storage.Append](t)(users["alice"].Update(realmName)),
		must[storage.Append](t)(users["bob"].Tombstone(realmName)),
		must[storage.Append](t)(users["carol"].Forged(realmName)),
		must[storage.Append](t)(users["alice"].Update(realmName)))
	clk.Add(time.Second)
	run(2)
	clk.Add(30 * time.Second)
	run()
	clk.Add(31 * time.Second)
	if res := run(3); res.Updates != 0 { // MaxEpochInterval: an empty epoch
		t.Fatalf("epoch 3 run = %+v", res)
	}
	// Another holder's lease: skipped.
	tok := must[int64](t)(s.AcquireLease(ctx, storage.EpochLease, "someone else", time.Hour))
	clk.Add(2 * time.Minute)
	if res, err := runner.Run(ctx); err != nil || !res.Skipped || len(res.Made) != 0 {
		t.Fatalf("run under another holder's lease = %+v, %v", res, err)
	}
	if err := s.ReleaseLease(ctx, storage.EpochLease, tok); err != nil {
		t.Fatal(err)
	}

	heads := verifyLog(t, s, r)
	if len(heads) != 4 {
		t.Fatalf("%d epochs, want 4", len(heads))
	}
	e2 := must[*storage.Epoch](t)(s.GetEpoch(ctx, 2))
	if h := must[*format.EpochHead](t)(format.ParseEpochHead(e2.Head)); h.UpdateCount != 4 {
		t.Fatalf("epoch 2 head = %+v", h)
	}
	// Consistency between every pair of sizes.
	roots := map[uint64][32]byte{}
	for n := uint64(0); n < 4; n++ {
		roots[n+1] = must[*checkpoint.Verified](t)(checkpoint.Open(must[*storage.Epoch](t)(s.GetEpoch(ctx, n)).Checkpoint,
			realmName, must[*checkpoint.LogSigner](t)(checkpoint.NewLogSigner(realmName, signer(t))).Verifier(), nil, 0)).Checkpoint.Hash
	}
	for a := uint64(1); a <= 4; a++ {
		for b := a; b <= 4; b++ {
			p := must[[][32]byte](t)(checkpoint.ConsistencyProof(a, b, s.LogHashes()))
			if err := checkpoint.VerifyConsistency(a, b, p, roots[a], roots[b]); err != nil {
				t.Errorf("consistency %d → %d: %v", a, b, err)
			}
		}
	}
	// Bob's profile is erased, alice has three versions.
	if st := must[*storage.UserState](t)(s.User(ctx, 3, users["bob"].Index)); st.Profile != nil || len(st.Records) != 2 {
		t.Errorf("bob = %+v", st)
	}
	if st := must[*storage.UserState](t)(s.User(ctx, 3, users["alice"].Index)); len(st.Records) != 3 || !bytes.Equal(st.Profile, users["alice"].Profile(3)) {
		t.Errorf("alice = %+v", st)
	}
	checkOrder(t, tr.Events())
	if u := must[[]uint64](t)(s.Unpublished(ctx)); len(u) != 0 {
		t.Errorf("unpublished = %v", u)
	}

	// A verifier's subscription receives every bundle, in order.
	client := must[*pubsub.Client](t)(pubsub.NewClient(ctx, ps.Project, ps.ClientOptions()...))
	defer client.Close()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []*format.Bundle
	err := client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		c, err := format.ParseBundleChunk(m.Data)
		if err != nil {
			t.Errorf("bad chunk: %v", err)
			return
		}
		b, err := format.JoinBundle([]format.BundleChunk{*c})
		if err != nil {
			t.Errorf("bad bundle: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, b)
		if len(got) == 4 {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("received %d bundles, want 4", len(got))
	}
	for i, b := range got {
		if !bytes.Equal(b.Head, heads[i]) {
			t.Errorf("bundle %d carries the head of another epoch", i)
		}
		if n := len(b.Records); n != []int{0, 4, 4, 0}[i] {
			t.Errorf("bundle %d has %d records", i, n)
		}
	}
}

func TestHTTP(t *testing.T) {
	r := testRealm(t, 0, 0)
	s := spantest.Store(t, r.Config)
	pub, _ := publisher(t)
	clk := newClock()
	runner := &epoch.Runner{Store: s, Realm: r.Config, Rules: r.Rules, Signer: signer(t), Publisher: pub, Holder: "http", Now: clk.Now}
	srv := httptest.NewServer(runner)
	defer srv.Close()

	req := must[*http.Request](t)(http.NewRequest(http.MethodPost, srv.URL, nil))
	req.Header.Set("X-CloudScheduler-ScheduleTime", "2026-11-25T12:00:00Z")
	resp := must[*http.Response](t)(http.DefaultClient.Do(req))
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || got["epoch"] != 0.0 || got["updates"] != 0.0 || got["skipped"] != false || len(got) != 3 {
		t.Fatalf("POST = %d %v", resp.StatusCode, got)
	}
	u := spantest.NewUser("zoe")
	appendAll(t, s, must[storage.Append](t)(u.Register(realmName, r.Registrar)))
	clk.Add(2 * time.Second)
	resp = must[*http.Response](t)(http.Get(srv.URL))
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || got["epoch"] != 1.0 || got["updates"] != 1.0 {
		t.Fatalf("GET = %d %v", resp.StatusCode, got)
	}
	req = must[*http.Request](t)(http.NewRequest(http.MethodPut, srv.URL, nil))
	resp = must[*http.Response](t)(http.DefaultClient.Do(req))
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PUT = %d", resp.StatusCode)
	}

	// The CloudEvent entry point.
	e := event.New()
	e.SetID("1")
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetSource("//pubsub.googleapis.com/projects/p/topics/t")
	clk.Add(2 * time.Minute)
	if err := runner.HandleCloudEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if e := must[*storage.Epoch](t)(s.NewestEpoch(context.Background())); e.Epoch != 2 {
		t.Fatalf("newest epoch after the event = %d", e.Epoch)
	}

	// A runner whose key is not the realm's log key refuses to run: 500.
	other := testRealm(t, 0, 0)
	other.Config.LogKey = must[*checkpoint.LogSigner](t)(spantest.LogSigner(realmName)).VerifierKey()
	bad := &epoch.Runner{Store: s, Realm: other.Config, Rules: r.Rules, Signer: signer(t), Publisher: pub, Holder: "bad"}
	rec := httptest.NewRecorder()
	bad.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "log key") {
		t.Fatalf("misconfigured runner = %d %s", rec.Code, rec.Body)
	}
	if err := bad.HandleCloudEvent(context.Background(), e); err == nil {
		t.Fatal("misconfigured runner handled an event")
	}
	for _, cfg := range []*epoch.Runner{
		{Store: s, Realm: r.Config, Rules: r.Rules, Signer: signer(t), Publisher: pub},                                 // no holder
		{Store: s, Realm: r.Config, Signer: signer(t), Publisher: pub, Holder: "x"},                                    // rules of no realm
		{Store: s, Realm: r.Config, Rules: r.Rules, Signer: signer(t), Publisher: pub, Holder: "x", MaxUpdates: 20000}, // too big epochs
	} {
		if _, err := cfg.Run(context.Background()); err == nil {
			t.Errorf("runner %+v ran", cfg)
		}
	}
}
