package infra_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// cloudBuild is the subset of the Cloud Build configuration schema that
// cloudbuild.yaml uses. Decoding with KnownFields rejects any other key, so
// a misspelt field (waitfor, entryPoint) fails the test instead of being
// ignored by Cloud Build.
type cloudBuild struct {
	Substitutions map[string]string `yaml:"substitutions"`
	Options       struct {
		MachineType string `yaml:"machineType"`
		Logging     string `yaml:"logging"`
		Volumes     []struct {
			Name string `yaml:"name"`
			Path string `yaml:"path"`
		} `yaml:"volumes"`
	} `yaml:"options"`
	Timeout string      `yaml:"timeout"`
	Steps   []buildStep `yaml:"steps"`
}

type buildStep struct {
	ID         string   `yaml:"id"`
	Name       string   `yaml:"name"`
	Entrypoint string   `yaml:"entrypoint"`
	WaitFor    []string `yaml:"waitFor"`
	Env        []string `yaml:"env"`
	Args       []string `yaml:"args"`
}

// builtinSubstitutions are the substitutions Cloud Build provides itself.
var builtinSubstitutions = []string{
	"PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "TRIGGER_NAME", "COMMIT_SHA",
	"SHORT_SHA", "REVISION_ID", "REPO_NAME", "REPO_FULL_NAME", "BRANCH_NAME", "TAG_NAME",
	"REF_NAME", "TRIGGER_BUILD_CONFIG_PATH", "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT",
}

func readCloudBuild(t *testing.T) (*cloudBuild, *yaml.Node) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "cloudbuild.yaml"))
	if err != nil {
		t.Fatalf("couldn't read cloudbuild.yaml: %v", err)
	}
	var cb cloudBuild
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cb); err != nil {
		t.Fatalf("couldn't parse cloudbuild.yaml: %v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		t.Fatal(err)
	}
	return &cb, &root
}

// deployStep is what a `gcloud functions deploy` step says.
type deployStep struct {
	step       buildStep
	function   string            // short name, after ${_FUNCTION_PREFIX}
	entryPoint string            // --entry-point
	flags      map[string]string // --flag=value (value "" for --flag)
}

func deploySteps(t *testing.T, cb *cloudBuild) []deployStep {
	t.Helper()
	var out []deployStep
	for _, s := range cb.Steps {
		if len(s.Args) < 3 || s.Args[0] != "functions" || s.Args[1] != "deploy" {
			continue
		}
		d := deployStep{step: s, flags: map[string]string{}}
		name, ok := strings.CutPrefix(s.Args[2], "${_FUNCTION_PREFIX}")
		if !ok {
			t.Errorf("step %s deploys %q, want ${_FUNCTION_PREFIX}<name>", s.ID, s.Args[2])
		}
		d.function = name
		for _, a := range s.Args[3:] {
			if !strings.HasPrefix(a, "--") {
				t.Errorf("step %s: unexpected argument %q", s.ID, a)
				continue
			}
			k, v, _ := strings.Cut(a, "=")
			if _, dup := d.flags[k]; dup {
				t.Errorf("step %s: flag %s given twice", s.ID, k)
			}
			d.flags[k] = v
		}
		d.entryPoint = d.flags["--entry-point"]
		out = append(out, d)
	}
	return out
}

// TestCloudBuildStructure checks every step has an id and an image, waits
// only on earlier steps, that tests run before any deploy, and that every
// deploy step names its entry point and the settings each deploy must pin.
func TestCloudBuildStructure(t *testing.T) {
	cb, _ := readCloudBuild(t)
	if len(cb.Steps) == 0 {
		t.Fatal("no steps")
	}
	seen := map[string]bool{}
	for i, s := range cb.Steps {
		if s.ID == "" || s.Name == "" {
			t.Errorf("step %d: id %q, image %q: both are required", i, s.ID, s.Name)
		}
		if seen[s.ID] {
			t.Errorf("step id %q used twice", s.ID)
		}
		for _, w := range s.WaitFor {
			if w != "-" && !seen[w] {
				t.Errorf("step %s waits for %q, which is not an earlier step", s.ID, w)
			}
		}
		seen[s.ID] = true
	}

	var test *buildStep
	for i := range cb.Steps {
		if cb.Steps[i].ID == "test" {
			test = &cb.Steps[i]
		}
	}
	if test == nil {
		t.Fatal("no step with id test")
	}
	if !strings.Contains(strings.Join(test.Args, "\n"), "make test") {
		t.Errorf("test step does not run `make test`: %q", test.Args)
	}
	if !strings.Contains(test.Name, "google-cloud-cli:emulators") && test.Name != "${_EMULATORS_IMAGE}" {
		t.Errorf("test step image %q lacks the emulators", test.Name)
	}
	if cb.Substitutions["_EMULATORS_IMAGE"] != "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators" {
		t.Errorf("_EMULATORS_IMAGE = %q", cb.Substitutions["_EMULATORS_IMAGE"])
	}

	deploys := deploySteps(t, cb)
	got := map[string]string{}
	for _, d := range deploys {
		if d.entryPoint == "" {
			t.Errorf("step %s names no --entry-point", d.step.ID)
		}
		if _, dup := got[d.function]; dup {
			t.Errorf("function %s deployed twice", d.function)
		}
		got[d.function] = d.entryPoint
		if d.step.ID != "deploy-"+d.function {
			t.Errorf("step %s deploys %s; want id deploy-%s", d.step.ID, d.function, d.function)
		}
		if !slices.Contains(d.step.WaitFor, "test") {
			t.Errorf("step %s does not wait for the tests", d.step.ID)
		}
		if d.step.Entrypoint != "gcloud" {
			t.Errorf("step %s entrypoint %q, want gcloud", d.step.ID, d.step.Entrypoint)
		}
		want := map[string]string{
			"--gen2":                  "",
			"--runtime":               "go126",
			"--trigger-http":          "",
			"--region":                "${_REGION}",
			"--project":               "${PROJECT_ID}",
			"--source":                ".",
			"--ignore-file":           "infra/functions.gcloudignore",
			"--run-service-account":   "${_SA_" + strings.ToUpper(d.function) + "}",
			"--build-service-account": "projects/${PROJECT_ID}/serviceAccounts/${_BUILD_SA}",
		}
		for k, v := range want {
			if got, ok := d.flags[k]; !ok || got != v {
				t.Errorf("step %s: %s=%q, want %q", d.step.ID, k, got, v)
			}
		}
		if _, ok := d.flags["--allow-unauthenticated"]; ok {
			t.Errorf("step %s changes invoker IAM; Terraform owns it", d.step.ID)
		}
		if _, ok := d.flags["--no-allow-unauthenticated"]; ok != (d.function == "epoch") {
			t.Errorf("step %s: --no-allow-unauthenticated present = %v, want only on epoch", d.step.ID, ok)
		}
	}
	if !mapsEqualString(got, wantFunctions) {
		t.Errorf("deployed functions = %v, want %v", got, wantFunctions)
	}
	if _, err := os.Stat("functions.gcloudignore"); err != nil {
		t.Errorf("the deploy steps' --ignore-file is missing: %v", err)
	}
}

// TestCloudBuildSubstitutions checks every substitution used is declared
// (or built in), and every declared one is used: Cloud Build rejects a build
// with unused substitutions unless told otherwise.
func TestCloudBuildSubstitutions(t *testing.T) {
	cb, root := readCloudBuild(t)
	ref := regexp.MustCompile(`\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)
	used := map[string]bool{}
	var walk func(n *yaml.Node, inSubstitutions bool)
	walk = func(n *yaml.Node, inSubstitutions bool) {
		if n.Kind == yaml.ScalarNode && !inSubstitutions {
			for _, m := range ref.FindAllStringSubmatch(n.Value, -1) {
				if m[1] == "$" {
					continue // $$ escapes a dollar for the shell
				}
				used[m[2]+m[3]] = true
			}
		}
		for i, c := range n.Content {
			// Skip the values of the substitutions map itself.
			sub := inSubstitutions
			if n.Kind == yaml.MappingNode && i%2 == 1 && n.Content[i-1].Value == "substitutions" {
				sub = true
			}
			walk(c, sub)
		}
	}
	walk(root, false)
	if len(used) == 0 {
		t.Fatal("no substitutions found; is the scan broken?")
	}
	for name := range used {
		if strings.HasPrefix(name, "_") {
			if _, ok := cb.Substitutions[name]; !ok {
				t.Errorf("substitution %s is used but not declared", name)
			}
		} else if !slices.Contains(builtinSubstitutions, name) {
			t.Errorf("$%s is neither a built-in substitution nor user-defined (escape shell variables as $$)", name)
		}
	}
	var declared []string
	for name := range cb.Substitutions {
		declared = append(declared, name)
		if !regexp.MustCompile(`^_[A-Z0-9_]+$`).MatchString(name) {
			t.Errorf("substitution %q must start with _ and use A-Z, 0-9, _", name)
		}
		if !used[name] {
			t.Errorf("substitution %s is declared but never used", name)
		}
	}
	sort.Strings(declared)
	t.Logf("substitutions: %v", declared)
}

// TestCloudBuildMatchesTerraform checks that Cloud Build deploys exactly the
// functions Terraform creates, with the same entry points, name prefix and
// region defaults.
func TestCloudBuildMatchesTerraform(t *testing.T) {
	cb, _ := readCloudBuild(t)
	deployed := map[string]string{}
	for _, d := range deploySteps(t, cb) {
		deployed[d.function] = d.entryPoint
	}
	if tf := terraformFunctions(t); !mapsEqualString(deployed, tf) {
		t.Errorf("cloudbuild.yaml deploys %v, functions.tf creates %v", deployed, tf)
	}

	variablesTF, err := os.ReadFile(filepath.Join("terraform", "variables.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for sub, variable := range map[string]string{"_FUNCTION_PREFIX": "name_prefix", "_REGION": "region"} {
		re := regexp.MustCompile(`(?s)variable "` + variable + `" \{.*?\n  default\s+= "([^"]*)"\n`)
		m := re.FindSubmatch(variablesTF)
		if m == nil {
			t.Errorf("variables.tf: no default for %s", variable)
			continue
		}
		if got := cb.Substitutions[sub]; got != string(m[1]) {
			t.Errorf("cloudbuild.yaml %s = %q, Terraform %s defaults to %q", sub, got, variable, m[1])
		}
	}
}
