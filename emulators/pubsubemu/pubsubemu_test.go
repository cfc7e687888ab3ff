package pubsubemu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/conifer-kt/conifer/emulators/internal/launch"
)

func TestMain(m *testing.M) { Main(m) }

// TestStartStop starts a private emulator, checks it answers, stops it and
// checks that no process of its group (the JVM) remains.
func TestStartStop(t *testing.T) {
	e, err := Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid := e.Pid()
	if !strings.HasPrefix(e.Host, "127.0.0.1:") {
		t.Errorf("Host = %q", e.Host)
	}
	if got := e.Env(); len(got) != 1 || got[0] != "PUBSUB_EMULATOR_HOST="+e.Host {
		t.Errorf("Env() = %q", got)
	}
	if members, err := launch.GroupMembers(pid); err != nil || len(members) == 0 {
		t.Fatalf("GroupMembers(%d) = %v, %v; want the running emulator", pid, members, err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if members, err := launch.GroupMembers(pid); err != nil || len(members) != 0 {
		t.Errorf("after Stop, group %d has live members %v (err %v)", pid, members, err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("after Stop, kill(%d, 0) = %v, want ESRCH", pid, err)
	}
}

// TestOrderedDelivery publishes interleaved ordering keys through the real
// pubsub/v2 client and checks that each key's messages arrive in order.
func TestOrderedDelivery(t *testing.T) {
	ctx := context.Background()
	e := ForTest(t)
	tt := NewTestTopic(t)
	client, err := e.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	const keys, perKey = 3, 50
	pub := client.Publisher(tt.Topic)
	pub.EnableMessageOrdering = true
	var results []*pubsub.PublishResult
	for i := range perKey {
		for k := range keys {
			results = append(results, pub.Publish(ctx, &pubsub.Message{
				Data:        []byte(fmt.Sprintf("%d", i)),
				OrderingKey: fmt.Sprintf("key-%d", k),
			}))
		}
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	pub.Stop()

	var mu sync.Mutex
	got := map[string][]string{}
	total := 0
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = client.Subscriber(tt.Subscription).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		mu.Lock()
		defer mu.Unlock()
		got[m.OrderingKey] = append(got[m.OrderingKey], string(m.Data))
		total++
		m.Ack()
		if total == keys*perKey {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != keys*perKey {
		t.Fatalf("received %d messages, want %d", total, keys*perKey)
	}
	for k := range keys {
		key := fmt.Sprintf("key-%d", k)
		for i, data := range got[key] {
			if data != fmt.Sprintf("%d", i) {
				t.Fatalf("key %s: message %d is %q: out of order (%q)", key, i, data, got[key])
			}
		}
	}
}

// TestTopicsAreSeparate checks two test topics don't see each other's
// messages.
func TestTopicsAreSeparate(t *testing.T) {
	ctx := context.Background()
	e := ForTest(t)
	a, b := NewTestTopic(t), NewTestTopic(t)
	if a.Topic == b.Topic || a.Subscription == b.Subscription {
		t.Fatalf("NewTestTopic returned the same names twice: %+v %+v", a, b)
	}
	client, err := e.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, tt := range []TestTopic{a, b} {
		p := client.Publisher(tt.Topic)
		if _, err := p.Publish(ctx, &pubsub.Message{Data: []byte(tt.Topic)}).Get(ctx); err != nil {
			t.Fatal(err)
		}
		p.Stop()
	}
	for _, tt := range []TestTopic{a, b} {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var data []string
		err := client.Subscriber(tt.Subscription).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			data = append(data, string(m.Data))
			m.Ack()
			cancel()
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 1 || data[0] != tt.Topic {
			t.Errorf("subscription %s received %q, want only %q", tt.Subscription, data, tt.Topic)
		}
	}
}

// TestMissingBinary points the SDK root at an empty directory: Start must
// fail with ErrNotInstalled and name the Debian package.
func TestMissingBinary(t *testing.T) {
	t.Setenv(launch.SDKRootEnv, t.TempDir())
	_, err := Start(context.Background())
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start with an empty SDK root: err = %v, want ErrNotInstalled", err)
	}
	if !strings.Contains(err.Error(), "apt-get install google-cloud-cli-pubsub-emulator") {
		t.Errorf("error %q does not name the package to install", err)
	}
}

// TestMissingJava: with the emulator present but no java, Start names the
// Java package.
func TestMissingJava(t *testing.T) {
	root, err := launch.SDKRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(launch.SDKRootEnv, root)
	t.Setenv("JAVA_HOME", "")
	t.Setenv("PATH", t.TempDir())
	_, err = Start(context.Background())
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install default-jre-headless") {
		t.Errorf("Start without java: %v, want ErrNotInstalled naming default-jre-headless", err)
	}
}

// BenchmarkStart measures start-to-ready of a fresh emulator and its stop,
// after the once-per-process gcloud lookup.
func BenchmarkStart(b *testing.B) {
	// The gcloud lookup happens once per process; keep it out of the loop.
	if _, err := launch.SDKRoot(); err != nil {
		b.Fatal(err)
	}
	var ready, stop time.Duration
	for b.Loop() {
		t0 := time.Now()
		e, err := Start(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := e.Stop(); err != nil {
			b.Fatal(err)
		}
		ready += t1.Sub(t0)
		stop += time.Since(t1)
	}
	b.ReportMetric(float64(ready.Milliseconds())/float64(b.N), "ms-to-ready/op")
	b.ReportMetric(float64(stop.Milliseconds())/float64(b.N), "ms-to-stop/op")
}
