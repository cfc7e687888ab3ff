package e2e

import (
	"testing"

	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
)

// TestMain starts the emulators on first use (spantest) and stops them
// when the tests are done.
func TestMain(m *testing.M) { spantest.Main(m) }
