//go:build functions

// This test needs the functions package, which is being written in
// parallel. The lead removes the build tag once ../functions exists.

package infra_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCloudBuildEntryPointsExist checks that every entry point
// cloudbuild.yaml deploys is registered by the functions package
// (functions.HTTP("Name", ...) or functions.CloudEvent("Name", ...)), and
// that every registered function is deployed.
func TestCloudBuildEntryPointsExist(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "functions", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`functions\.(?:HTTP|CloudEvent)\(\s*"([A-Za-z0-9_]+)"`)
	registered := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			if prev, dup := registered[m[1]]; dup {
				t.Errorf("entry point %s registered in %s and %s", m[1], prev, f)
			}
			registered[m[1]] = f
		}
	}
	if len(registered) == 0 {
		t.Fatalf("no functions.HTTP/CloudEvent registrations found in %d files of ../functions", len(files))
	}

	cb, _ := readCloudBuild(t)
	deployed := map[string]bool{}
	for _, d := range deploySteps(t, cb) {
		deployed[d.entryPoint] = true
		if _, ok := registered[d.entryPoint]; !ok {
			t.Errorf("cloudbuild.yaml deploys entry point %s, which ../functions does not register", d.entryPoint)
		}
	}
	for name, f := range registered {
		if !deployed[name] {
			t.Errorf("%s registers %s, which cloudbuild.yaml never deploys", f, name)
		}
	}
}
