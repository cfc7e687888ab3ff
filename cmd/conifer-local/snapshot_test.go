package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"cloud.google.com/go/spanner"

	"github.com/conifer-kt/conifer/emulators/spanneremu"
	"github.com/conifer-kt/conifer/infra"
)

func TestMain(m *testing.M) { spanneremu.Main(m) }

// TestSnapshotRoundTrip fills every kind of column the schema has (commit
// timestamps, interleaved children, nullable timestamps, bytes), exports,
// imports into a fresh database and exports again: the two snapshots must
// be identical, and the restored rows must read back the same.
func TestSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	e := spanneremu.ForTest(t)
	db1 := spanneremu.NewTestDatabase(t, infra.SchemaDDL())
	c1, err := e.NewClient(ctx, db1)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()

	idx := bytes.Repeat([]byte{7}, 32)
	seq := bytes.Repeat([]byte{1}, 16)
	ts := time.Date(2026, 11, 1, 12, 0, 0, 123456000, time.UTC)
	_, err = c1.Apply(ctx, []*spanner.Mutation{
		spanner.Insert("Log", []string{"Shard", "CommitTs", "Seq", "UserIndex", "Record"},
			[]any{int64(7), spanner.CommitTimestamp, seq, idx, []byte("record")}),
		spanner.Insert("Users", []string{"UserIndex", "Version", "EntryHash", "Entry", "LogShard", "LogCommitTs", "LogSeq"},
			[]any{idx, int64(1), bytes.Repeat([]byte{2}, 32), []byte("entry"), int64(7), ts, seq}),
		spanner.Insert("Profiles", []string{"UserIndex", "Version", "Profile", "Opening"},
			[]any{idx, int64(1), []byte("profile"), bytes.Repeat([]byte{3}, 16)}),
		spanner.Insert("Leases", []string{"Name", "Holder", "Token", "ExpiresAt", "RenewedAt"},
			[]any{"epoch", "me", int64(3), ts, spanner.CommitTimestamp}),
	})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := exportSnapshot(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, tb := range s1.Tables {
		rows += len(tb.Rows)
	}
	if rows != 4 {
		t.Fatalf("exported %d rows, want 4", rows)
	}

	// Through the file, as the local stack does.
	path := filepath.Join(t.TempDir(), "snap.json")
	if _, err := saveSnapshot(ctx, c1, path); err != nil {
		t.Fatal(err)
	}
	loaded, err := readSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}

	db2 := spanneremu.NewTestDatabase(t, infra.SchemaDDL())
	c2, err := e.NewClient(ctx, db2)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	n, err := importSnapshot(ctx, c2, loaded)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("imported %d rows, want 4", n)
	}
	s2, err := exportSnapshot(ctx, c2)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(s1)
	b2, _ := json.Marshal(s2)
	if !bytes.Equal(b1, b2) {
		t.Errorf("snapshot changed across export → import → export:\n%s\n%s", b1, b2)
	}
	var got time.Time
	row, err := c2.Single().ReadRow(ctx, "Users", spanner.Key{idx}, []string{"LogCommitTs"})
	if err != nil {
		t.Fatal(err)
	}
	if err := row.Column(0, &got); err != nil || !got.Equal(ts) {
		t.Errorf("restored timestamp = %v (%v), want %v", got, err, ts)
	}
	// Importing into a database that already has the rows fails loudly
	// instead of silently merging.
	if _, err := importSnapshot(ctx, c2, loaded); err == nil {
		t.Error("a second import into the same database succeeded")
	}
	if missing, err := readSnapshot(filepath.Join(t.TempDir(), "none.json")); missing != nil || err != nil {
		t.Errorf("missing snapshot: %v, %v; want nil, nil", missing, err)
	}
}
