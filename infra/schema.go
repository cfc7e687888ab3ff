// Package infra is Conifer's deployment description: the Cloud Spanner
// schema (schema.sql), the fine-grained access control roles (roles.sql),
// the Terraform configuration of a real deployment (terraform/) and the
// checks on the repository's cloudbuild.yaml.
//
// The Go API exposes the two SQL files as statement lists, split exactly as
// Terraform splits them (terraform/modules/ddl), so the tests, the local
// stack and a real database get the same statements:
//
//	ddl := infra.SchemaDDL()          // tables and indexes: emulator and Spanner
//	roles := infra.RolesDDL()         // CREATE ROLE / GRANT: real Spanner only
//
// # File grammar
//
// Both files are read by [SplitDDL], which accepts exactly this grammar
// (ABNF, RFC 5234) and reports any deviation as a [*SplitError] naming the
// line:
//
//	file      = 1*line
//	line      = [code] ["--" comment] LF   ; LF only: no CR anywhere
//	code      = *code-char                 ; never contains "--" or "/*"
//	code-char = %x20-21 / %x24-26 / %x28-5F / %x61-7E
//	            ; printable ASCII except " # ' ` (no tabs, no quotes)
//	comment   = *(%x20-7E / %xA0-10FFFF)   ; UTF-8 text, no control characters
//
// Splitting: each line loses its comment and its surrounding spaces; empty
// lines are dropped; the remaining lines are joined with LF and cut at every
// ';'; each piece loses its surrounding whitespace and is one statement. A
// piece that is empty ("; ;") is an error ([ErrEmptyStatement]), as is text
// after the last ';' ([ErrUnterminatedStatement]) or a file without any
// statement ([ErrNoStatements]). Quotes are refused outright because a ';'
// or "--" inside a string literal would otherwise be cut.
//
// Example: the input
//
//	-- Users: ...
//	CREATE TABLE Users (   -- one row per user
//	  UserIndex BYTES(32) NOT NULL,
//	) PRIMARY KEY (UserIndex);
//
// yields the single statement
//
//	"CREATE TABLE Users (\nUserIndex BYTES(32) NOT NULL,\n) PRIMARY KEY (UserIndex)"
//
// The schema's design (keys, interleaving, commit sizes) is documented table
// by table in schema.sql itself.
package infra

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

//go:embed schema.sql
var schemaSQL string

//go:embed roles.sql
var rolesSQL string

// SchemaDDL returns the statements of schema.sql: every table and index of
// Conifer's database, in the order they must be applied. It panics if the
// embedded file does not follow the grammar of [SplitDDL], which the
// package's tests rule out.
func SchemaDDL() []string {
	return mustSplit("schema.sql", schemaSQL)
}

// RolesDDL returns the statements of roles.sql: the fine-grained access
// control roles, applied after [SchemaDDL] on real Spanner only (the
// emulator does not support them). It panics like [SchemaDDL].
func RolesDDL() []string {
	return mustSplit("roles.sql", rolesSQL)
}

func mustSplit(name, src string) []string {
	stmts, err := SplitDDL(src)
	if err != nil {
		panic(fmt.Sprintf("infra: embedded %s is malformed: %v", name, err))
	}
	return stmts
}

// Errors that [SplitDDL] wraps in a [*SplitError].
var (
	// ErrEmptyStatement: a ';' with no statement text before it.
	ErrEmptyStatement = errors.New("empty statement")
	// ErrUnterminatedStatement: statement text after the last ';'.
	ErrUnterminatedStatement = errors.New("statement not terminated by ';'")
	// ErrNoStatements: the input holds no statement at all.
	ErrNoStatements = errors.New("no statements")
	// ErrMissingNewline: the input does not end in a line feed.
	ErrMissingNewline = errors.New("last line not terminated by a line feed")
	// ErrForbiddenText: a character or sequence outside the grammar.
	ErrForbiddenText = errors.New("forbidden text")
)

// SplitError is the error [SplitDDL] returns: which line (1-based), and
// which of the sentinel errors above, with a detail.
type SplitError struct {
	Line   int
	Err    error
	Detail string
}

func (e *SplitError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("couldn't split DDL: line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("couldn't split DDL: line %d: %v: %s", e.Line, e.Err, e.Detail)
}

// Unwrap returns the sentinel error, for errors.Is.
func (e *SplitError) Unwrap() error { return e.Err }

// SplitDDL splits a DDL file into statements following the grammar in the
// package documentation, strictly: anything outside it is an error.
func SplitDDL(src string) ([]string, error) {
	if src == "" {
		return nil, &SplitError{Line: 1, Err: ErrNoStatements}
	}
	if !strings.HasSuffix(src, "\n") {
		return nil, &SplitError{Line: strings.Count(src, "\n") + 1, Err: ErrMissingNewline}
	}
	var (
		stmts     []string
		cur       []string // code pieces of the statement being read
		startLine int      // line where cur began
	)
	lines := strings.Split(strings.TrimSuffix(src, "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		code, comment, hasComment := strings.Cut(line, "--")
		if hasComment {
			if err := checkComment(comment); err != nil {
				return nil, &SplitError{Line: n, Err: ErrForbiddenText, Detail: err.Error()}
			}
		}
		if err := checkCode(code); err != nil {
			return nil, &SplitError{Line: n, Err: ErrForbiddenText, Detail: err.Error()}
		}
		rest := strings.TrimSpace(code)
		for rest != "" {
			piece, after, terminated := strings.Cut(rest, ";")
			if piece = strings.TrimSpace(piece); piece != "" {
				if len(cur) == 0 {
					startLine = n
				}
				cur = append(cur, piece)
			}
			if !terminated {
				break
			}
			if len(cur) == 0 {
				return nil, &SplitError{Line: n, Err: ErrEmptyStatement}
			}
			stmts = append(stmts, strings.Join(cur, "\n"))
			cur = nil
			rest = strings.TrimSpace(after)
		}
	}
	if len(cur) > 0 {
		return nil, &SplitError{Line: startLine, Err: ErrUnterminatedStatement, Detail: cur[0]}
	}
	if len(stmts) == 0 {
		return nil, &SplitError{Line: len(lines), Err: ErrNoStatements}
	}
	return stmts, nil
}

// checkCode enforces the code production: printable ASCII without quotes,
// backticks, '#', "/*" (other comment syntaxes) and, implicitly, "--" (the
// caller cut the line there).
func checkCode(code string) error {
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c < 0x20 || c > 0x7e:
			return fmt.Errorf("byte %#02x at column %d (only printable ASCII outside comments)", c, i+1)
		case c == '\'' || c == '"' || c == '`':
			return fmt.Errorf("quote %q at column %d (string literals and quoted identifiers are not allowed)", c, i+1)
		case c == '#':
			return fmt.Errorf("'#' at column %d (comments start with --)", i+1)
		case c == '/' && i+1 < len(code) && code[i+1] == '*':
			return fmt.Errorf("\"/*\" at column %d (comments start with --)", i+1)
		}
	}
	return nil
}

// checkComment enforces the comment production: valid UTF-8 without control
// characters.
func checkComment(comment string) error {
	if !utf8.ValidString(comment) {
		return errors.New("comment is not valid UTF-8")
	}
	for _, r := range comment {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("control character %U in comment", r)
		}
	}
	return nil
}
