package spanstore

import (
	"bytes"
	"context"
	"fmt"

	"cloud.google.com/go/spanner"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"

	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/tree"
)

// The tree store keeps tree.Nodes in TreeNodes, one row per (position,
// version that wrote it):
//
//	Position = prefix[32] || depth:uint16be   (tree.NodeID)
//	Version  = the tree version (epoch) that wrote the node
//	Node     = tree.AppendNode encoding (internal, leaf or deleted marker)
//
// and one marker row per committed version at the reserved Position
// markerPos (0xff×32 || 0x0000, not a canonical NodeID: depth 0 has an
// all-zero prefix), whose Node is the version's 32-byte root. The newest
// marker is the latest committed version; none means version 0, the empty
// tree. A read at version v takes, per position, the row with the largest
// Version ≤ v, and fails with tree.ErrNotCommitted if v is above the newest
// marker — both in one query, so the check and the read see one snapshot.

// markerPos is the reserved Position of the version markers.
var markerPos = append(bytes.Repeat([]byte{0xff}, 32), 0, 0)

// nodeChunk bounds the nodes of one write transaction: a node row costs
// about 5 mutations (3 columns, the generated Bucket, the index entry), so
// a chunk stays near 20,000, far below Spanner's 80,000 per commit.
const nodeChunk = 4096

// readChunk bounds the positions of one query (34 bytes each: ~700 KB of
// parameters). Bigger ReadNodes calls run as several queries in parallel;
// nodes at committed versions never change, so they need no common
// snapshot beyond each query's own version check.
const readChunk = 20000

type treeStore struct {
	s      *Store
	fenced bool
	token  int64
}

var _ tree.Store = (*treeStore)(nil)

func encodePosition(id tree.NodeID) []byte {
	p := make([]byte, 34)
	copy(p, id.Prefix[:])
	p[32], p[33] = byte(id.Depth>>8), byte(id.Depth)
	return p
}

func decodePosition(p []byte) (tree.NodeID, error) {
	var id tree.NodeID
	if len(p) != 34 {
		return id, fmt.Errorf("position of %d bytes, want 34: %w", len(p), tree.ErrCorrupt)
	}
	copy(id.Prefix[:], p[:32])
	id.Depth = uint16(p[32])<<8 | uint16(p[33])
	if err := id.Check(); err != nil {
		return id, fmt.Errorf("stored position %x: %w: %w", p, tree.ErrCorrupt, err)
	}
	return id, nil
}

// markerRange is the key range of the version markers, newest first.
var markerRange = spanner.KeyRange{Start: spanner.Key{markerPos}, End: spanner.Key{markerPos}, Kind: spanner.ClosedClosed}

// readLatest reads the newest marker: the latest committed version and
// its root (0 and Empty if none).
func readLatest(ctx context.Context, r firstReader) (uint64, tree.Hash, error) {
	var (
		v    int64
		pos  []byte
		node []byte
	)
	found, err := readFirst(ctx, r, "TreeNodes", markerRange, nodeColumns, &pos, &v, &node)
	if err != nil {
		return 0, tree.Hash{}, fmt.Errorf("couldn't read the latest tree version: %w", err)
	}
	if !found {
		return 0, tree.Empty, nil
	}
	if v < 0 || len(node) != 32 {
		return 0, tree.Hash{}, fmt.Errorf("version marker %d with a %d-byte root: %w", v, len(node), tree.ErrCorrupt)
	}
	return uint64(v), tree.Hash(node), nil
}

// Latest implements tree.Store.
func (t *treeStore) Latest(ctx context.Context) (uint64, tree.Hash, error) {
	return readLatest(ctx, t.s.client.Single())
}

// readNodesSQL reads, for each position (with its offset in @ps), the
// newest row with Version ≤ @v, and the latest committed version.
const readNodesSQL = `SELECT
  (SELECT Version FROM TreeNodes WHERE Position = @marker ORDER BY Version DESC LIMIT 1) AS Latest,
  ARRAY(
    SELECT AS STRUCT o AS Off, t.Node AS Node
    FROM UNNEST(@ps) AS p WITH OFFSET AS o
    JOIN TreeNodes AS t ON t.Position = p
      AND t.Version = (SELECT MAX(t2.Version) FROM TreeNodes AS t2 WHERE t2.Position = p AND t2.Version <= @v)
  ) AS Nodes`

type offNode struct {
	Off  int64
	Node []byte
}

// ReadNodes implements tree.Store: one query per readChunk distinct
// positions (one round trip for every proof and most updates).
func (t *treeStore) ReadNodes(ctx context.Context, v uint64, ids []tree.NodeID) ([]tree.Node, error) {
	vi, err := int64Of("version", v)
	if err != nil {
		return nil, fmt.Errorf("couldn't read tree nodes: %w", err)
	}
	// Distinct positions, in first-seen order.
	slot := make(map[tree.NodeID]int, len(ids))
	var distinct []tree.NodeID
	for _, id := range ids {
		if err := id.Check(); err != nil {
			return nil, fmt.Errorf("couldn't read tree nodes: %w", err)
		}
		if _, ok := slot[id]; !ok {
			slot[id] = len(distinct)
			distinct = append(distinct, id)
		}
	}
	found := make([]tree.Node, len(distinct))
	for i, id := range distinct {
		found[i] = tree.Node{ID: id}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	// At least one query, even for no ids: it checks v is committed.
	for lo := 0; lo == 0 || lo < len(distinct); lo += readChunk {
		hi := min(lo+readChunk, len(distinct))
		g.Go(func() error { return t.readChunk(gctx, vi, distinct[lo:hi], found[lo:hi]) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]tree.Node, len(ids))
	for i, id := range ids {
		out[i] = found[slot[id]]
	}
	return out, nil
}

// readChunk reads the nodes of ids into out (pre-filled as Absent).
func (t *treeStore) readChunk(ctx context.Context, v int64, ids []tree.NodeID, out []tree.Node) error {
	if t.s.emulator && !t.s.queryReads {
		return t.readChunkRanges(ctx, v, ids, out)
	}
	return t.readChunkQuery(ctx, v, ids, out)
}

// readChunkQuery is readChunk for real Spanner: one query, a seek per
// position (the correlated MAX over the (Position, Version DESC) key).
func (t *treeStore) readChunkQuery(ctx context.Context, v int64, ids []tree.NodeID, out []tree.Node) error {
	ps := make([][]byte, len(ids))
	for i, id := range ids {
		ps[i] = encodePosition(id)
	}
	stmt := spanner.Statement{SQL: readNodesSQL, Params: map[string]any{"marker": markerPos, "ps": ps, "v": v}}
	var (
		latest spanner.NullInt64
		nodes  []*offNode
	)
	err := t.s.client.Single().Query(ctx, stmt).Do(func(r *spanner.Row) error {
		return r.Columns(&latest, &nodes)
	})
	if err != nil {
		return fmt.Errorf("couldn't read tree nodes: %w", err)
	}
	if !latest.Valid {
		latest.Int64 = 0
	}
	if v > latest.Int64 {
		return fmt.Errorf("couldn't read tree nodes at version %d (latest %d): %w", v, latest.Int64, tree.ErrNotCommitted)
	}
	for _, n := range nodes {
		if n == nil || n.Off < 0 || n.Off >= int64(len(ids)) {
			return fmt.Errorf("couldn't read tree nodes: query returned a bad offset: %w", tree.ErrCorrupt)
		}
		if err := setNode(&out[n.Off], ids[n.Off], n.Node); err != nil {
			return err
		}
	}
	return nil
}

// readChunkRanges is readChunk for the emulator, which evaluates queries by
// scanning but reads key ranges by seeking: one read of, per position,
// the key range from (position, v) to the position's oldest row, plus the
// markers of the versions ≥ v (present iff v is committed). It returns
// every version ≤ v of each position (the newest wins), which is fine for
// test-sized histories but not for a long-lived database, where the root
// is rewritten every epoch.
func (t *treeStore) readChunkRanges(ctx context.Context, v int64, ids []tree.NodeID, out []tree.Node) error {
	ks := make([]spanner.KeySet, 0, len(ids)+1)
	slot := make(map[string]int, len(ids))
	for i, id := range ids {
		p := encodePosition(id)
		slot[string(p)] = i
		ks = append(ks, spanner.KeyRange{Start: spanner.Key{p, v}, End: spanner.Key{p}, Kind: spanner.ClosedClosed})
	}
	ks = append(ks, spanner.KeyRange{Start: spanner.Key{markerPos}, End: spanner.Key{markerPos, v}, Kind: spanner.ClosedClosed})
	best := make([]int64, len(ids))
	for i := range best {
		best[i] = -1
	}
	committed := v == 0
	err := t.s.client.Single().Read(ctx, "TreeNodes", spanner.KeySets(ks...), nodeColumns).Do(func(r *spanner.Row) error {
		var (
			p, node []byte
			ver     int64
		)
		if err := r.Columns(&p, &ver, &node); err != nil {
			return err
		}
		if bytes.Equal(p, markerPos) {
			committed = true
			return nil
		}
		i, ok := slot[string(p)]
		if !ok || ver > v {
			return fmt.Errorf("read returned an unasked row: %w", tree.ErrCorrupt)
		}
		if ver > best[i] {
			best[i] = ver
			out[i] = tree.Node{ID: ids[i]}
			return setNode(&out[i], ids[i], node)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("couldn't read tree nodes: %w", err)
	}
	if !committed {
		return fmt.Errorf("couldn't read tree nodes at version %d: %w", v, tree.ErrNotCommitted)
	}
	return nil
}

// setNode parses a stored node into *dst (Absent for a deletion marker).
func setNode(dst *tree.Node, id tree.NodeID, b []byte) error {
	node, err := tree.ParseNode(id, b)
	if err != nil {
		return fmt.Errorf("couldn't parse tree node at %v: %w: %w", id, tree.ErrCorrupt, err)
	}
	if node.Kind == tree.Deleted {
		node = tree.Node{ID: id}
	}
	*dst = node
	return nil
}

// readLatestTx reads the latest committed version inside a read-write
// transaction (locking the marker range against concurrent commits), and
// checks the fencing token if the store is fenced.
func (t *treeStore) readLatestTx(ctx context.Context, tx *spanner.ReadWriteTransaction) (uint64, tree.Hash, error) {
	if t.fenced {
		if err := checkToken(ctx, tx, t.token); err != nil {
			return 0, tree.Hash{}, err
		}
	}
	return readLatest(ctx, tx)
}

// checkNext returns ErrCommitted or ErrVersionGap unless v = latest+1.
func checkNext(v, latest uint64) error {
	switch {
	case v <= latest:
		return fmt.Errorf("version %d, latest committed %d: %w", v, latest, tree.ErrCommitted)
	case v > latest+1:
		return fmt.Errorf("version %d, latest committed %d: %w", v, latest, tree.ErrVersionGap)
	}
	return nil
}

var nodeColumns = []string{"Position", "Version", "Node"}

// WriteNodes implements tree.Store: each chunk of nodes in one read-write
// transaction that first checks the version is Latest+1 (and the lease
// token, if fenced).
func (t *treeStore) WriteNodes(ctx context.Context, v uint64, nodes []tree.Node) error {
	vi, err := int64Of("version", v)
	if err != nil {
		return fmt.Errorf("couldn't write tree nodes: %w", err)
	}
	for i := range nodes {
		if nodes[i].Kind == tree.Absent {
			return fmt.Errorf("couldn't write tree node %v: Absent is never written: %w", nodes[i].ID, tree.ErrMalformedNode)
		}
		if err := nodes[i].Check(); err != nil {
			return fmt.Errorf("couldn't write tree node: %w", err)
		}
	}
	step := t.s.chunk(nodeChunk)
	for lo := 0; lo < len(nodes); lo += step {
		chunk := nodes[lo:min(lo+step, len(nodes))]
		ms := make([]*spanner.Mutation, len(chunk))
		for i := range chunk {
			ms[i] = spanner.InsertOrUpdate("TreeNodes", nodeColumns,
				[]any{encodePosition(chunk[i].ID), vi, tree.AppendNode(nil, &chunk[i])})
		}
		_, err := t.s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
			latest, _, err := t.readLatestTx(ctx, tx)
			if err != nil {
				return err
			}
			if err := checkNext(v, latest); err != nil {
				return err
			}
			return tx.BufferWrite(ms)
		})
		if err != nil {
			return fmt.Errorf("couldn't write tree nodes of version %d: %w", v, err)
		}
	}
	return nil
}

// Commit implements tree.Store: it writes the marker of version v. (The
// epoch path commits a version through storage.Store.CommitEpoch instead,
// together with its epoch.)
func (t *treeStore) Commit(ctx context.Context, v uint64, root tree.Hash) error {
	vi, err := int64Of("version", v)
	if err != nil {
		return fmt.Errorf("couldn't commit tree version: %w", err)
	}
	_, err = t.s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		latest, latestRoot, err := t.readLatestTx(ctx, tx)
		if err != nil {
			return err
		}
		if v == latest && root == latestRoot {
			return nil // the idempotent repeat of the last commit
		}
		if err := checkNext(v, latest); err != nil {
			return err
		}
		return tx.BufferWrite([]*spanner.Mutation{markerMutation(vi, root)})
	})
	if err != nil {
		return fmt.Errorf("couldn't commit tree version %d: %w", v, err)
	}
	return nil
}

func markerMutation(v int64, root tree.Hash) *spanner.Mutation {
	return spanner.Insert("TreeNodes", nodeColumns, []any{markerPos, v, root[:]})
}

// Discard implements tree.Store: it lists the version's nodes through
// TreeNodesByVersion and deletes them in chunks, each in a transaction
// that checks v is still uncommitted (and the lease token, if fenced).
func (t *treeStore) Discard(ctx context.Context, v uint64) error {
	vi, err := int64Of("version", v)
	if err != nil {
		return fmt.Errorf("couldn't discard tree version: %w", err)
	}
	for {
		latest, _, err := readLatest(ctx, t.s.client.Single())
		if err != nil {
			return fmt.Errorf("couldn't discard tree version %d: %w", v, err)
		}
		if v <= latest {
			return fmt.Errorf("couldn't discard tree version %d: %w", v, tree.ErrCommitted)
		}
		// The version's rows through TreeNodesByVersion (Bucket, Version):
		// one key prefix per bucket.
		ks := make([]spanner.KeySet, len(allBuckets))
		for i, b := range allBuckets {
			ks[i] = spanner.Key{b, vi}.AsPrefix()
		}
		var ps [][]byte
		err = t.s.client.Single().ReadUsingIndex(ctx, "TreeNodes", "TreeNodesByVersion", spanner.KeySets(ks...), []string{"Position"}).Do(func(r *spanner.Row) error {
			var p []byte
			if err := r.Column(0, &p); err != nil {
				return err
			}
			ps = append(ps, p)
			return nil
		})
		if err != nil {
			return fmt.Errorf("couldn't list tree nodes of version %d: %w", v, err)
		}
		if len(ps) == 0 {
			if t.fenced {
				// Nothing to delete, but a fenced caller must still learn
				// that it lost the lease.
				_, err := t.s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
					return checkToken(ctx, tx, t.token)
				})
				if err != nil {
					return fmt.Errorf("couldn't discard tree version %d: %w", v, err)
				}
			}
			return nil
		}
		step := t.s.chunk(4 * nodeChunk)
		for lo := 0; lo < len(ps); lo += step {
			chunk := ps[lo:min(lo+step, len(ps))]
			ks := make([]spanner.Key, len(chunk))
			for i, p := range chunk {
				ks[i] = spanner.Key{p, vi}
			}
			_, err := t.s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
				latest, _, err := t.readLatestTx(ctx, tx)
				if err != nil {
					return err
				}
				if v <= latest {
					return fmt.Errorf("version %d, latest committed %d: %w", v, latest, tree.ErrCommitted)
				}
				return tx.BufferWrite([]*spanner.Mutation{spanner.Delete("TreeNodes", spanner.KeySetFromKeys(ks...))})
			})
			if err != nil {
				return fmt.Errorf("couldn't discard tree version %d: %w", v, err)
			}
		}
		// List again: a concurrent writer may have added nodes meanwhile
		// (tree.Store leaves that case unspecified; one more pass is cheap).
		if len(ps) < 4*nodeChunk {
			return nil
		}
	}
}

// checkToken fails with storage.ErrFenced unless token is the current token
// of the epoch lease. Reading the lease row in the transaction makes a
// concurrent takeover conflict with it.
func checkToken(ctx context.Context, tx *spanner.ReadWriteTransaction, token int64) error {
	row, err := tx.ReadRow(ctx, "Leases", spanner.Key{storage.EpochLease}, []string{"Token"})
	if spanner.ErrCode(err) == codes.NotFound {
		return fmt.Errorf("no epoch lease taken, token %d: %w", token, storage.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("couldn't read the epoch lease: %w", err)
	}
	var cur int64
	if err := row.Column(0, &cur); err != nil {
		return fmt.Errorf("couldn't read the epoch lease: %w", err)
	}
	if cur != token {
		return fmt.Errorf("lease token %d, current %d: %w", token, cur, storage.ErrFenced)
	}
	return nil
}
