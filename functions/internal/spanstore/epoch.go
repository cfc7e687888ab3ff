package spanstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/spanner"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"

	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

// --- leases ---

// AcquireLease implements storage.Store. Expiry is judged by Spanner's
// clock (CURRENT_TIMESTAMP() in the taking transaction), never by the
// caller's, so function instances with skewed clocks agree.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (int64, error) {
	if name == "" || len(name) > 64 || holder == "" || len(holder) > 256 || ttl <= 0 {
		return 0, fmt.Errorf("couldn't acquire lease %q: bad name, holder or ttl %v", name, ttl)
	}
	var token int64
	_, err := s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		type leaseRow struct {
			Holder    string
			Token     int64
			ExpiresAt time.Time
		}
		var (
			now  time.Time
			rows []*leaseRow
		)
		stmt := spanner.Statement{
			SQL: `SELECT CURRENT_TIMESTAMP(),
			  ARRAY(SELECT AS STRUCT Holder, Token, ExpiresAt FROM Leases WHERE Name = @name)`,
			Params: map[string]any{"name": name},
		}
		if err := tx.Query(ctx, stmt).Do(func(r *spanner.Row) error { return r.Columns(&now, &rows) }); err != nil {
			return err
		}
		expires := now.Add(ttl)
		cols := []string{"Name", "Holder", "Token", "ExpiresAt", "RenewedAt"}
		switch {
		case len(rows) == 0:
			token = 1
		case rows[0].Holder == holder:
			token = rows[0].Token // a renewal keeps the token
		case !rows[0].ExpiresAt.After(now):
			token = rows[0].Token + 1 // a takeover fences the old holder
		default:
			return fmt.Errorf("held by %q until %v: %w", rows[0].Holder, rows[0].ExpiresAt, storage.ErrLeaseHeld)
		}
		return tx.BufferWrite([]*spanner.Mutation{spanner.InsertOrUpdate("Leases", cols,
			[]any{name, holder, token, expires, spanner.CommitTimestamp})})
	})
	if err != nil {
		return 0, fmt.Errorf("couldn't acquire lease %q for %q: %w", name, holder, err)
	}
	return token, nil
}

// ReleaseLease implements storage.Store: it expires the lease now (Spanner's
// clock), keeping the token, which the next holder increments.
func (s *Store) ReleaseLease(ctx context.Context, name string, token int64) error {
	_, err := s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		var (
			now time.Time
			cur []int64
		)
		stmt := spanner.Statement{
			SQL:    `SELECT CURRENT_TIMESTAMP(), ARRAY(SELECT Token FROM Leases WHERE Name = @name)`,
			Params: map[string]any{"name": name},
		}
		if err := tx.Query(ctx, stmt).Do(func(r *spanner.Row) error { return r.Columns(&now, &cur) }); err != nil {
			return err
		}
		if len(cur) == 0 || cur[0] != token {
			return nil // not ours any more: nothing to give up
		}
		return tx.BufferWrite([]*spanner.Mutation{spanner.Update("Leases",
			[]string{"Name", "ExpiresAt"}, []any{name, now})})
	})
	if err != nil {
		return fmt.Errorf("couldn't release lease %q: %w", name, err)
	}
	return nil
}

// --- cutting the log ---

// logRanges is the key set of the Log rows with prevCut < CommitTs ≤ cut
// (or > prevCut if cut is zero) in every possible shard: 256 key ranges,
// a seek each (also on the emulator, which evaluates queries by scanning).
func logRanges(prevCut, cut time.Time) spanner.KeySet {
	ks := make([]spanner.KeySet, MaxShards)
	for sh := range ks {
		end := spanner.Key{int64(sh), cut}
		if cut.IsZero() {
			end = spanner.Key{int64(sh)}
		}
		ks[sh] = spanner.KeyRange{Start: spanner.Key{int64(sh), prevCut}, End: end, Kind: spanner.OpenClosed}
	}
	return spanner.KeySets(ks...)
}

// WaitingSince implements storage.Store with one strong single-use read of
// the waiting rows' commit timestamps (a backlog of 100,000 rows is a few
// megabytes).
func (s *Store) WaitingSince(ctx context.Context, prevCut time.Time, limit int) (int, time.Time, error) {
	if limit < 1 {
		return 0, time.Time{}, fmt.Errorf("couldn't count waiting updates: limit %d", limit)
	}
	ro := s.client.Single()
	var ts []time.Time
	err := ro.Read(ctx, "Log", logRanges(prevCut, time.Time{}), []string{"CommitTs"}).Do(func(r *spanner.Row) error {
		var t time.Time
		if err := r.Column(0, &t); err != nil {
			return err
		}
		ts = append(ts, t.UTC())
		return nil
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("couldn't count waiting updates: %w", err)
	}
	readTs, err := ro.Timestamp()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("couldn't count waiting updates: no read timestamp: %w", err)
	}
	if len(ts) <= limit {
		return len(ts), readTs.UTC(), nil
	}
	slices.SortFunc(ts, time.Time.Compare)
	// More than limit are waiting: cut after the last row whose commit
	// timestamp differs from the next one's, so no commit is split.
	for j := limit - 1; j >= 0; j-- {
		if ts[j].Before(ts[j+1]) {
			return j + 1, ts[j], nil
		}
	}
	// More than limit rows share the first timestamp: take them all.
	n := 0
	for n < len(ts) && ts[n].Equal(ts[0]) {
		n++
	}
	return n, ts[0], nil
}

// ReadLog implements storage.Store. It reads at exactly timestamp cut;
// if that is older than the database's version retention (a redo long
// after the cut), it reads the same rows strongly: rows at or before a
// past strong-read timestamp never change and none can be added.
func (s *Store) ReadLog(ctx context.Context, prevCut, cut time.Time) ([]storage.LogRow, error) {
	if !cut.After(prevCut) {
		return nil, nil
	}
	rows, err := s.readLogRows(ctx, s.client.Single().WithTimestampBound(spanner.ReadTimestamp(cut)), prevCut, cut)
	if spanner.ErrCode(err) == codes.FailedPrecondition {
		rows, err = s.readLogRows(ctx, s.client.Single(), prevCut, cut)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read the log in (%v, %v]: %w", prevCut, cut, err)
	}
	return rows, nil
}

// readLogRows reads the rows in (prevCut, cut] and sorts them in log
// order: (CommitTs, Shard, Seq).
func (s *Store) readLogRows(ctx context.Context, ro *spanner.ReadOnlyTransaction, prevCut, cut time.Time) ([]storage.LogRow, error) {
	var rows []*logRowSQL
	err := ro.Read(ctx, "Log", logRanges(prevCut, cut), logColumns).Do(func(r *spanner.Row) error {
		var l logRowSQL
		if err := r.Columns(&l.Shard, &l.CommitTs, &l.Seq, &l.UserIndex, &l.Record); err != nil {
			return err
		}
		rows = append(rows, &l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rows, func(a, b *logRowSQL) int {
		if c := a.CommitTs.Compare(b.CommitTs); c != 0 {
			return c
		}
		if a.Shard != b.Shard {
			return cmp.Compare(a.Shard, b.Shard)
		}
		return bytes.Compare(a.Seq, b.Seq)
	})
	return decodeLogRows(rows)
}

// --- attempts ---

var attemptColumns = []string{"Epoch", "CutTs", "PrevCutTs", "EpochTime", "Updates", "LeaseToken", "Attempts", "StartedAt", "LastAttemptAt"}

// GetAttempt implements storage.Store.
func (s *Store) GetAttempt(ctx context.Context, n uint64) (*storage.Attempt, error) {
	ni, err := int64Of("epoch", n)
	if err != nil {
		return nil, fmt.Errorf("couldn't read attempt: %w: %w", err, storage.ErrNotFound)
	}
	row, err := s.client.Single().ReadRow(ctx, "EpochAttempts", spanner.Key{ni}, attemptColumns[:6])
	if spanner.ErrCode(err) == codes.NotFound {
		return nil, fmt.Errorf("no attempt at epoch %d: %w", n, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read attempt at epoch %d: %w", n, err)
	}
	return decodeAttempt(row)
}

// decodeAttempt decodes the first six attemptColumns of row, and any
// further columns into extra.
func decodeAttempt(row *spanner.Row, extra ...any) (*storage.Attempt, error) {
	var (
		n, updates, token int64
		cut, t            time.Time
		prev              spanner.NullTime
	)
	if err := row.Columns(append([]any{&n, &cut, &prev, &t, &updates, &token}, extra...)...); err != nil {
		return nil, fmt.Errorf("couldn't decode attempt: %w", err)
	}
	if n < 0 || t.UnixMilli() < 0 {
		return nil, fmt.Errorf("corrupt attempt row %d", n)
	}
	return &storage.Attempt{
		Epoch: uint64(n), PrevCut: fromNullTime(prev), Cut: cut.UTC(),
		Time: uint64(t.UnixMilli()), Token: token, Updates: updates,
	}, nil
}

// maxEpochTime keeps epoch times inside Spanner's TIMESTAMP range.
var maxEpochTime = uint64(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).UnixMilli())

// CreateAttempt implements storage.Store.
func (s *Store) CreateAttempt(ctx context.Context, a storage.Attempt) (*storage.Attempt, error) {
	ni, err := int64Of("epoch", a.Epoch)
	if err != nil {
		return nil, fmt.Errorf("couldn't create attempt: %w", err)
	}
	switch {
	case a.Time > maxEpochTime:
		return nil, fmt.Errorf("couldn't create attempt: epoch time %d out of range", a.Time)
	case a.Updates < 0 || a.Updates > format.MaxBundleRecords:
		return nil, fmt.Errorf("couldn't create attempt: %d updates", a.Updates)
	case a.Epoch == 0 && (!a.Cut.IsZero() || !a.PrevCut.IsZero() || a.Updates != 0):
		return nil, errors.New("couldn't create attempt: the genesis epoch has a zero cut and no updates")
	case a.Epoch > 0 && !a.Cut.After(a.PrevCut):
		return nil, fmt.Errorf("couldn't create attempt: cut %v not after previous cut %v", a.Cut, a.PrevCut)
	}
	var got *storage.Attempt
	_, err = s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		got = nil
		if err := checkToken(ctx, tx, a.Token); err != nil {
			return err
		}
		newest, newestCut, err := newestEpochTx(ctx, tx)
		if err != nil {
			return err
		}
		switch {
		case newest >= ni:
			return fmt.Errorf("epoch %d already committed: %w", a.Epoch, storage.ErrConflict)
		case newest != ni-1:
			return fmt.Errorf("epoch %d is not next (newest committed %d)", a.Epoch, newest)
		case a.Epoch > 0 && !newestCut.Equal(a.PrevCut):
			return fmt.Errorf("previous cut %v is not epoch %d's cut %v", a.PrevCut, newest, newestCut)
		}
		row, err := tx.ReadRow(ctx, "EpochAttempts", spanner.Key{ni}, append(attemptColumns[:6:6], "Attempts"))
		switch {
		case err == nil:
			var attempts int64
			if got, err = decodeAttempt(row, &attempts); err != nil {
				return err
			}
			got.Token = a.Token
			return tx.BufferWrite([]*spanner.Mutation{spanner.Update("EpochAttempts",
				[]string{"Epoch", "LeaseToken", "Attempts", "LastAttemptAt"},
				[]any{ni, a.Token, attempts + 1, spanner.CommitTimestamp})})
		case spanner.ErrCode(err) != codes.NotFound:
			return err
		}
		c := a
		got = &c
		return tx.BufferWrite([]*spanner.Mutation{spanner.Insert("EpochAttempts", attemptColumns, []any{
			ni, a.Cut, nullTime(a.PrevCut), time.UnixMilli(int64(a.Time)).UTC(), a.Updates, a.Token, int64(1),
			spanner.CommitTimestamp, spanner.CommitTimestamp,
		})})
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't create attempt at epoch %d: %w", a.Epoch, err)
	}
	return got, nil
}

// newestEpochTx reads the newest committed epoch (-1 if none) and its cut.
func newestEpochTx(ctx context.Context, tx *spanner.ReadWriteTransaction) (int64, time.Time, error) {
	var (
		newest int64
		cut    time.Time
	)
	found, err := readFirst(ctx, tx, "Epochs", spanner.AllKeys(), []string{"Epoch", "CutTs"}, &newest, &cut)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("couldn't read the newest epoch: %w", err)
	}
	if !found {
		return -1, time.Time{}, nil
	}
	return newest, cut.UTC(), nil
}

// --- leaf records ---

// leafChunk bounds the leaf records of one transaction: about 7
// mutations each (5 columns, the generated Bucket, the index entry).
const leafChunk = 5000

var leafColumns = []string{"UserIndex", "Version", "Epoch", "Record", "Entry"}

// WriteLeafRecords implements storage.Store.
func (s *Store) WriteLeafRecords(ctx context.Context, token int64, n uint64, applied []statemachine.Applied) error {
	ni, err := int64Of("epoch", n)
	if err != nil {
		return fmt.Errorf("couldn't write leaf records: %w", err)
	}
	ms := make([]*spanner.Mutation, len(applied))
	for i, a := range applied {
		if a.Version < 1 || a.Version > 1<<62 || len(a.LeafRecord) != format.LeafRecordSize || len(a.SignedEntry) == 0 {
			return fmt.Errorf("couldn't write leaf records: applied record %d is malformed", i)
		}
		ms[i] = spanner.InsertOrUpdate("LeafRecords", leafColumns, []any{a.Index[:], int64(a.Version), ni, a.LeafRecord, a.SignedEntry})
	}
	step := s.chunk(leafChunk)
	for lo := 0; lo == 0 || lo < len(ms); lo += step {
		chunk := ms[lo:min(lo+step, len(ms))]
		_, err := s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
			if err := checkToken(ctx, tx, token); err != nil {
				return err
			}
			newest, _, err := newestEpochTx(ctx, tx)
			if err != nil {
				return err
			}
			if newest >= ni {
				return fmt.Errorf("epoch %d already committed: %w", n, storage.ErrConflict)
			}
			return tx.BufferWrite(chunk)
		})
		if err != nil {
			return fmt.Errorf("couldn't write leaf records of epoch %d: %w", n, err)
		}
	}
	return nil
}

// --- the epoch commit ---

// rewindChunk bounds the users of one rewind transaction.
const rewindChunk = 2000

var epochColumns = []string{"Epoch", "Head", "TreeRoot", "Checkpoint", "HeadProof", "EpochTime", "CutTs", "PrevCutTs",
	"Updates", "Rejected", "CommittedAt", "PublishedAt"}

// CommitEpoch implements storage.Store.
func (s *Store) CommitEpoch(ctx context.Context, token int64, c storage.EpochCommit) error {
	head, err := checkCommit(&c)
	if err != nil {
		return fmt.Errorf("couldn't commit epoch %d: %w", c.Epoch, err)
	}
	ni := int64(c.Epoch)
	// A retried commit: nothing to do (the rewinds ran before it).
	if e, err := s.GetEpoch(ctx, c.Epoch); err == nil {
		if !bytes.Equal(e.Head, c.Head) {
			return fmt.Errorf("couldn't commit epoch %d: %w", c.Epoch, storage.ErrConflict)
		}
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("couldn't commit epoch %d: %w", c.Epoch, err)
	}
	if err := s.rewind(ctx, token, ni, &c); err != nil {
		return fmt.Errorf("couldn't commit epoch %d: %w", c.Epoch, err)
	}

	var proof []byte
	for _, h := range c.HeadProof {
		proof = append(proof, h[:]...)
	}
	if proof == nil {
		proof = []byte{}
	}
	ms := []*spanner.Mutation{markerMutation(ni, tree.Hash(c.TreeRoot))}
	for _, nd := range c.LogNodes {
		if nd.ID.Level > 63 || nd.ID.Index > 1<<62 {
			return fmt.Errorf("couldn't commit epoch %d: log node (%d, %d) out of range", c.Epoch, nd.ID.Level, nd.ID.Index)
		}
		ms = append(ms, spanner.Insert("EpochLogNodes", []string{"Level", "Idx", "NodeHash"},
			[]any{int64(nd.ID.Level), int64(nd.ID.Index), nd.Hash[:]}))
	}
	for i, r := range c.Rejected {
		row := c.RejectedRows[i]
		ms = append(ms, spanner.Insert("EpochRejections",
			[]string{"Epoch", "Position", "LogShard", "LogCommitTs", "LogSeq", "Reason"},
			[]any{ni, int64(r.Position), row.Shard, row.CommitTs, row.Seq[:], r.Code.String() + ": " + r.Reason}))
	}
	for idx, v := range c.Tombstoned {
		// Profiles are keyed (UserIndex, Version DESC): from (idx, v) to
		// the end of idx's rows are the versions ≤ v.
		ms = append(ms, spanner.Delete("Profiles", spanner.KeyRange{
			Start: spanner.Key{idx[:], int64(v)}, End: spanner.Key{idx[:]}, Kind: spanner.ClosedClosed,
		}))
	}
	_, err = s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		row, err := tx.ReadRow(ctx, "Epochs", spanner.Key{ni}, []string{"Head"})
		if err == nil {
			var h []byte
			if err := row.Column(0, &h); err != nil {
				return err
			}
			if !bytes.Equal(h, c.Head) {
				return storage.ErrConflict
			}
			return errAlreadyCommitted
		}
		if spanner.ErrCode(err) != codes.NotFound {
			return err
		}
		if err := checkToken(ctx, tx, token); err != nil {
			return err
		}
		newest, _, err := newestEpochTx(ctx, tx)
		if err != nil {
			return err
		}
		if newest != ni-1 {
			return fmt.Errorf("epoch %d is not next (newest committed %d)", c.Epoch, newest)
		}
		arow, err := tx.ReadRow(ctx, "EpochAttempts", spanner.Key{ni}, attemptColumns[:6])
		if spanner.ErrCode(err) == codes.NotFound {
			return fmt.Errorf("no attempt recorded for epoch %d", c.Epoch)
		}
		if err != nil {
			return err
		}
		a, err := decodeAttempt(arow)
		if err != nil {
			return err
		}
		if a.Time != head.Time || a.Updates != c.UpdateCount {
			return fmt.Errorf("head (time %d, %d updates) does not match the attempt (time %d, %d updates)",
				head.Time, c.UpdateCount, a.Time, a.Updates)
		}
		var tr treeStore
		latest, _, err := tr.readLatestTx(ctx, tx)
		if err != nil {
			return err
		}
		if c.Epoch > 0 && latest != c.Epoch-1 || c.Epoch == 0 && latest != 0 {
			return fmt.Errorf("tree version %d is committed, want %d", latest, max(int64(c.Epoch)-1, 0))
		}
		epochRow := spanner.Insert("Epochs", epochColumns, []any{
			ni, c.Head, c.TreeRoot[:], c.Checkpoint, proof, time.UnixMilli(int64(head.Time)).UTC(),
			a.Cut, nullTime(a.PrevCut), c.UpdateCount, int64(len(c.Rejected)), spanner.CommitTimestamp, spanner.NullTime{},
		})
		return tx.BufferWrite(append([]*spanner.Mutation{epochRow}, ms...))
	})
	if errors.Is(err, errAlreadyCommitted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("couldn't commit epoch %d: %w", c.Epoch, err)
	}
	return nil
}

var errAlreadyCommitted = errors.New("already committed with the same head")

// checkCommit checks an EpochCommit's internal consistency and returns its
// parsed head.
func checkCommit(c *storage.EpochCommit) (*format.EpochHead, error) {
	if c.Epoch > 1<<62 {
		return nil, fmt.Errorf("epoch %d out of range", c.Epoch)
	}
	head, err := format.ParseEpochHead(c.Head)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse head: %w", err)
	}
	switch {
	case head.Epoch != c.Epoch:
		return nil, fmt.Errorf("head of epoch %d", head.Epoch)
	case head.TreeRoot != c.TreeRoot:
		return nil, errors.New("tree root differs from the head's")
	case c.UpdateCount < 0 || head.UpdateCount != uint64(c.UpdateCount):
		return nil, fmt.Errorf("%d updates, head says %d", c.UpdateCount, head.UpdateCount)
	case len(c.Rejected) != len(c.RejectedRows):
		return nil, fmt.Errorf("%d rejections with %d log rows", len(c.Rejected), len(c.RejectedRows))
	case int64(len(c.Rejected)) > c.UpdateCount:
		return nil, fmt.Errorf("%d rejections of %d updates", len(c.Rejected), c.UpdateCount)
	case head.Time > maxEpochTime:
		return nil, fmt.Errorf("epoch time %d out of range", head.Time)
	case len(c.Checkpoint) == 0:
		return nil, errors.New("no checkpoint")
	case c.Epoch == 0 && c.TreeRoot != tree.Empty:
		return nil, errors.New("genesis tree root is not the empty tree's")
	}
	for i, r := range c.Rejected {
		if r.Position < 0 || int64(r.Position) >= c.UpdateCount {
			return nil, fmt.Errorf("rejection %d at position %d", i, r.Position)
		}
	}
	return head, nil
}

// rewind repairs the pending state (Users rows) of the users with a
// rejected record in epoch n. A user whose row was last moved at or before
// the epoch's cut has all its appends in epochs ≤ n, so its pending entry
// must be its newest applied one (this epoch's leaf records, written
// before, included): if it is not (the rejected entry, typically), the row
// is reset to the applied entry, or deleted if the user has none. A row
// moved after the cut is left alone: a later epoch holds its append. Each
// chunk is a fenced transaction; a redo finds the rows repaired already and
// changes nothing.
func (s *Store) rewind(ctx context.Context, token, n int64, c *storage.EpochCommit) error {
	var users [][32]byte
	seen := map[[32]byte]bool{}
	for _, r := range c.Rejected {
		if r.Index != ([32]byte{}) && !seen[r.Index] {
			seen[r.Index] = true
			users = append(users, r.Index)
		}
	}
	if len(users) == 0 {
		return nil
	}
	a, err := s.GetAttempt(ctx, uint64(n))
	if err != nil {
		return err
	}
	step := s.chunk(rewindChunk)
	for lo := 0; lo < len(users); lo += step {
		chunk := users[lo:min(lo+step, len(users))]
		keys := make([]spanner.Key, len(chunk))
		for i := range chunk {
			keys[i] = spanner.Key{chunk[i][:]}
		}
		_, err := s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
			if err := checkToken(ctx, tx, token); err != nil {
				return err
			}
			type pendingRow struct {
				hash  [32]byte
				moved time.Time
			}
			pending := map[[32]byte]pendingRow{}
			err := tx.Read(ctx, "Users", spanner.KeySetFromKeys(keys...), []string{"UserIndex", "EntryHash", "LogCommitTs"}).Do(func(r *spanner.Row) error {
				var (
					i, h []byte
					ts   time.Time
				)
				if err := r.Columns(&i, &h, &ts); err != nil {
					return err
				}
				if len(i) != 32 || len(h) != 32 {
					return fmt.Errorf("corrupt Users row %x", i)
				}
				pending[[32]byte(i)] = pendingRow{[32]byte(h), ts}
				return nil
			})
			if err != nil {
				return err
			}
			applied, err := newestLeaves(ctx, tx, n, chunk)
			if err != nil {
				return err
			}
			var ms []*spanner.Mutation
			for _, u := range chunk {
				p, ok := pending[u]
				if !ok || p.moved.After(a.Cut) {
					continue // gone, or moved on after the cut
				}
				l, ok := applied[u]
				if !ok {
					ms = append(ms, spanner.Delete("Users", spanner.Key{u[:]}))
					continue
				}
				lr, err := format.ParseLeafRecord(l.Record)
				if err != nil {
					return fmt.Errorf("corrupt leaf record of %x: %w", u, err)
				}
				if lr.EntryHash == p.hash {
					continue // pending is what was applied
				}
				ms = append(ms, spanner.Update("Users", []string{"UserIndex", "Version", "EntryHash", "Entry"},
					[]any{u[:], l.Version, lr.EntryHash[:], l.Entry}))
			}
			return tx.BufferWrite(ms)
		})
		if err != nil {
			return fmt.Errorf("couldn't rewind rejected users: %w", err)
		}
	}
	return nil
}

// --- the outbox ---

// Unpublished implements storage.Store. Epochs are marked in order, so the
// unpublished ones are the newest: it reads newest first and stops at the
// first published one.
func (s *Store) Unpublished(ctx context.Context) ([]uint64, error) {
	it := s.client.Single().Query(ctx, spanner.Statement{SQL: `SELECT Epoch, PublishedAt IS NULL FROM Epochs ORDER BY Epoch DESC`})
	defer it.Stop()
	var out []uint64
	for {
		row, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("couldn't list unpublished epochs: %w", err)
		}
		var (
			n     int64
			unpub bool
		)
		if err := row.Columns(&n, &unpub); err != nil {
			return nil, fmt.Errorf("couldn't list unpublished epochs: %w", err)
		}
		if !unpub {
			break
		}
		out = append(out, uint64(n))
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// MarkPublished implements storage.Store.
func (s *Store) MarkPublished(ctx context.Context, n uint64) error {
	ni, err := int64Of("epoch", n)
	if err != nil {
		return fmt.Errorf("couldn't mark epoch published: %w", err)
	}
	_, err = s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		keys := []spanner.Key{{ni}}
		if ni > 0 {
			keys = append(keys, spanner.Key{ni - 1})
		}
		published := map[int64]bool{}
		err := tx.Read(ctx, "Epochs", spanner.KeySetFromKeys(keys...), []string{"Epoch", "PublishedAt"}).Do(func(r *spanner.Row) error {
			var (
				e int64
				p spanner.NullTime
			)
			if err := r.Columns(&e, &p); err != nil {
				return err
			}
			published[e] = p.Valid
			return nil
		})
		if err != nil {
			return err
		}
		done, ok := published[ni]
		switch {
		case !ok:
			return storage.ErrNotFound
		case done:
			return nil
		case ni > 0 && !published[ni-1]:
			return fmt.Errorf("epoch %d is not marked published yet", ni-1)
		}
		return tx.BufferWrite([]*spanner.Mutation{spanner.Update("Epochs", []string{"Epoch", "PublishedAt"}, []any{ni, spanner.CommitTimestamp})})
	})
	if err != nil {
		return fmt.Errorf("couldn't mark epoch %d published: %w", n, err)
	}
	return nil
}
