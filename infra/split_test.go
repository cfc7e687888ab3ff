package infra_test

import (
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/conifer-kt/conifer/infra"
)

// The statements of schema.sql, identified by their first line. The split
// must produce exactly these, in this order.
var wantSchemaHeads = []string{
	"CREATE TABLE Log (",
	"CREATE TABLE Users (",
	"CREATE TABLE Profiles (",
	"CREATE TABLE LeafRecords (",
	"CREATE INDEX LeafRecordsByEpoch ON LeafRecords (Bucket, Epoch)",
	"CREATE TABLE TreeNodes (",
	"CREATE INDEX TreeNodesByVersion ON TreeNodes (Bucket, Version)",
	"CREATE TABLE Epochs (",
	"CREATE TABLE EpochAttempts (",
	"CREATE TABLE EpochRejections (",
	"CREATE TABLE Cosignatures (",
	"CREATE TABLE EpochLogNodes (",
	"CREATE TABLE Leases (",
}

func TestSchemaDDLSplit(t *testing.T) {
	stmts := infra.SchemaDDL()
	var heads []string
	for _, s := range stmts {
		head, _, _ := strings.Cut(s, "\n")
		heads = append(heads, head)
	}
	if !slices.Equal(heads, wantSchemaHeads) {
		t.Fatalf("schema statements:\n got %q\nwant %q", heads, wantSchemaHeads)
	}
	checkStatements(t, stmts)

	// Each statement is the file's code between two ';', comments removed:
	// the file minus comments and blank lines is the statements joined.
	src, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	var code []string
	for _, line := range strings.Split(string(src), "\n") {
		line, _, _ = strings.Cut(line, "--")
		if line = strings.TrimSpace(line); line != "" {
			code = append(code, line)
		}
	}
	if got, want := strings.Join(stmts, ";\n")+";", strings.Join(code, "\n"); got != want {
		t.Errorf("statements joined differ from the file's code:\n got %q\nwant %q", got, want)
	}

	// Spot-check one whole statement, byte for byte.
	const leases = "CREATE TABLE Leases (\n" +
		"Name STRING(64) NOT NULL,\n" +
		"Holder STRING(256) NOT NULL,\n" +
		"Token INT64 NOT NULL,\n" +
		"ExpiresAt TIMESTAMP NOT NULL,\n" +
		"RenewedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),\n" +
		"CONSTRAINT LeasesTokenPositive CHECK (Token >= 1),\n" +
		") PRIMARY KEY (Name)"
	if got := stmts[len(stmts)-1]; got != leases {
		t.Errorf("Leases statement:\n got %q\nwant %q", got, leases)
	}
}

// checkStatements checks what every statement of a valid file satisfies.
func checkStatements(t *testing.T, stmts []string) {
	t.Helper()
	for i, s := range stmts {
		if s == "" || strings.TrimSpace(s) != s {
			t.Errorf("statement %d %q is empty or not trimmed", i, s)
		}
		if strings.ContainsAny(s, ";'\"`#\t\r") || strings.Contains(s, "--") || strings.Contains(s, "/*") {
			t.Errorf("statement %d %q holds a terminator, quote or comment", i, s)
		}
		for _, line := range strings.Split(s, "\n") {
			if line == "" || strings.TrimSpace(line) != line {
				t.Errorf("statement %d has an empty or untrimmed line %q", i, line)
			}
		}
	}
}

func TestRolesDDLSplit(t *testing.T) {
	stmts := infra.RolesDDL()
	checkStatements(t, stmts)
	for _, s := range stmts {
		if !strings.HasPrefix(s, "CREATE ROLE ") && !strings.HasPrefix(s, "GRANT ") {
			t.Errorf("roles.sql holds a statement that is not CREATE ROLE or GRANT: %q", s)
		}
	}
	for _, s := range infra.SchemaDDL() {
		if strings.HasPrefix(s, "CREATE ROLE") || strings.HasPrefix(s, "GRANT") {
			t.Errorf("schema.sql holds access control (the emulator rejects it): %q", s)
		}
	}
}

// TestSplitDDLExample is the worked example of the package documentation.
func TestSplitDDLExample(t *testing.T) {
	src := "-- Users: ...\n" +
		"CREATE TABLE Users (   -- one row per user\n" +
		"  UserIndex BYTES(32) NOT NULL,\n" +
		") PRIMARY KEY (UserIndex);\n"
	got, err := infra.SplitDDL(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CREATE TABLE Users (\nUserIndex BYTES(32) NOT NULL,\n) PRIMARY KEY (UserIndex)"}
	if !slices.Equal(got, want) {
		t.Errorf("SplitDDL = %q, want %q", got, want)
	}
}

func TestSplitDDL(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"one", "A;\n", []string{"A"}},
		{"two on a line", "A; B;\n", []string{"A", "B"}},
		{"spread", "A\n  B ;C\nD;\n", []string{"A\nB", "C\nD"}},
		{"comments and blanks", "-- x; y\n\n  -- z\nA -- ; not a terminator\n;\n-- trailing\n", []string{"A"}},
		{"utf-8 comment", "A; -- H(a ‖ b) ✓\n", []string{"A"}},
		{"dash alone", "A - 1;\n", []string{"A - 1"}},
		{"inner spaces kept", "CHECK (a  >=  0);\n", []string{"CHECK (a  >=  0)"}},
		{"comment only after statements", "A;\n--\n", []string{"A"}},
	} {
		got, err := infra.SplitDDL(tc.src)
		if err != nil {
			t.Errorf("%s: SplitDDL(%q): %v", tc.name, tc.src, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: SplitDDL(%q) = %q, want %q", tc.name, tc.src, got, tc.want)
		}
		if model := terraformSplit(tc.src); !slices.Equal(got, model) {
			t.Errorf("%s: SplitDDL(%q) = %q, Terraform's split = %q", tc.name, tc.src, got, model)
		}
	}
}

func TestSplitDDLErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		err  error
		line int
	}{
		{"", infra.ErrNoStatements, 1},
		{"-- nothing\n\n", infra.ErrNoStatements, 2},
		{"A;", infra.ErrMissingNewline, 1},
		{"A;\nB;", infra.ErrMissingNewline, 2},
		{";\n", infra.ErrEmptyStatement, 1},
		{"A;\n  ;\n", infra.ErrEmptyStatement, 2},
		{"A;;\n", infra.ErrEmptyStatement, 1},
		{"A;\nB\nC\n", infra.ErrUnterminatedStatement, 2},
		{"A;\nB -- ;\n", infra.ErrUnterminatedStatement, 2},
		{"A 'x';\n", infra.ErrForbiddenText, 1},
		{"A \"x\";\n", infra.ErrForbiddenText, 1},
		{"A `x`;\n", infra.ErrForbiddenText, 1},
		{"A # c\n;\n", infra.ErrForbiddenText, 1},
		{"A /* c */;\n", infra.ErrForbiddenText, 1},
		{"A;\n\tB;\n", infra.ErrForbiddenText, 2},
		{"A;\r\n", infra.ErrForbiddenText, 1},
		{"A é;\n", infra.ErrForbiddenText, 1},
		{"A; -- \x00\n", infra.ErrForbiddenText, 1},
		{"A; -- \xff\n", infra.ErrForbiddenText, 1},
		{"A; -- \u0085\n", infra.ErrForbiddenText, 1},
		{"A; -- \r\n", infra.ErrForbiddenText, 1},
	} {
		got, err := infra.SplitDDL(tc.src)
		if err == nil {
			t.Errorf("SplitDDL(%q) = %q, want error %v", tc.src, got, tc.err)
			continue
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("SplitDDL(%q): %v, want %v", tc.src, err, tc.err)
		}
		var se *infra.SplitError
		if !errors.As(err, &se) || se.Line != tc.line {
			t.Errorf("SplitDDL(%q): %v, want line %d", tc.src, err, tc.line)
		}
		if !strings.HasPrefix(err.Error(), "couldn't split DDL: line ") {
			t.Errorf("SplitDDL(%q): error text %q", tc.src, err)
		}
	}
}

var commentRe = regexp.MustCompile(`--.*$`)

// terraformSplit is a plain model of terraform/modules/ddl: strip "--"
// comments and whitespace per line, drop empty lines, join, cut at ';',
// trim, drop empty pieces. SplitDDL must agree with it on every file it
// accepts.
func terraformSplit(src string) []string {
	var lines []string
	for _, line := range strings.Split(src, "\n") {
		line = commentRe.ReplaceAllString(line, "")
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	var out []string
	for _, piece := range strings.Split(strings.Join(lines, "\n"), ";") {
		if piece = strings.TrimSpace(piece); piece != "" {
			out = append(out, piece)
		}
	}
	return out
}

// joinDDL is the canonical encoding of a statement list: one statement per
// ';', each followed by a newline.
func joinDDL(stmts []string) string {
	var b strings.Builder
	for _, s := range stmts {
		b.WriteString(s)
		b.WriteString(";\n")
	}
	return b.String()
}

// FuzzSplitDDL: SplitDDL never panics; what it accepts agrees with the
// Terraform model; re-encoding its output and splitting again gives the same
// statements (parse(encode(x)) == x), and the canonical encoding of those is
// a fixed point (encode(parse(b)) == b for canonical b).
func FuzzSplitDDL(f *testing.F) {
	for _, seed := range []string{
		"A;\n", "A; B;\n", "A\n  B ;C\nD;\n", "-- x\nA -- y\n;\n", ";\n", "A 'x';\n",
		"A;", "A\tB;\n", "A; -- ‖\n", "", "A;;\n", "CHECK (x <= CODE_POINTS_TO_BYTES([1, 0]));\n",
	} {
		f.Add(seed)
	}
	for _, name := range []string{"schema.sql", "roles.sql"} {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src))
	}
	f.Fuzz(func(t *testing.T, src string) {
		stmts, err := infra.SplitDDL(src)
		if err != nil {
			var se *infra.SplitError
			if !errors.As(err, &se) || se.Line < 1 || se.Line > strings.Count(src, "\n")+1 {
				t.Fatalf("SplitDDL(%q): malformed error %v", src, err)
			}
			return
		}
		if len(stmts) == 0 {
			t.Fatalf("SplitDDL(%q) accepted no statements", src)
		}
		checkStatements(t, stmts)
		if model := terraformSplit(src); !slices.Equal(stmts, model) {
			t.Fatalf("SplitDDL(%q) = %q, Terraform model = %q", src, stmts, model)
		}
		canon := joinDDL(stmts)
		again, err := infra.SplitDDL(canon)
		if err != nil {
			t.Fatalf("SplitDDL(joinDDL(%q)): %v", stmts, err)
		}
		if !slices.Equal(again, stmts) {
			t.Fatalf("round trip: %q became %q", stmts, again)
		}
		if joinDDL(again) != canon {
			t.Fatalf("canonical encoding %q is not a fixed point", canon)
		}
	})
}
