package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"cloud.google.com/go/spanner"
	"cloud.google.com/go/spanner/apiv1/spannerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/conifer-kt/conifer/infra"
)

// The Spanner emulator keeps nothing across restarts, so the local stack
// exports every table to a snapshot file (periodically and on shutdown)
// and imports it into the fresh database on start.
//
// Snapshot file (JSON, written atomically, mode 0600):
//
//	{"version": 1, "tables": [{"name": "Log", "columns": ["Shard", …],
//	  "types": [<spannerpb.Type as protojson>, …],
//	  "rows": [[<structpb.Value as protojson>, …], …]}, …]}
//
// Tables are listed in the schema's CREATE TABLE order, which puts every
// interleaving parent before its children; generated columns are left out
// (Spanner recomputes them).

type snapshot struct {
	Version int             `json:"version"`
	Tables  []snapshotTable `json:"tables"`
}

type snapshotTable struct {
	Name    string              `json:"name"`
	Columns []string            `json:"columns"`
	Types   []json.RawMessage   `json:"types"`
	Rows    [][]json.RawMessage `json:"rows"`
}

var createTable = regexp.MustCompile(`(?i)^\s*CREATE\s+TABLE\s+(\w+)`)

// schemaTables returns the schema's tables in creation order.
func schemaTables() []string {
	var ts []string
	for _, stmt := range infra.SchemaDDL() {
		if m := createTable.FindStringSubmatch(stmt); m != nil {
			ts = append(ts, m[1])
		}
	}
	return ts
}

// exportSnapshot reads every table in one read-only snapshot.
func exportSnapshot(ctx context.Context, client *spanner.Client) (*snapshot, error) {
	txn := client.ReadOnlyTransaction()
	defer txn.Close()
	snap := &snapshot{Version: 1}
	for _, table := range schemaTables() {
		t := snapshotTable{Name: table}
		it := txn.Query(ctx, spanner.Statement{
			SQL: `SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS
			      WHERE TABLE_SCHEMA = '' AND TABLE_NAME = @t AND IS_GENERATED = 'NEVER'
			      ORDER BY ORDINAL_POSITION`,
			Params: map[string]any{"t": table},
		})
		err := it.Do(func(r *spanner.Row) error {
			var c string
			if err := r.Column(0, &c); err != nil {
				return err
			}
			t.Columns = append(t.Columns, c)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("couldn't list the columns of %s: %w", table, err)
		}
		rows := txn.Read(ctx, table, spanner.AllKeys(), t.Columns)
		for {
			r, err := rows.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("couldn't read %s: %w", table, err)
			}
			row := make([]json.RawMessage, r.Size())
			for i := range row {
				var v spanner.GenericColumnValue
				if err := r.Column(i, &v); err != nil {
					return nil, fmt.Errorf("couldn't read %s.%s: %w", table, t.Columns[i], err)
				}
				if t.Types == nil || len(t.Types) < len(row) {
					tb, err := protojson.Marshal(v.Type)
					if err != nil {
						return nil, err
					}
					t.Types = append(t.Types, tb)
				}
				vb, err := protojson.Marshal(v.Value)
				if err != nil {
					return nil, err
				}
				row[i] = vb
			}
			t.Rows = append(t.Rows, row)
		}
		snap.Tables = append(snap.Tables, t)
	}
	return snap, nil
}

// importSnapshot inserts a snapshot's rows into an empty database, parents
// first, in commits of at most batchRows rows.
func importSnapshot(ctx context.Context, client *spanner.Client, snap *snapshot) (int, error) {
	if snap.Version != 1 {
		return 0, fmt.Errorf("couldn't import snapshot: version %d, want 1", snap.Version)
	}
	const batchRows = 1000
	total := 0
	for _, t := range snap.Tables {
		if len(t.Rows) == 0 {
			continue
		}
		if len(t.Types) != len(t.Columns) {
			return total, fmt.Errorf("couldn't import %s: %d types for %d columns", t.Name, len(t.Types), len(t.Columns))
		}
		types := make([]*spannerpb.Type, len(t.Types))
		for i, tb := range t.Types {
			types[i] = new(spannerpb.Type)
			if err := protojson.Unmarshal(tb, types[i]); err != nil {
				return total, fmt.Errorf("couldn't import %s.%s type: %w", t.Name, t.Columns[i], err)
			}
		}
		var ms []*spanner.Mutation
		flush := func() error {
			if len(ms) == 0 {
				return nil
			}
			_, err := client.Apply(ctx, ms)
			ms = ms[:0]
			return err
		}
		for _, row := range t.Rows {
			if len(row) != len(t.Columns) {
				return total, fmt.Errorf("couldn't import %s: a row has %d values for %d columns", t.Name, len(row), len(t.Columns))
			}
			vals := make([]any, len(row))
			for i, vb := range row {
				v := new(structpb.Value)
				if err := protojson.Unmarshal(vb, v); err != nil {
					return total, fmt.Errorf("couldn't import %s.%s: %w", t.Name, t.Columns[i], err)
				}
				vals[i] = spanner.GenericColumnValue{Type: types[i], Value: v}
			}
			ms = append(ms, spanner.Insert(t.Name, t.Columns, vals))
			total++
			if len(ms) == batchRows {
				if err := flush(); err != nil {
					return total, fmt.Errorf("couldn't import %s: %w", t.Name, err)
				}
			}
		}
		if err := flush(); err != nil {
			return total, fmt.Errorf("couldn't import %s: %w", t.Name, err)
		}
	}
	return total, nil
}

func readSnapshot(path string) (*snapshot, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("couldn't parse snapshot %s: %w", path, err)
	}
	return &s, nil
}

// writeFileAtomic writes data to path via a temporary file and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func saveSnapshot(ctx context.Context, client *spanner.Client, path string) (int, error) {
	snap, err := exportSnapshot(ctx, client)
	if err != nil {
		return 0, err
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range snap.Tables {
		n += len(t.Rows)
	}
	return n, writeFileAtomic(path, b, 0o600)
}
