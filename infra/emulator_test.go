package infra_test

import (
	"context"
	"testing"

	"cloud.google.com/go/spanner"

	"github.com/conifer-kt/conifer/emulators/spanneremu"
)

// TestMain runs the package's tests and stops the shared Spanner emulator.
func TestMain(m *testing.M) { spanneremu.Main(m) }

// newTestClient creates a fresh emulator database with ddl applied and
// returns a real Spanner client for it, closed at the end of the test.
func newTestClient(t *testing.T, ddl []string) *spanner.Client {
	t.Helper()
	db := spanneremu.NewTestDatabase(t, ddl)
	c, err := spanneremu.ForTest(t).NewClient(context.Background(), db)
	if err != nil {
		t.Fatalf("couldn't create Spanner client: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}
