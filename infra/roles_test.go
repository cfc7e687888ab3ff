package infra_test

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/conifer-kt/conifer/infra"
)

// grants parses roles.sql into role -> table -> privileges, checking the
// statement shapes on the way.
func grants(t *testing.T) (created []string, g map[string]map[string][]string) {
	t.Helper()
	createRe := regexp.MustCompile(`^CREATE ROLE (conifer_[a-z]+)$`)
	grantRe := regexp.MustCompile(`^GRANT ((?:SELECT|INSERT|UPDATE|DELETE)(?:, (?:SELECT|INSERT|UPDATE|DELETE))*) ON TABLE (\w+(?:, \w+)*) TO ROLE (\w+)$`)
	tables := schemaTables(t)
	g = map[string]map[string][]string{}
	for _, s := range infra.RolesDDL() {
		if m := createRe.FindStringSubmatch(s); m != nil {
			if slices.Contains(created, m[1]) {
				t.Errorf("role %s created twice", m[1])
			}
			created = append(created, m[1])
			g[m[1]] = map[string][]string{}
			continue
		}
		m := grantRe.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("unexpected statement in roles.sql: %q", s)
			continue
		}
		role := m[3]
		if !slices.Contains(created, role) {
			t.Errorf("GRANT to role %s before (or without) CREATE ROLE: %q", role, s)
			continue
		}
		for _, table := range strings.Split(m[2], ", ") {
			if !slices.Contains(tables, table) {
				t.Errorf("GRANT on unknown table %s: %q", table, s)
			}
			for _, p := range strings.Split(m[1], ", ") {
				if slices.Contains(g[role][table], p) {
					t.Errorf("privilege %s on %s granted to %s twice", p, table, role)
				}
				g[role][table] = append(g[role][table], p)
			}
		}
	}
	return created, g
}

func schemaTables(t *testing.T) []string {
	t.Helper()
	var tables []string
	re := regexp.MustCompile(`^CREATE TABLE (\w+) \(`)
	for _, s := range infra.SchemaDDL() {
		if m := re.FindStringSubmatch(s); m != nil {
			tables = append(tables, m[1])
		}
	}
	return tables
}

// holders returns the roles holding privilege p on table.
func holders(g map[string]map[string][]string, table, p string) []string {
	var out []string
	for role, tables := range g {
		if slices.Contains(tables[table], p) {
			out = append(out, role)
		}
	}
	sort.Strings(out)
	return out
}

// TestRoles checks the guarantees roles.sql promises in its header.
func TestRoles(t *testing.T) {
	created, g := grants(t)
	wantRoles := []string{"conifer_update", "conifer_epoch", "conifer_ratify", "conifer_feed"}
	if !slices.Equal(created, wantRoles) {
		t.Fatalf("roles = %v, want %v", created, wantRoles)
	}
	for _, role := range created {
		if len(g[role]) == 0 {
			t.Errorf("role %s has no privilege", role)
		}
	}
	for _, tc := range []struct {
		table, privilege string
		want             []string
	}{
		// The log is append-only and only the update function appends.
		{"Log", "INSERT", []string{"conifer_update"}},
		{"Log", "UPDATE", nil},
		{"Log", "DELETE", nil},
		// Profiles are seen and erased by the update function alone.
		{"Profiles", "SELECT", []string{"conifer_update"}},
		{"Profiles", "INSERT", []string{"conifer_update"}},
		{"Profiles", "UPDATE", []string{"conifer_update"}},
		{"Profiles", "DELETE", []string{"conifer_update"}},
		{"Users", "INSERT", []string{"conifer_update"}},
		{"Users", "DELETE", nil},
		// Only the epoch function writes what an epoch produces.
		{"TreeNodes", "INSERT", []string{"conifer_epoch"}},
		{"LeafRecords", "INSERT", []string{"conifer_epoch"}},
		{"Epochs", "INSERT", []string{"conifer_epoch"}},
		{"Epochs", "UPDATE", []string{"conifer_epoch"}},
		{"Epochs", "DELETE", nil},
		{"EpochAttempts", "INSERT", []string{"conifer_epoch"}},
		{"EpochRejections", "INSERT", []string{"conifer_epoch"}},
		{"EpochLogNodes", "INSERT", []string{"conifer_epoch"}},
		{"EpochLogNodes", "UPDATE", []string{"conifer_epoch"}},
		{"EpochLogNodes", "DELETE", nil},
		{"Leases", "INSERT", []string{"conifer_epoch"}},
		// Cosignatures come from ratify only, and nobody deletes them.
		{"Cosignatures", "INSERT", []string{"conifer_ratify"}},
		{"Cosignatures", "UPDATE", []string{"conifer_ratify"}},
		{"Cosignatures", "DELETE", nil},
	} {
		if got := holders(g, tc.table, tc.privilege); !slices.Equal(got, tc.want) {
			t.Errorf("%s on %s held by %v, want %v", tc.privilege, tc.table, got, tc.want)
		}
	}
	// Ratify can do exactly this and nothing else.
	wantRatify := map[string][]string{"Epochs": {"SELECT"}, "Cosignatures": {"SELECT", "INSERT", "UPDATE"}}
	if !mapsEqual(g["conifer_ratify"], wantRatify) {
		t.Errorf("conifer_ratify privileges = %v, want %v", g["conifer_ratify"], wantRatify)
	}
	// Feed reads only, and never users, profiles or the tree.
	for table, ps := range g["conifer_feed"] {
		if !slices.Equal(ps, []string{"SELECT"}) {
			t.Errorf("conifer_feed has %v on %s, want SELECT only", ps, table)
		}
		if table == "Users" || table == "Profiles" || table == "TreeNodes" || table == "LeafRecords" {
			t.Errorf("conifer_feed can read %s", table)
		}
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
