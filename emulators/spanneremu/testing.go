package spanneremu

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
)

// shared is the one emulator of this test binary.
var shared struct {
	mu      sync.Mutex
	started bool // Start was attempted
	stopped bool // Main has stopped it
	emu     *Emulator
	err     error
}

// dbCounter numbers the databases NewTestDatabase creates.
var dbCounter atomic.Int64

// Main runs the tests, then stops the shared emulator (if one was started)
// and exits. Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { spanneremu.Main(m) }
//
// If the test binary dies before Main returns (a panic, a timeout, a
// signal), the kernel kills the emulator (Pdeathsig).
func Main(m *testing.M) {
	code := m.Run()
	if err := stopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "spanneremu:", err)
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
		t.Fatal("spanneremu: ForTest called after Main stopped the shared emulator")
	}
	if !shared.started {
		shared.started = true
		shared.emu, shared.err = Start(context.Background())
	}
	if shared.err != nil {
		t.Fatalf("spanneremu: %v", shared.err)
	}
	return shared.emu
}

// NewTestDatabase creates a database with a name unique in the test binary
// in the shared emulator, applies ddl, drops it when the test ends, and
// returns its path "projects/P/instances/I/databases/D".
func NewTestDatabase(t testing.TB, ddl []string) (dbPath string) {
	t.Helper()
	e := ForTest(t)
	name := testDatabaseName(t.Name(), dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := e.CreateDatabase(ctx, name, ddl)
	if err != nil {
		t.Fatalf("spanneremu: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.DropDatabase(ctx, db); err != nil {
			t.Errorf("spanneremu: %v", err)
		}
	})
	return db
}

// maxDatabaseID is Spanner's limit on a database id's length.
const maxDatabaseID = 30

// testDatabaseName derives a valid database id ([a-z][a-z0-9_-]*[a-z0-9],
// 2–30 characters) from a sequence number (the unique part) and the test
// name (for whoever reads the emulator's logs).
func testDatabaseName(testName string, n int64) string {
	var b strings.Builder
	b.WriteString("t")
	b.WriteString(strconv.FormatInt(n, 10))
	b.WriteByte('-')
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= maxDatabaseID {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return strings.TrimRight(b.String(), "_-")
}
