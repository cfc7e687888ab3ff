// Package spantest is the test environment of Conifer's server-side
// adapters (spanstore, epoch): the official Spanner and Pub/Sub emulators
// and the KMS emulator, started once per test binary on first use and
// stopped by Main, plus fixtures that build real realm configs, keys and
// signed updates.
//
// Use it as the test binary's TestMain:
//
//	func TestMain(m *testing.M) { spantest.Main(m) }
//
// then spantest.Store(t, realmConfig) for a store on a fresh database,
// spantest.PubSub(t) and spantest.KMS(t) for the other emulators.
package spantest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/emulators/kmsemu"
	"github.com/conifer-kt/conifer/emulators/pubsubemu"
	"github.com/conifer-kt/conifer/emulators/spanneremu"
	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/infra"
	"github.com/conifer-kt/conifer/realm"
)

var env struct {
	mu      sync.Mutex
	stopped bool

	spanner    *spanneremu.Emulator
	spannerErr error
	spannerTry bool

	pubsub    *pubsubemu.Emulator
	pubsubErr error
	pubsubTry bool

	kms    *kmsemu.Server
	kmsErr error
	kmsTry bool
}

var counter atomic.Int64

// Main runs the tests, then stops every emulator a test started, and exits.
func Main(m *testing.M) {
	code := m.Run()
	env.mu.Lock()
	env.stopped = true
	var errs []string
	if env.spanner != nil {
		if err := env.spanner.Stop(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if env.pubsub != nil {
		if err := env.pubsub.Stop(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if env.kms != nil {
		if err := env.kms.Close(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	env.mu.Unlock()
	if len(errs) > 0 {
		fmt.Fprintln(os.Stderr, "spantest:", strings.Join(errs, "; "))
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Spanner returns the binary's Spanner emulator, starting it on first use.
func Spanner(t testing.TB) *spanneremu.Emulator {
	t.Helper()
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.stopped {
		t.Fatal("spantest: used after Main")
	}
	if !env.spannerTry {
		env.spannerTry = true
		env.spanner, env.spannerErr = spanneremu.Start(context.Background())
	}
	if env.spannerErr != nil {
		t.Fatalf("spantest: %v", env.spannerErr)
	}
	return env.spanner
}

// PubSub returns the binary's Pub/Sub emulator, starting it on first use.
func PubSub(t testing.TB) *pubsubemu.Emulator {
	t.Helper()
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.stopped {
		t.Fatal("spantest: used after Main")
	}
	if !env.pubsubTry {
		env.pubsubTry = true
		env.pubsub, env.pubsubErr = pubsubemu.Start(context.Background())
	}
	if env.pubsubErr != nil {
		t.Fatalf("spantest: %v", env.pubsubErr)
	}
	return env.pubsub
}

// KMS returns the binary's KMS emulator, starting it on first use.
func KMS(t testing.TB) *kmsemu.Server {
	t.Helper()
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.stopped {
		t.Fatal("spantest: used after Main")
	}
	if !env.kmsTry {
		env.kmsTry = true
		env.kms, env.kmsErr = kmsemu.Start(context.Background(), kmsemu.Options{})
	}
	if env.kmsErr != nil {
		t.Fatalf("spantest: %v", env.kmsErr)
	}
	return env.kms
}

// Unique returns a name unique in the test binary: prefix-N.
func Unique(prefix string) string {
	return prefix + strconv.FormatInt(counter.Add(1), 10)
}

// NewDatabase creates a database with Conifer's schema in the Spanner
// emulator, dropped when the test ends, and returns its path.
func NewDatabase(t testing.TB) string {
	t.Helper()
	e := Spanner(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := e.CreateDatabase(ctx, Unique("db"), infra.SchemaDDL())
	if err != nil {
		t.Fatalf("spantest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.DropDatabase(ctx, db); err != nil {
			t.Errorf("spantest: %v", err)
		}
	})
	return db
}

// Open opens a store (emulator mode) on the database db, closed when the
// test ends.
func Open(t testing.TB, db string, rc *realm.Config) *spanstore.Store {
	t.Helper()
	s, err := spanstore.Open(context.Background(), spanstore.Options{
		Database:      db,
		ClientOptions: Spanner(t).ClientOptions(),
		Emulator:      true,
		Realm:         rc,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Store opens a store on a fresh database.
func Store(t testing.TB, rc *realm.Config) *spanstore.Store {
	t.Helper()
	return Open(t, NewDatabase(t), rc)
}
