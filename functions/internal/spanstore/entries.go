package spanstore

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/spanner"
	"github.com/transparency-dev/merkle/compact"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/statemachine"
)

// entries is statemachine.Entries over LeafRecords.
type entries struct{ s *Store }

// entriesChunk bounds the indexes of one read.
const entriesChunk = 10000

type latestRow struct {
	Version int64
	Record  []byte
	Entry   []byte
}

// rowReader is what single-use and read-write transactions share.
type rowReader interface {
	Read(ctx context.Context, table string, keys spanner.KeySet, columns []string) *spanner.RowIterator
}

// newestLeaves reads, for each index, its leaf record with the largest
// version among those of epochs ≤ v, in one read of each user's rows
// (LeafRecords is keyed (UserIndex, Version DESC); a user's history is
// short: one row per applied version).
func newestLeaves(ctx context.Context, r rowReader, v int64, indexes [][32]byte) (map[[32]byte]*latestRow, error) {
	out := make(map[[32]byte]*latestRow, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	ks := make([]spanner.KeySet, len(indexes))
	for i := range indexes {
		ks[i] = spanner.KeyRange{Start: spanner.Key{indexes[i][:]}, End: spanner.Key{indexes[i][:]}, Kind: spanner.ClosedClosed}
	}
	err := r.Read(ctx, "LeafRecords", spanner.KeySets(ks...), []string{"UserIndex", "Version", "Epoch", "Record", "Entry"}).Do(func(row *spanner.Row) error {
		var (
			idx   []byte
			epoch int64
			l     latestRow
		)
		if err := row.Columns(&idx, &l.Version, &epoch, &l.Record, &l.Entry); err != nil {
			return err
		}
		if len(idx) != 32 {
			return fmt.Errorf("leaf record row with a %d-byte index", len(idx))
		}
		if epoch > v {
			return nil // of a later (or uncommitted) epoch
		}
		if cur := out[[32]byte(idx)]; cur == nil || l.Version > cur.Version {
			out[[32]byte(idx)] = &l
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Latest implements statemachine.Entries: a point read that version is
// committed, then one read per entriesChunk indexes.
func (e entries) Latest(ctx context.Context, version uint64, indexes [][32]byte) (map[[32]byte]statemachine.Latest, error) {
	v, err := int64Of("version", version)
	if err != nil {
		return nil, fmt.Errorf("couldn't read latest entries: %w", err)
	}
	if _, err := e.s.client.Single().ReadRow(ctx, "Epochs", spanner.Key{v}, []string{"Epoch"}); err != nil {
		return nil, fmt.Errorf("couldn't read latest entries at epoch %d (not committed?): %w", version, err)
	}
	out := make(map[[32]byte]statemachine.Latest, len(indexes))
	for lo := 0; lo < len(indexes); lo += entriesChunk {
		got, err := newestLeaves(ctx, e.s.client.Single(), v, indexes[lo:min(lo+entriesChunk, len(indexes))])
		if err != nil {
			return nil, fmt.Errorf("couldn't read latest entries: %w", err)
		}
		for idx, l := range got {
			out[idx] = statemachine.Latest{LeafRecord: l.Record, SignedEntry: l.Entry}
		}
	}
	return out, nil
}

// logHashes is checkpoint.HashReader over EpochLogNodes. Stored hashes
// never change and only committed epochs have any, so any read sees a
// consistent set.
type logHashes struct{ s *Store }

// logReadTimeout bounds ReadHashes, whose interface has no context.
const logReadTimeout = 30 * time.Second

// ReadHashes implements checkpoint.HashReader: one batched read.
func (l logHashes) ReadHashes(ids []compact.NodeID) ([][32]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), logReadTimeout)
	defer cancel()
	out := make([][32]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var keys []spanner.Key
	pos := make(map[[2]int64][]int, len(ids))
	for i, id := range ids {
		if id.Level > 63 || id.Index > 1<<62 {
			return nil, fmt.Errorf("couldn't read log node (%d, %d): %w", id.Level, id.Index, checkpoint.ErrNodeNotFound)
		}
		k := [2]int64{int64(id.Level), int64(id.Index)}
		if _, ok := pos[k]; !ok {
			keys = append(keys, spanner.Key{k[0], k[1]})
		}
		pos[k] = append(pos[k], i)
	}
	found := make(map[[2]int64]bool, len(keys))
	err := l.s.client.Single().Read(ctx, "EpochLogNodes", spanner.KeySetFromKeys(keys...), []string{"Level", "Idx", "NodeHash"}).Do(func(r *spanner.Row) error {
		var (
			k [2]int64
			h []byte
		)
		if err := r.Columns(&k[0], &k[1], &h); err != nil {
			return err
		}
		if len(h) != 32 {
			return fmt.Errorf("log node (%d, %d) has %d bytes", k[0], k[1], len(h))
		}
		for _, i := range pos[k] {
			out[i] = [32]byte(h)
		}
		found[k] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't read log nodes: %w", err)
	}
	for _, id := range ids {
		if !found[[2]int64{int64(id.Level), int64(id.Index)}] {
			return nil, fmt.Errorf("couldn't read log node (%d, %d): %w", id.Level, id.Index, checkpoint.ErrNodeNotFound)
		}
	}
	return out, nil
}
