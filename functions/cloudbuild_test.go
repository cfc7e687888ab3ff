package functions

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/conifer-kt/conifer/functions/internal/config"
)

// TestCloudBuildEntryPointsExist checks that every entry point
// cloudbuild.yaml deploys is one this package registers (init registers
// every config.Targets name), and that every HTTP entry point is deployed.
// (EpochEvent, the Pub/Sub-triggered variant of Epoch, is optional.)
func TestCloudBuildEntryPointsExist(t *testing.T) {
	b, err := os.ReadFile("../cloudbuild.yaml")
	if err != nil {
		t.Fatal(err)
	}
	deployed := map[string]bool{}
	for _, m := range regexp.MustCompile(`--entry-point[= ]([A-Za-z0-9_]+)`).FindAllSubmatch(b, -1) {
		name := string(m[1])
		if deployed[name] {
			t.Errorf("cloudbuild.yaml deploys %s twice", name)
		}
		deployed[name] = true
		if !slices.Contains(config.Targets, name) {
			t.Errorf("cloudbuild.yaml deploys entry point %s, which the functions package does not register", name)
		}
	}
	if len(deployed) == 0 {
		t.Fatal("no --entry-point found in cloudbuild.yaml")
	}
	for _, name := range config.Targets {
		if name != config.TargetEpochEvent && !deployed[name] {
			t.Errorf("entry point %s is registered but cloudbuild.yaml never deploys it", name)
		}
	}
}
