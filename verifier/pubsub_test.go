package verifier

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"

	"cloud.google.com/go/pubsub/v2"

	"github.com/conifer-kt/conifer/emulators/pubsubemu"
)

func TestMain(m *testing.M) { pubsubemu.Main(m) }

// TestPubSub runs the verifier on the official Pub/Sub emulator: the
// keyserver publishes every epoch's chunks (ordering key = realm), some
// twice and one epoch not at all; the verifier receives them through the
// real pubsub/v2 client, backfills the missing epoch from the feed and
// sends every cosignature to a Ratify endpoint that verifies it with the
// checkpoint package.
func TestPubSub(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the Pub/Sub emulator")
	}
	ctx := context.Background()
	e := pubsubemu.ForTest(t)
	tt := pubsubemu.NewTestTopic(t)
	client, err := e.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	s := newHonest(t)
	scenario(s)
	for i := range 4 {
		s.cut(s.update(i, 500+i))
	}
	total := s.epochs()
	s.feedLimit = 1 // the verifier catches up to the genesis, then listens
	srv := httptest.NewServer(s)
	defer srv.Close()
	v := openTest(t, s, t.TempDir(), func(c *Config) {
		c.FeedURL, c.RatifyURL = srv.URL, srv.URL
		c.PollInterval = 1 << 40
	})

	runCtx, cancel := context.WithCancel(ctx)
	msgs := make(chan Message)
	recvDone := make(chan error, 1)
	go func() { recvDone <- ReceivePubSub(runCtx, client.Subscriber(tt.Subscription), msgs) }()
	runDone := make(chan error, 1)
	go func() { runDone <- v.Run(runCtx, msgs) }()
	s.waitRatified(t, 1)
	s.mu.Lock()
	s.feedLimit = -1
	s.mu.Unlock()

	pub := client.Publisher(tt.Topic)
	pub.EnableMessageOrdering = true
	var results []*pubsub.PublishResult
	publish := func(data []byte) {
		results = append(results, pub.Publish(ctx, &pubsub.Message{Data: data, OrderingKey: testRealm}))
	}
	for n := uint64(1); n < total; n++ {
		if n == 3 {
			continue // lost: the verifier must backfill it
		}
		cs := s.chunks(n, 250)
		// Parts out of order, the first one again at the end.
		for p := len(cs) - 1; p >= 0; p-- {
			publish(cs[p])
		}
		publish(cs[0])
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	pub.Stop()

	s.waitRatified(t, total)
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := <-recvDone; err != nil {
		t.Fatalf("ReceivePubSub: %v", err)
	}
	if v.Next() != total {
		t.Fatalf("Next = %d, want %d", v.Next(), total)
	}
	checkCosigned(t, v, s)
	// Ordered delivery: only the genesis and the lost epoch came from
	// the feed.
	if got := s.served(); !slices.Equal(got, []uint64{0, 3}) {
		t.Fatalf("the feed served epochs %v, want [0 3]", got)
	}
}
