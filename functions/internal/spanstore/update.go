package spanstore

import (
	"context"
	"crypto/rand"
	"fmt"

	"cloud.google.com/go/spanner"
	"google.golang.org/grpc/codes"

	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/storage"
)

var (
	logColumns     = []string{"Shard", "CommitTs", "Seq", "UserIndex", "Record"}
	usersColumns   = []string{"UserIndex", "Version", "EntryHash", "Entry", "LogShard", "LogCommitTs", "LogSeq"}
	profileColumns = []string{"UserIndex", "Version", "Profile", "Opening"}
)

// AppendUpdate implements storage.Store. In one read-write transaction it
// reads the Users row (locking the user), runs check, and writes the Log
// row (Shard from the index, commit-timestamp sequenced, random Seq), the
// new Users row and, unless the entry is a tombstone, the Profiles row.
func (s *Store) AppendUpdate(ctx context.Context, a storage.Append, check func(prev *storage.PendingUser) error) (storage.LogRow, error) {
	if err := checkAppend(&a); err != nil {
		return storage.LogRow{}, fmt.Errorf("couldn't append update: %w", err)
	}
	version, _ := int64Of("version", a.Version)
	var seq [16]byte
	if _, err := rand.Read(seq[:]); err != nil {
		return storage.LogRow{}, fmt.Errorf("couldn't append update: couldn't draw a sequence number: %w", err)
	}
	shard := s.shardOf(a.Index)
	var checkErr error
	ts, err := s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		checkErr = nil
		prev, err := readPending(ctx, tx, a.Index)
		if err != nil {
			return err
		}
		if err := check(prev); err != nil {
			checkErr = err
			return err
		}
		ms := []*spanner.Mutation{
			spanner.Insert("Log", logColumns, []any{shard, spanner.CommitTimestamp, seq[:], a.Index[:], a.Record}),
			spanner.InsertOrUpdate("Users", usersColumns, []any{a.Index[:], version, a.EntryHash[:], a.SignedEntry, shard, spanner.CommitTimestamp, seq[:]}),
		}
		if a.Profile != nil {
			ms = append(ms, spanner.InsertOrUpdate("Profiles", profileColumns, []any{a.Index[:], version, a.Profile, a.Opening}))
		}
		return tx.BufferWrite(ms)
	})
	if checkErr != nil {
		return storage.LogRow{}, checkErr
	}
	if err != nil {
		return storage.LogRow{}, fmt.Errorf("couldn't append update: %w", err)
	}
	return storage.LogRow{CommitTs: ts.UTC(), Shard: shard, Seq: seq, Index: a.Index, Record: a.Record}, nil
}

// checkAppend checks what the store relies on: sizes and shapes of the
// stored values (the rules are check's business).
func checkAppend(a *storage.Append) error {
	switch {
	case a.Version < 1 || a.Version > 1<<62:
		return fmt.Errorf("version %d out of range", a.Version)
	case len(a.Record) == 0 || len(a.Record) > format.MaxLogRecordSize:
		return fmt.Errorf("log record of %d bytes", len(a.Record))
	case len(a.SignedEntry) == 0 || len(a.SignedEntry) > format.MaxSignedEntrySize:
		return fmt.Errorf("signed entry of %d bytes", len(a.SignedEntry))
	case (a.Profile == nil) != (a.Opening == nil):
		return fmt.Errorf("profile and opening must be both set or both nil")
	case a.Opening != nil && len(a.Opening) != format.OpeningSize:
		return fmt.Errorf("opening of %d bytes, want %d", len(a.Opening), format.OpeningSize)
	case len(a.Profile) > format.MaxProfileSize:
		return fmt.Errorf("profile of %d bytes", len(a.Profile))
	}
	return nil
}

// readPending reads a user's Users row in a transaction (nil if none).
func readPending(ctx context.Context, tx *spanner.ReadWriteTransaction, index [32]byte) (*storage.PendingUser, error) {
	row, err := tx.ReadRow(ctx, "Users", spanner.Key{index[:]}, []string{"Version", "EntryHash", "Entry"})
	if spanner.ErrCode(err) == codes.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read pending user: %w", err)
	}
	var (
		v    int64
		h, e []byte
	)
	if err := row.Columns(&v, &h, &e); err != nil {
		return nil, fmt.Errorf("couldn't read pending user: %w", err)
	}
	if v < 1 || len(h) != 32 {
		return nil, fmt.Errorf("couldn't read pending user: corrupt row (version %d, %d-byte hash)", v, len(h))
	}
	return &storage.PendingUser{Version: uint64(v), EntryHash: [32]byte(h), SignedEntry: e}, nil
}
