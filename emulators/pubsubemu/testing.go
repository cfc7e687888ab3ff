package pubsubemu

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// shared is the one emulator of this test binary.
var shared struct {
	mu      sync.Mutex
	started bool // Start was attempted
	stopped bool // Main has stopped it
	emu     *Emulator
	err     error
}

// topicCounter numbers the topics NewTestTopic creates.
var topicCounter atomic.Int64

// Main runs the tests, then stops the shared emulator (if one was started)
// and exits. Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { pubsubemu.Main(m) }
//
// If the test binary dies before Main returns (a panic, a timeout, a
// signal), the kernel kills the emulator (Pdeathsig).
func Main(m *testing.M) {
	code := m.Run()
	if err := stopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "pubsubemu:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func stopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.stopped = true
	if shared.emu == nil {
		return nil
	}
	err := shared.emu.Stop()
	shared.emu = nil
	return err
}

// ForTest returns the test binary's shared emulator, starting it on first
// use. A start failure (for example a missing package: the message says
// which to apt-get install) fails the test; later calls fail the same way
// without retrying.
func ForTest(t testing.TB) *Emulator {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.stopped {
		t.Fatal("pubsubemu: ForTest called after Main stopped the shared emulator")
	}
	if !shared.started {
		shared.started = true
		shared.emu, shared.err = Start(context.Background())
	}
	if shared.err != nil {
		t.Fatalf("pubsubemu: %v", shared.err)
	}
	return shared.emu
}

// TestTopic is a topic with one subscription, made for one test.
type TestTopic struct {
	// Topic is the full topic name, "projects/P/topics/ID".
	Topic string
	// Subscription is the full name of a pull subscription on Topic with
	// message ordering enabled, "projects/P/subscriptions/ID".
	Subscription string
}

// NewTestTopic creates, in the shared emulator, a topic and an ordered
// subscription on it with names unique in the test binary, deletes both
// when the test ends, and returns their names. Publish with
// client.Publisher(tt.Topic) (set EnableMessageOrdering for ordering keys)
// and receive with client.Subscriber(tt.Subscription).
func NewTestTopic(t testing.TB) TestTopic {
	t.Helper()
	e := ForTest(t)
	// Ids are 3–255 characters starting with a letter.
	n := strconv.FormatInt(topicCounter.Add(1), 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic, err := e.CreateTopic(ctx, "test-topic-"+n)
	if err != nil {
		t.Fatalf("pubsubemu: %v", err)
	}
	t.Cleanup(func() {
		if err := e.DeleteTopic(context.Background(), topic); err != nil {
			t.Errorf("pubsubemu: %v", err)
		}
	})
	sub, err := e.CreateSubscription(ctx, "test-sub-"+n, topic, true)
	if err != nil {
		t.Fatalf("pubsubemu: %v", err)
	}
	t.Cleanup(func() {
		if err := e.DeleteSubscription(context.Background(), sub); err != nil {
			t.Errorf("pubsubemu: %v", err)
		}
	})
	return TestTopic{Topic: topic, Subscription: sub}
}
