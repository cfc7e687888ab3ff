package spanneremu

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/spanner"
	"cloud.google.com/go/spanner/admin/database/apiv1/databasepb"
	"google.golang.org/api/iterator"

	"github.com/conifer-kt/conifer/emulators/internal/launch"
)

func TestMain(m *testing.M) { Main(m) }

// smallDDL has a commit-timestamp column, the feature the log relies on.
var smallDDL = []string{
	`CREATE TABLE Entries (
		Id STRING(64) NOT NULL,
		Body BYTES(MAX),
		Committed TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
	) PRIMARY KEY (Id)`,
}

// TestStartStop starts a private emulator, checks it answers, stops it and
// checks that no process of its group remains.
func TestStartStop(t *testing.T) {
	ctx := context.Background()
	e, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := e.Pid()
	if !strings.HasPrefix(e.Host, "127.0.0.1:") || e.Host == "127.0.0.1:0" {
		t.Errorf("Host = %q, want 127.0.0.1:PORT", e.Host)
	}
	if e.InstancePath() != "projects/conifer-test/instances/test" {
		t.Errorf("InstancePath() = %q", e.InstancePath())
	}
	if got := e.Env(); len(got) != 1 || got[0] != "SPANNER_EMULATOR_HOST="+e.Host {
		t.Errorf("Env() = %q", got)
	}
	members, err := launch.GroupMembers(pid)
	if err != nil || len(members) == 0 {
		t.Fatalf("GroupMembers(%d) = %v, %v; want the running emulator", pid, members, err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pid)
	if err := e.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// assertGone checks that neither the process pid nor any live member of its
// group remains.
func assertGone(t *testing.T, pid int) {
	t.Helper()
	if members, err := launch.GroupMembers(pid); err != nil || len(members) != 0 {
		t.Errorf("after Stop, group %d has live members %v (err %v)", pid, members, err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("after Stop, kill(%d, 0) = %v, want ESRCH", pid, err)
	}
}

// TestTwoDatabases writes and reads through the real Spanner client in two
// databases of the shared emulator, with a commit-timestamp column, and
// checks the databases are separate.
func TestTwoDatabases(t *testing.T) {
	ctx := context.Background()
	e := ForTest(t)
	db1 := NewTestDatabase(t, smallDDL)
	db2 := NewTestDatabase(t, smallDDL)
	if db1 == db2 {
		t.Fatalf("NewTestDatabase returned %q twice", db1)
	}
	for i, db := range []string{db1, db2} {
		if !strings.HasPrefix(db, e.InstancePath()+"/databases/") {
			t.Errorf("database path %q is not in %s", db, e.InstancePath())
		}
		c, err := e.NewClient(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		before := time.Now().Add(-time.Minute)
		id := fmt.Sprintf("row-of-db%d", i+1)
		ts, err := c.Apply(ctx, []*spanner.Mutation{
			spanner.Insert("Entries", []string{"Id", "Body", "Committed"},
				[]any{id, []byte(db), spanner.CommitTimestamp}),
		})
		if err != nil {
			t.Fatalf("Apply in %s: %v", db, err)
		}
		if ts.Before(before) {
			t.Errorf("commit timestamp %v is implausibly old", ts)
		}
		iter := c.Single().Query(ctx, spanner.Statement{SQL: "SELECT Id, Body, Committed FROM Entries ORDER BY Id"})
		var rows []string
		err = iter.Do(func(r *spanner.Row) error {
			var gotID string
			var body []byte
			var committed time.Time
			if err := r.Columns(&gotID, &body, &committed); err != nil {
				return err
			}
			if string(body) != db {
				t.Errorf("row %s has body %q, want %q", gotID, body, db)
			}
			if !committed.Equal(ts) {
				t.Errorf("row %s committed at %v, want the commit timestamp %v", gotID, committed, ts)
			}
			rows = append(rows, gotID)
			return nil
		})
		if err != nil {
			t.Fatalf("query in %s: %v", db, err)
		}
		if len(rows) != 1 || rows[0] != id {
			t.Errorf("rows in %s = %q, want only %q", db, rows, id)
		}
	}
}

// TestDatabaseDroppedAtCleanup checks NewTestDatabase's cleanup drops the
// database.
func TestDatabaseDroppedAtCleanup(t *testing.T) {
	ctx := context.Background()
	e := ForTest(t)
	var db string
	t.Run("inner", func(t *testing.T) { db = NewTestDatabase(t, smallDDL) })
	admin, err := e.DatabaseAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	it := admin.ListDatabases(ctx, &databasepb.ListDatabasesRequest{Parent: e.InstancePath()})
	for {
		d, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d.GetName() == db {
			t.Errorf("database %s still exists after its test ended", db)
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
	if !strings.Contains(err.Error(), "apt-get install google-cloud-cli-spanner-emulator") {
		t.Errorf("error %q does not name the package to install", err)
	}
}

var databaseIDRE = regexp.MustCompile(`^[a-z][a-z0-9_\-]*[a-z0-9]$`)

func TestTestDatabaseName(t *testing.T) {
	names := []string{"", "T", "TestX", "TestFoo/sub_case#01", "Test/", "Test-_-", strings.Repeat("Z", 100), "Тест", "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p"}
	for _, n := range []int64{1, 9, 10, 12345, 1 << 62} {
		for _, name := range names {
			got := testDatabaseName(name, n)
			if len(got) < 2 || len(got) > maxDatabaseID || !databaseIDRE.MatchString(got) {
				t.Errorf("testDatabaseName(%q, %d) = %q: not a valid database id", name, n, got)
			}
			if !strings.HasPrefix(got, fmt.Sprintf("t%d", n)) {
				t.Errorf("testDatabaseName(%q, %d) = %q: lost the sequence number", name, n, got)
			}
		}
	}
}

// tenTableDDL is a 10-table schema for the database-creation benchmark.
func tenTableDDL() []string {
	var ddl []string
	for i := range 10 {
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE T%d (
			K BYTES(32) NOT NULL,
			Epoch INT64 NOT NULL,
			V BYTES(MAX),
			Ts TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
		) PRIMARY KEY (K, Epoch DESC)`, i))
	}
	return ddl
}

// BenchmarkStart measures start-to-ready of a fresh emulator (including the
// instance creation) and its stop, after the once-per-process gcloud lookup.
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

// BenchmarkCreateDatabase10Tables measures per-test database creation with
// a 10-table DDL in the shared emulator; ns/op includes the drop at the
// test's end, create-ms/op is the creation alone.
func BenchmarkCreateDatabase10Tables(b *testing.B) {
	ddl := tenTableDDL()
	e := ForTest(b)
	ctx := context.Background()
	var create time.Duration
	for b.Loop() {
		t0 := time.Now()
		db, err := e.CreateDatabase(ctx, testDatabaseName(b.Name(), dbCounter.Add(1)), ddl)
		if err != nil {
			b.Fatal(err)
		}
		create += time.Since(t0)
		if err := e.DropDatabase(ctx, db); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(create.Microseconds())/1000/float64(b.N), "create-ms/op")
}
