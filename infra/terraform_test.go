package infra_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/conifer-kt/conifer/infra"
)

// terraformCmd returns a terraform command running in dir, or fails the
// test if terraform is not installed. It never skips: the project's
// machines have terraform (Debian/HashiCorp package), and CI must check.
func terraformCmd(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Fatalf("terraform not found on PATH: install terraform (https://developer.hashicorp.com/terraform/install): %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_INPUT=0")
	return cmd
}

func runTerraform(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := terraformCmd(t, dir, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("terraform %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.Bytes()
}

// TestTerraformFmt runs `terraform fmt -check -recursive` over infra/: the
// only Terraform check that works offline (it also catches syntax errors).
func TestTerraformFmt(t *testing.T) {
	runTerraform(t, ".", "fmt", "-check", "-recursive", "-diff", ".")
}

// TestTerraformDDLMatchesGo evaluates terraform/modules/ddl (the splitter
// spanner.tf uses) on schema.sql and roles.sql with Terraform itself and
// compares the statements with SchemaDDL and RolesDDL: the database
// Terraform creates gets exactly the statements the tests apply.
func TestTerraformDDLMatchesGo(t *testing.T) {
	module, err := filepath.Abs(filepath.Join("terraform", "modules", "ddl"))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := filepath.Abs("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	roles, err := filepath.Abs("roles.sql")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`
module "schema" {
  source = %[1]s
  sql    = file(%[2]s)
}
module "roles" {
  source = %[1]s
  sql    = file(%[3]s)
}
output "schema" {
  value = module.schema.statements
}
output "roles" {
  value = module.roles.statements
}
`, strconv.Quote(module), strconv.Quote(schema), strconv.Quote(roles))
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	runTerraform(t, dir, "init", "-input=false", "-no-color")
	runTerraform(t, dir, "apply", "-auto-approve", "-input=false", "-no-color")
	out := runTerraform(t, dir, "output", "-json", "-no-color")
	var outputs map[string]struct {
		Value []string `json:"value"`
	}
	if err := json.Unmarshal(out, &outputs); err != nil {
		t.Fatalf("couldn't parse terraform output: %v\n%s", err, out)
	}
	if got, want := outputs["schema"].Value, infra.SchemaDDL(); !slices.Equal(got, want) {
		t.Errorf("Terraform's schema statements differ from SchemaDDL:\n got %q\nwant %q", got, want)
	}
	if got, want := outputs["roles"].Value, infra.RolesDDL(); !slices.Equal(got, want) {
		t.Errorf("Terraform's role statements differ from RolesDDL:\n got %q\nwant %q", got, want)
	}
}

// tfBlock is a top-level block of a .tf file: kind, labels and body lines.
type tfBlock struct {
	file   string
	kind   string
	labels []string
	body   []string
}

// tfBlocks reads the top-level blocks of every .tf file in dir. terraform
// fmt (checked above) puts each block's opening line and closing brace at
// column 0, which is all this needs.
func tfBlocks(t *testing.T, dir string) []tfBlock {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in %s: %v", dir, err)
	}
	open := regexp.MustCompile(`^([a-z_]+)((?: "[^"]+")*) \{$`)
	var blocks []tfBlock
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cur *tfBlock
		sc := bufio.NewScanner(bytes.NewReader(src))
		for sc.Scan() {
			line := sc.Text()
			switch {
			case cur == nil:
				if m := open.FindStringSubmatch(line); m != nil {
					cur = &tfBlock{file: filepath.Base(f), kind: m[1]}
					for _, l := range strings.Fields(m[2]) {
						cur.labels = append(cur.labels, strings.Trim(l, `"`))
					}
				}
			case line == "}":
				blocks = append(blocks, *cur)
				cur = nil
			default:
				cur.body = append(cur.body, line)
			}
		}
		if cur != nil {
			t.Fatalf("%s: block %s %v not closed", f, cur.kind, cur.labels)
		}
	}
	return blocks
}

// TestTerraformDocumented checks that every variable and output (of the
// root module and of modules/ddl) has a description.
func TestTerraformDocumented(t *testing.T) {
	desc := regexp.MustCompile(`^  description\s+=\s+(?:"[^"]{10,}"|<<-EOT)$`)
	n := 0
	for _, dir := range []string{"terraform", filepath.Join("terraform", "modules", "ddl")} {
		for _, b := range tfBlocks(t, dir) {
			if b.kind != "variable" && b.kind != "output" {
				continue
			}
			n++
			if !slices.ContainsFunc(b.body, desc.MatchString) {
				t.Errorf("%s: %s %q has no description", b.file, b.kind, b.labels[0])
			}
		}
	}
	if n < 20 {
		t.Errorf("found only %d variables and outputs; is the parser broken?", n)
	}
}

// terraformFunctions reads local.functions of functions.tf: short name ->
// entry point.
func terraformFunctions(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("terraform", "functions.tf"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^    ([a-z]+) = \{\n      entry_point = "([A-Za-z]+)"\n    \}$`)
	fns := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		fns[m[1]] = m[2]
	}
	return fns
}

// wantFunctions are Conifer's functions (DESIGN.md): short name -> entry point.
var wantFunctions = map[string]string{
	"update": "Update", "lookup": "Lookup", "history": "History", "checkpoint": "Checkpoint",
	"epoch": "Epoch", "feed": "Feed", "ratify": "Ratify",
}

// TestTerraformWiring checks names that must agree across files: the
// function list, the database roles of spanner.tf against roles.sql, and the
// per-function maps of functions.tf and variables.tf.
func TestTerraformWiring(t *testing.T) {
	if got := terraformFunctions(t); !mapsEqualString(got, wantFunctions) {
		t.Errorf("functions.tf functions = %v, want %v", got, wantFunctions)
	}

	spannerTF, err := os.ReadFile(filepath.Join("terraform", "spanner.tf"))
	if err != nil {
		t.Fatal(err)
	}
	var tfRoles []string
	for _, m := range regexp.MustCompile(`(?m)^    [a-z]+ += "(conifer_[a-z]+)"$`).FindAllStringSubmatch(string(spannerTF), -1) {
		tfRoles = append(tfRoles, m[1])
	}
	created, _ := grants(t)
	sort.Strings(tfRoles)
	sort.Strings(created)
	if !slices.Equal(tfRoles, created) {
		t.Errorf("spanner.tf database roles %v, roles.sql creates %v", tfRoles, created)
	}

	// Every function's sizing default and (but epoch) invoker default exist.
	functionsTF, err := os.ReadFile(filepath.Join("terraform", "functions.tf"))
	if err != nil {
		t.Fatal(err)
	}
	variablesTF, err := os.ReadFile(filepath.Join("terraform", "variables.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range wantFunctions {
		if !regexp.MustCompile(`(?m)^    ` + name + ` += \{ memory = `).Match(functionsTF) {
			t.Errorf("functions.tf: no default sizing for %s", name)
		}
		invoker := regexp.MustCompile(`(?m)^    ` + name + ` += \["allUsers"\]$`).Match(variablesTF)
		if invoker == (name == "epoch") {
			t.Errorf("variables.tf: public invoker default for %s is %v, want %v", name, invoker, name != "epoch")
		}
	}
}

func mapsEqualString(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
