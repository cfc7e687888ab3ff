package infra_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/spanner"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"

	"github.com/conifer-kt/conifer/infra"
)

// commitTS marks a column written with spanner.CommitTimestamp: on read it
// must equal the commit timestamp of the transaction that wrote it.
type commitTS struct{}

// row is one row to write: table and column values. Values are []byte,
// int64, string, time.Time, spanner.NullTime or commitTS.
type row struct {
	table string
	cols  map[string]any
}

func (r row) mutation() *spanner.Mutation {
	m := make(map[string]any, len(r.cols))
	for c, v := range r.cols {
		if _, ok := v.(commitTS); ok {
			v = spanner.CommitTimestamp
		}
		m[c] = v
	}
	return spanner.InsertMap(r.table, m)
}

// with returns a copy of r with column c set to v.
func (r row) with(c string, v any) row {
	m := make(map[string]any, len(r.cols))
	for k, x := range r.cols {
		m[k] = x
	}
	m[c] = v
	return row{r.table, m}
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// position encodes a tree position: 32-byte prefix || uint16 depth.
func position(prefix []byte, depth uint16) []byte {
	p := make([]byte, 34)
	copy(p, prefix)
	p[32], p[33] = byte(depth>>8), byte(depth)
	return p
}

var (
	t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Minute)
)

// userIndex is the user of the base rows; its first byte is its shard.
var userIndex = append([]byte{0xa7}, fill(31, 0x11)...)

// baseRows returns one valid row for every table, parents before children.
func baseRows() map[string]row {
	rows := []row{
		{"Log", map[string]any{
			"Shard": int64(0xa7), "CommitTs": commitTS{}, "Seq": fill(16, 1),
			"UserIndex": userIndex, "Record": []byte("log record"),
		}},
		{"Users", map[string]any{
			"UserIndex": userIndex, "Version": int64(1), "EntryHash": fill(32, 2),
			"Entry": []byte("signed entry"), "LogShard": int64(0xa7),
			"LogCommitTs": commitTS{}, "LogSeq": fill(16, 1),
		}},
		{"Profiles", map[string]any{
			"UserIndex": userIndex, "Version": int64(1),
			"Profile": []byte("profile"), "Opening": fill(16, 3),
		}},
		{"LeafRecords", map[string]any{
			"UserIndex": userIndex, "Version": int64(1), "Epoch": int64(1),
			"Record": []byte("leaf record"), "Entry": []byte("signed entry"),
		}},
		{"TreeNodes", map[string]any{
			"Position": position(userIndex[:1], 8), "Version": int64(1), "Node": []byte("node"),
		}},
		{"Epochs", map[string]any{
			"Epoch": int64(1), "Head": []byte("head"), "TreeRoot": fill(32, 4),
			"Checkpoint": []byte("checkpoint note"), "EpochTime": t1, "CutTs": t1,
			"PrevCutTs": spanner.NullTime{}, "Updates": int64(1), "Rejected": int64(1),
			"CommittedAt": commitTS{}, "PublishedAt": spanner.NullTime{},
		}},
		{"EpochAttempts", map[string]any{
			"Epoch": int64(1), "CutTs": t1, "PrevCutTs": spanner.NullTime{}, "EpochTime": t1,
			"Updates": int64(1), "LeaseToken": int64(7), "Attempts": int64(1),
			"StartedAt": commitTS{}, "LastAttemptAt": commitTS{},
		}},
		{"EpochRejections", map[string]any{
			"Epoch": int64(1), "Position": int64(0), "LogShard": int64(0xa7),
			"LogCommitTs": t0, "LogSeq": fill(16, 1), "Reason": "wrong version",
		}},
		{"Cosignatures", map[string]any{
			"Epoch": int64(1), "Verifier": "witness.example/w1",
			"Signature": fill(76, 9), "ReceivedAt": commitTS{},
		}},
		{"EpochLogNodes", map[string]any{
			"Level": int64(0), "Idx": int64(0), "NodeHash": fill(32, 5),
		}},
		{"Leases", map[string]any{
			"Name": "epoch", "Holder": "instance-1", "Token": int64(1),
			"ExpiresAt": t1, "RenewedAt": commitTS{},
		}},
	}
	m := make(map[string]row, len(rows))
	for _, r := range rows {
		m[r.table] = r
	}
	return m
}

// tableOrder lists the tables parents first, and parentOf the interleaving.
var (
	tableOrder = []string{"Log", "Users", "Profiles", "LeafRecords", "TreeNodes", "Epochs",
		"EpochAttempts", "EpochRejections", "Cosignatures", "EpochLogNodes", "Leases"}
	parentOf = map[string]string{
		"Profiles": "Users", "LeafRecords": "Users",
		"EpochRejections": "Epochs", "Cosignatures": "Epochs",
	}
)

// keyOf returns the primary key of a base row.
func keyOf(r row) spanner.Key {
	pk := map[string][]string{
		"Log": {"Shard", "CommitTs", "Seq"}, "Users": {"UserIndex"},
		"Profiles": {"UserIndex", "Version"}, "LeafRecords": {"UserIndex", "Version"},
		"TreeNodes": {"Position", "Version"}, "Epochs": {"Epoch"}, "EpochAttempts": {"Epoch"},
		"EpochRejections": {"Epoch", "Position"}, "Cosignatures": {"Epoch", "Verifier"},
		"EpochLogNodes": {"Level", "Idx"}, "Leases": {"Name"},
	}[r.table]
	var k spanner.Key
	for _, c := range pk {
		k = append(k, r.cols[c])
	}
	return k
}

// checkRow reads r back by key and compares every column; commitTS columns
// must equal ts.
func checkRow(t *testing.T, c *spanner.Client, r row, key spanner.Key, ts time.Time) {
	t.Helper()
	cols := make([]string, 0, len(r.cols))
	for col := range r.cols {
		cols = append(cols, col)
	}
	sort.Strings(cols)
	got, err := c.Single().ReadRow(context.Background(), r.table, key, cols)
	if err != nil {
		t.Fatalf("couldn't read %s row %v: %v", r.table, key, err)
	}
	for _, col := range cols {
		want := r.cols[col]
		if _, ok := want.(commitTS); ok {
			want = ts
		}
		dst := reflect.New(reflect.TypeOf(want))
		if err := got.ColumnByName(col, dst.Interface()); err != nil {
			t.Fatalf("couldn't decode %s.%s: %v", r.table, col, err)
		}
		gotV := dst.Elem().Interface()
		if wt, ok := want.(time.Time); ok {
			if !gotV.(time.Time).Equal(wt) {
				t.Errorf("%s.%s = %v, want %v", r.table, col, gotV, wt)
			}
			continue
		}
		if wn, ok := want.(spanner.NullTime); ok {
			gn := gotV.(spanner.NullTime)
			if gn.Valid != wn.Valid || !gn.Time.Equal(wn.Time) {
				t.Errorf("%s.%s = %v, want %v", r.table, col, gn, wn)
			}
			continue
		}
		if !reflect.DeepEqual(gotV, want) {
			t.Errorf("%s.%s = %#v, want %#v", r.table, col, gotV, want)
		}
	}
}

// TestSchemaRoundTrip writes one row into every table in one transaction
// (commit timestamps included) and reads each back, then exercises the
// outbox update of Epochs.PublishedAt and the generated Bucket columns.
func TestSchemaRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, infra.SchemaDDL())

	rows := baseRows()
	if len(rows) != len(tableOrder) {
		t.Fatalf("base rows cover %d tables, want %d", len(rows), len(tableOrder))
	}
	var ms []*spanner.Mutation
	for _, tbl := range tableOrder {
		ms = append(ms, rows[tbl].mutation())
	}
	ts, err := c.Apply(ctx, ms)
	if err != nil {
		t.Fatalf("couldn't write one row per table: %v", err)
	}
	for _, tbl := range tableOrder {
		r := rows[tbl]
		key := keyOf(r)
		if tbl == "Log" {
			key[1] = ts // the commit timestamp is part of the log's key
		}
		checkRow(t, c, r, key, ts)
	}

	// The outbox: publishing sets PublishedAt to a later commit timestamp.
	ts2, err := c.Apply(ctx, []*spanner.Mutation{spanner.Update("Epochs",
		[]string{"Epoch", "PublishedAt"}, []any{int64(1), spanner.CommitTimestamp})})
	if err != nil {
		t.Fatalf("couldn't mark epoch published: %v", err)
	}
	if !ts2.After(ts) {
		t.Fatalf("second commit timestamp %v not after first %v", ts2, ts)
	}
	published := rows["Epochs"].with("PublishedAt", spanner.NullTime{Time: ts2, Valid: true})
	checkRow(t, c, published, keyOf(published), ts)

	// Generated columns: Bucket is the first byte of the random key.
	for tbl, key := range map[string]spanner.Key{
		"LeafRecords": keyOf(rows["LeafRecords"]),
		"TreeNodes":   keyOf(rows["TreeNodes"]),
	} {
		r, err := c.Single().ReadRow(ctx, tbl, key, []string{"Bucket"})
		if err != nil {
			t.Fatalf("couldn't read %s.Bucket: %v", tbl, err)
		}
		var b []byte
		if err := r.Column(0, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, []byte{0xa7}) {
			t.Errorf("%s.Bucket = %x, want a7", tbl, b)
		}
	}
}

// TestSchemaInterleaving checks the parent-child rules: children need their
// parent, deleting a user cascades to its profiles, and a user with leaf
// records (published history) cannot be deleted.
func TestSchemaInterleaving(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, infra.SchemaDDL())
	rows := baseRows()

	// A child without its parent is refused.
	for child, parent := range parentOf {
		_, err := c.Apply(ctx, []*spanner.Mutation{rows[child].mutation()})
		if spanner.ErrCode(err) != codes.NotFound {
			t.Errorf("%s row without %s parent: err = %v, want NotFound", child, parent, err)
		}
	}

	// User A: profiles only. Deleting the user deletes the profiles.
	a := rows["Users"]
	pa := rows["Profiles"]
	pa2 := pa.with("Version", int64(2))
	if _, err := c.Apply(ctx, []*spanner.Mutation{a.mutation(), pa.mutation(), pa2.mutation()}); err != nil {
		t.Fatalf("couldn't write user with profiles: %v", err)
	}
	if n := countRows(t, c, "SELECT COUNT(*) FROM Profiles"); n != 2 {
		t.Fatalf("profiles before delete = %d, want 2", n)
	}
	if _, err := c.Apply(ctx, []*spanner.Mutation{spanner.Delete("Users", keyOf(a))}); err != nil {
		t.Fatalf("couldn't delete user: %v", err)
	}
	if n := countRows(t, c, "SELECT COUNT(*) FROM Profiles"); n != 0 {
		t.Errorf("profiles after deleting their user = %d, want 0 (ON DELETE CASCADE)", n)
	}

	// User B: a leaf record. Deleting the user is refused and nothing goes.
	uiB := append([]byte{0x05}, fill(31, 0x22)...)
	b := a.with("UserIndex", uiB).with("LogShard", int64(5))
	pb := pa.with("UserIndex", uiB)
	lb := rows["LeafRecords"].with("UserIndex", uiB)
	if _, err := c.Apply(ctx, []*spanner.Mutation{b.mutation(), pb.mutation(), lb.mutation()}); err != nil {
		t.Fatalf("couldn't write user with history: %v", err)
	}
	_, err := c.Apply(ctx, []*spanner.Mutation{spanner.Delete("Users", keyOf(b))})
	if err == nil {
		t.Fatal("deleting a user with leaf records succeeded; want refusal (ON DELETE NO ACTION)")
	}
	if code := spanner.ErrCode(err); code != codes.FailedPrecondition {
		t.Errorf("deleting a user with leaf records: code %v (%v), want FailedPrecondition", code, err)
	}
	for _, q := range []string{"SELECT COUNT(*) FROM Users", "SELECT COUNT(*) FROM Profiles", "SELECT COUNT(*) FROM LeafRecords"} {
		if n := countRows(t, c, q); n != 1 {
			t.Errorf("%s after refused delete = %d, want 1", q, n)
		}
	}

	// Erasure as the update function does it: delete the profiles only.
	if _, err := c.Apply(ctx, []*spanner.Mutation{spanner.Delete("Profiles", spanner.Key{uiB}.AsPrefix())}); err != nil {
		t.Fatalf("couldn't erase profiles: %v", err)
	}
	if n := countRows(t, c, "SELECT COUNT(*) FROM Profiles"); n != 0 {
		t.Errorf("profiles after erasure = %d, want 0", n)
	}
}

func countRows(t *testing.T, c *spanner.Client, sql string) int64 {
	t.Helper()
	var n int64
	err := c.Single().Query(context.Background(), spanner.Statement{SQL: sql}).Do(func(r *spanner.Row) error {
		return r.Column(0, &n)
	})
	if err != nil {
		t.Fatalf("couldn't run %q: %v", sql, err)
	}
	return n
}

// TestSchemaChecks violates every CHECK constraint of schema.sql once and
// expects the constraint, by name, to refuse the write. The constraint list
// is read from the file, so a new constraint without a case here fails.
func TestSchemaChecks(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, infra.SchemaDDL())
	rows := baseRows()

	type violation struct {
		constraint, table, column string
		value                     any
	}
	cases := []violation{
		{"LogShardRange", "Log", "Shard", int64(256)},
		{"LogShardRange", "Log", "Shard", int64(-1)},
		{"LogSeqLength", "Log", "Seq", fill(15, 1)},
		{"LogUserIndexLength", "Log", "UserIndex", fill(31, 1)},
		{"UsersUserIndexLength", "Users", "UserIndex", fill(31, 1)},
		{"UsersVersionPositive", "Users", "Version", int64(0)},
		{"UsersEntryHashLength", "Users", "EntryHash", fill(31, 1)},
		{"UsersLogShardRange", "Users", "LogShard", int64(256)},
		{"UsersLogSeqLength", "Users", "LogSeq", fill(15, 1)},
		{"ProfilesVersionPositive", "Profiles", "Version", int64(0)},
		{"ProfilesOpeningLength", "Profiles", "Opening", fill(15, 1)},
		{"LeafRecordsVersionPositive", "LeafRecords", "Version", int64(0)},
		{"LeafRecordsEpochNonNegative", "LeafRecords", "Epoch", int64(-1)},
		{"TreeNodesPositionLength", "TreeNodes", "Position", fill(33, 0)},
		{"TreeNodesDepthRange", "TreeNodes", "Position", position(nil, 257)},
		{"TreeNodesDepthRange", "TreeNodes", "Position", position(nil, 0xffff)},
		{"TreeNodesVersionNonNegative", "TreeNodes", "Version", int64(-1)},
		{"EpochsEpochNonNegative", "Epochs", "Epoch", int64(-1)},
		{"EpochsTreeRootLength", "Epochs", "TreeRoot", fill(31, 1)},
		{"EpochsCounts", "Epochs", "Rejected", int64(2)},
		{"EpochsCounts", "Epochs", "Updates", int64(-1)},
		{"EpochsCutOrder", "Epochs", "PrevCutTs", spanner.NullTime{Time: t1, Valid: true}},
		{"EpochAttemptsEpochNonNegative", "EpochAttempts", "Epoch", int64(-1)},
		{"EpochAttemptsCutOrder", "EpochAttempts", "PrevCutTs", spanner.NullTime{Time: t1.Add(time.Second), Valid: true}},
		{"EpochAttemptsUpdates", "EpochAttempts", "Updates", int64(-1)},
		{"EpochAttemptsCount", "EpochAttempts", "Attempts", int64(0)},
		{"EpochRejectionsPosition", "EpochRejections", "Position", int64(-1)},
		{"EpochRejectionsLogShardRange", "EpochRejections", "LogShard", int64(-1)},
		{"EpochRejectionsLogSeqLength", "EpochRejections", "LogSeq", fill(15, 1)},
		{"EpochLogNodesLevelRange", "EpochLogNodes", "Level", int64(64)},
		{"EpochLogNodesLevelRange", "EpochLogNodes", "Level", int64(-1)},
		{"EpochLogNodesIdxNonNegative", "EpochLogNodes", "Idx", int64(-1)},
		{"EpochLogNodesHashLength", "EpochLogNodes", "NodeHash", fill(31, 1)},
		{"LeasesTokenPositive", "Leases", "Token", int64(0)},
	}

	covered := map[string]bool{}
	for _, v := range cases {
		covered[v.constraint] = true
		t.Run(fmt.Sprintf("%s/%s=%v", v.constraint, v.column, v.value), func(t *testing.T) {
			var ms []*spanner.Mutation
			if p, ok := parentOf[v.table]; ok {
				ms = append(ms, rows[p].mutation())
			}
			ms = append(ms, rows[v.table].with(v.column, v.value).mutation())
			_, err := c.Apply(ctx, ms)
			if err == nil {
				t.Fatalf("write violating %s succeeded", v.constraint)
			}
			if !strings.Contains(err.Error(), v.constraint) {
				t.Errorf("error does not name %s: %v", v.constraint, err)
			}
		})
	}
	for _, m := range regexp.MustCompile(`CONSTRAINT (\w+) CHECK`).FindAllStringSubmatch(strings.Join(infra.SchemaDDL(), "\n"), -1) {
		if !covered[m[1]] {
			t.Errorf("CHECK constraint %s has no violating case", m[1])
		}
	}

	// The failed writes left nothing behind: the valid rows, including the
	// boundary values next to each violation, all go in.
	ms := []*spanner.Mutation{}
	for _, tbl := range tableOrder {
		ms = append(ms, rows[tbl].mutation())
	}
	boundary := []row{
		rows["TreeNodes"].with("Position", position(fill(32, 0xff), 256)), // deepest leaf
		rows["TreeNodes"].with("Position", position(nil, 0)),              // the root
		rows["EpochLogNodes"].with("Level", int64(63)),
		rows["Log"].with("Shard", int64(255)).with("UserIndex", append([]byte{0xff}, fill(31, 0)...)),
		rows["Log"].with("Shard", int64(0)).with("UserIndex", fill(32, 0)),
	}
	for _, r := range boundary {
		ms = append(ms, r.mutation())
	}
	if _, err := c.Apply(ctx, ms); err != nil {
		t.Fatalf("couldn't write valid and boundary rows after the refused ones: %v", err)
	}
}

// TestSchemaAccessPatterns runs the queries the schema's keys are shaped
// for: the epoch cut of the sharded log, the versioned tree read, and the
// discard of one epoch's rows through the bucketed indexes.
func TestSchemaAccessPatterns(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, infra.SchemaDDL())
	rows := baseRows()

	// Log: three commits, each appending rows in several shards.
	type logKey struct {
		ts    time.Time
		shard int64
		seq   []byte
	}
	var all []logKey
	shardsPerCommit := [][]int64{{200, 3, 255}, {0, 77}, {3, 128, 9, 1}}
	var commits []time.Time
	for i, shards := range shardsPerCommit {
		var ms []*spanner.Mutation
		for j, s := range shards {
			ui := append([]byte{byte(s)}, fill(31, byte(i))...)
			seq := fill(16, byte(10*i+j))
			ms = append(ms, rows["Log"].with("Shard", s).with("UserIndex", ui).with("Seq", seq).mutation())
		}
		ts, err := c.Apply(ctx, ms)
		if err != nil {
			t.Fatalf("couldn't append log commit %d: %v", i, err)
		}
		commits = append(commits, ts)
		for j, s := range shards {
			all = append(all, logKey{ts, s, fill(16, byte(10*i+j))})
		}
	}
	cut := func(prev, cut time.Time) []logKey {
		stmt := spanner.Statement{
			SQL: `SELECT CommitTs, Shard, Seq FROM Log
			      WHERE Shard IN UNNEST(GENERATE_ARRAY(0, 255)) AND CommitTs > @prev AND CommitTs <= @cut
			      ORDER BY CommitTs, Shard, Seq`,
			Params: map[string]any{"prev": prev, "cut": cut},
		}
		var got []logKey
		err := c.Single().Query(ctx, stmt).Do(func(r *spanner.Row) error {
			var k logKey
			if err := r.Columns(&k.ts, &k.shard, &k.seq); err != nil {
				return err
			}
			got = append(got, k)
			return nil
		})
		if err != nil {
			t.Fatalf("couldn't cut the log: %v", err)
		}
		return got
	}
	want := func(prev, cut time.Time) []logKey {
		var w []logKey
		for _, k := range all {
			if k.ts.After(prev) && !k.ts.After(cut) {
				w = append(w, k)
			}
		}
		sort.Slice(w, func(i, j int) bool {
			if !w[i].ts.Equal(w[j].ts) {
				return w[i].ts.Before(w[j].ts)
			}
			if w[i].shard != w[j].shard {
				return w[i].shard < w[j].shard
			}
			return bytes.Compare(w[i].seq, w[j].seq) < 0
		})
		return w
	}
	for _, span := range [][2]time.Time{
		{time.Unix(0, 0), commits[2]},
		{time.Unix(0, 0), commits[0]},
		{commits[0], commits[1]},
		{commits[1], commits[2]},
		{commits[0], commits[2]},
		{commits[2], commits[2].Add(time.Hour)},
	} {
		got, w := cut(span[0], span[1]), want(span[0], span[1])
		if !slices.EqualFunc(got, w, func(a, b logKey) bool {
			return a.ts.Equal(b.ts) && a.shard == b.shard && bytes.Equal(a.seq, b.seq)
		}) {
			t.Errorf("cut (%v, %v] = %v, want %v", span[0], span[1], got, w)
		}
	}

	// TreeNodes: one position at versions 1, 3, 5; a read at v takes the
	// newest version <= v.
	pos := position([]byte{0x80}, 1)
	var ms []*spanner.Mutation
	for _, v := range []int64{1, 3, 5} {
		ms = append(ms, rows["TreeNodes"].with("Position", pos).with("Version", v).
			with("Node", []byte(fmt.Sprintf("node@%d", v))).mutation())
	}
	// Other positions written at version 5, for the discard below.
	v5 := [][]byte{pos}
	for _, b := range []byte{0x00, 0x42, 0xff} {
		p := position([]byte{b, 0x01}, 16)
		v5 = append(v5, p)
		ms = append(ms, rows["TreeNodes"].with("Position", p).with("Version", int64(5)).mutation())
	}
	if _, err := c.Apply(ctx, ms); err != nil {
		t.Fatalf("couldn't write tree nodes: %v", err)
	}
	for v, wantNode := range map[int64]string{0: "", 1: "node@1", 2: "node@1", 3: "node@3", 4: "node@3", 5: "node@5", 9: "node@5"} {
		stmt := spanner.Statement{
			SQL:    `SELECT Node FROM TreeNodes WHERE Position = @p AND Version <= @v ORDER BY Version DESC LIMIT 1`,
			Params: map[string]any{"p": pos, "v": v},
		}
		var got string
		err := c.Single().Query(ctx, stmt).Do(func(r *spanner.Row) error {
			var n []byte
			err := r.Column(0, &n)
			got = string(n)
			return err
		})
		if err != nil {
			t.Fatalf("couldn't read node at version %d: %v", v, err)
		}
		if got != wantNode {
			t.Errorf("node at version %d = %q, want %q", v, got, wantNode)
		}
	}

	allBuckets := make([][]byte, 256)
	for i := range allBuckets {
		allBuckets[i] = []byte{byte(i)}
	}
	stmt := spanner.Statement{
		SQL: `SELECT Position FROM TreeNodes@{FORCE_INDEX=TreeNodesByVersion}
		      WHERE Bucket IN UNNEST(@buckets) AND Version = @v ORDER BY Position`,
		Params: map[string]any{"buckets": allBuckets, "v": int64(5)},
	}
	got := queryBytes(t, c, stmt)
	slices.SortFunc(v5, bytes.Compare)
	if !slices.EqualFunc(got, v5, bytes.Equal) {
		t.Errorf("version-5 nodes through TreeNodesByVersion = %x, want %x", got, v5)
	}

	// LeafRecords of one epoch through LeafRecordsByEpoch.
	ms = nil
	var epoch2 [][]byte
	for i, b := range []byte{0x01, 0x80, 0xfe, 0x33} {
		ui := append([]byte{b}, fill(31, 0x44)...)
		ms = append(ms, rows["Users"].with("UserIndex", ui).with("LogShard", int64(b)).mutation())
		epoch := int64(1 + i%2)
		ms = append(ms, rows["LeafRecords"].with("UserIndex", ui).with("Epoch", epoch).mutation())
		if epoch == 2 {
			epoch2 = append(epoch2, ui)
		}
	}
	if _, err := c.Apply(ctx, ms); err != nil {
		t.Fatalf("couldn't write leaf records: %v", err)
	}
	stmt = spanner.Statement{
		SQL: `SELECT UserIndex FROM LeafRecords@{FORCE_INDEX=LeafRecordsByEpoch}
		      WHERE Bucket IN UNNEST(@buckets) AND Epoch = @e ORDER BY UserIndex`,
		Params: map[string]any{"buckets": allBuckets, "e": int64(2)},
	}
	got = queryBytes(t, c, stmt)
	slices.SortFunc(epoch2, bytes.Compare)
	if !slices.EqualFunc(got, epoch2, bytes.Equal) {
		t.Errorf("epoch-2 leaf records through LeafRecordsByEpoch = %x, want %x", got, epoch2)
	}
}

func queryBytes(t *testing.T, c *spanner.Client, stmt spanner.Statement) [][]byte {
	t.Helper()
	var out [][]byte
	it := c.Single().Query(context.Background(), stmt)
	defer it.Stop()
	for {
		r, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("couldn't run %q: %v", stmt.SQL, err)
		}
		var b []byte
		if err := r.Column(0, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

// TestSchemaStructure reads the applied schema back from
// INFORMATION_SCHEMA and pins the design decisions: primary keys and their
// order, interleaving and delete actions, secondary indexes, commit
// timestamp columns.
func TestSchemaStructure(t *testing.T) {
	c := newTestClient(t, infra.SchemaDDL())

	got := map[string][]string{}
	query(t, c, `SELECT INDEX_NAME, TABLE_NAME, COLUMN_NAME, COLUMN_ORDERING FROM INFORMATION_SCHEMA.INDEX_COLUMNS
	             WHERE TABLE_SCHEMA = '' AND ORDINAL_POSITION IS NOT NULL
	             ORDER BY TABLE_NAME, INDEX_NAME, ORDINAL_POSITION`, func(r *spanner.Row) error {
		var index, table, col string
		var order spanner.NullString
		if err := r.Columns(&index, &table, &col, &order); err != nil {
			return err
		}
		name := table
		if index != "PRIMARY_KEY" {
			name = table + "." + index
		}
		if order.StringVal == "DESC" {
			col += " DESC"
		}
		got[name] = append(got[name], col)
		return nil
	})
	wantKeys := map[string][]string{
		"Log":                            {"Shard", "CommitTs", "Seq"},
		"Users":                          {"UserIndex"},
		"Profiles":                       {"UserIndex", "Version DESC"},
		"LeafRecords":                    {"UserIndex", "Version DESC"},
		"LeafRecords.LeafRecordsByEpoch": {"Bucket", "Epoch"},
		"TreeNodes":                      {"Position", "Version DESC"},
		"TreeNodes.TreeNodesByVersion":   {"Bucket", "Version"},
		"Epochs":                         {"Epoch DESC"},
		"EpochAttempts":                  {"Epoch DESC"},
		"EpochRejections":                {"Epoch DESC", "Position"},
		"Cosignatures":                   {"Epoch DESC", "Verifier"},
		"EpochLogNodes":                  {"Level", "Idx"},
		"Leases":                         {"Name"},
	}
	if !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("keys and indexes:\n got %v\nwant %v", got, wantKeys)
	}

	interleave := map[string]string{}
	query(t, c, `SELECT TABLE_NAME, PARENT_TABLE_NAME, ON_DELETE_ACTION FROM INFORMATION_SCHEMA.TABLES
	             WHERE TABLE_SCHEMA = '' ORDER BY TABLE_NAME`, func(r *spanner.Row) error {
		var table string
		var parent, action spanner.NullString
		if err := r.Columns(&table, &parent, &action); err != nil {
			return err
		}
		interleave[table] = parent.StringVal + " " + action.StringVal
		return nil
	})
	wantInterleave := map[string]string{
		"Log": " ", "Users": " ", "TreeNodes": " ", "Epochs": " ", "EpochAttempts": " ",
		"EpochLogNodes": " ", "Leases": " ",
		"Profiles":        "Users CASCADE",
		"LeafRecords":     "Users NO ACTION",
		"EpochRejections": "Epochs NO ACTION",
		"Cosignatures":    "Epochs NO ACTION",
	}
	if !reflect.DeepEqual(interleave, wantInterleave) {
		t.Errorf("tables (parent, on delete):\n got %q\nwant %q", interleave, wantInterleave)
	}

	var commitCols []string
	query(t, c, `SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMN_OPTIONS
	             WHERE TABLE_SCHEMA = '' AND OPTION_NAME = 'allow_commit_timestamp' AND OPTION_VALUE = 'TRUE'
	             ORDER BY TABLE_NAME, COLUMN_NAME`, func(r *spanner.Row) error {
		var table, col string
		if err := r.Columns(&table, &col); err != nil {
			return err
		}
		commitCols = append(commitCols, table+"."+col)
		return nil
	})
	wantCommit := []string{"Cosignatures.ReceivedAt", "EpochAttempts.LastAttemptAt", "EpochAttempts.StartedAt",
		"Epochs.CommittedAt", "Epochs.PublishedAt", "Leases.RenewedAt", "Log.CommitTs", "Users.LogCommitTs"}
	if !slices.Equal(commitCols, wantCommit) {
		t.Errorf("commit timestamp columns = %v, want %v", commitCols, wantCommit)
	}
}

func query(t *testing.T, c *spanner.Client, sql string, f func(*spanner.Row) error) {
	t.Helper()
	if err := c.Single().Query(context.Background(), spanner.Statement{SQL: sql}).Do(f); err != nil {
		t.Fatalf("couldn't run %q: %v", sql, err)
	}
}
