package format

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestUpdatesRoot compares UpdatesRoot with a plain recursive RFC 6962
// tree hash for every size up to 70, and checks the RFC's empty root.
func TestUpdatesRoot(t *testing.T) {
	if UpdatesRoot(nil) != sha256.Sum256(nil) || UpdatesRoot([][]byte{}) != sha256.Sum256(nil) {
		t.Fatal("empty root is not SHA-256 of the empty string")
	}
	one := UpdatesRoot([][]byte{[]byte("a")})
	if one != sha256.Sum256([]byte("\x00a")) {
		t.Fatal("single record root is not its RFC 6962 leaf hash")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	var recs [][]byte
	seen := map[[32]byte]bool{}
	for n := 0; n <= 70; n++ {
		if got, want := UpdatesRoot(recs), rfc6962Root(recs); got != want {
			t.Fatalf("%d records: root %x, model %x", n, got, want)
		}
		root := UpdatesRoot(recs)
		if seen[root] {
			t.Fatalf("%d records: root repeats", n)
		}
		seen[root] = true
		r := make([]byte, rng.IntN(50))
		fillRandom(rng, r)
		recs = append(recs, r)
	}
	// Order matters.
	a, b := [][]byte{[]byte("x"), []byte("y")}, [][]byte{[]byte("y"), []byte("x")}
	if UpdatesRoot(a) == UpdatesRoot(b) {
		t.Fatal("root ignores order")
	}
}

func TestBundleRules(t *testing.T) {
	f := newFixtures(t)
	one := *f.bundleOne
	tests := []struct {
		name          string
		mut           func(b *Bundle)
		kind          error
		field, reason string
	}{
		{"bad head", func(b *Bundle) { b.Head = b.Head[:25] }, ErrTruncated, "head.realm", "input ends"},
		{"no checkpoint", func(b *Bundle) { b.Checkpoint = nil }, ErrInvalid, "checkpoint", "empty checkpoint"},
		{"checkpoint not UTF-8", func(b *Bundle) { b.Checkpoint = []byte("example.com\n2\n\xff\n") }, ErrInvalid, "checkpoint", "not valid UTF-8"},
		{"checkpoint of another realm", func(b *Bundle) { b.Checkpoint = []byte("example.org\n2\nx\n") }, ErrInvalid, "checkpoint", "origin \"example.org\""},
		{"checkpoint of another size", func(b *Bundle) { b.Checkpoint = []byte("example.com\n3\nx\n") }, ErrInvalid, "checkpoint", "tree size \"3\", want 2"},
		{"checkpoint too big", func(b *Bundle) {
			b.Checkpoint = []byte("example.com\n2\n" + strings.Repeat("x", MaxCheckpointSize) + "\n")
		}, ErrTooLarge, "checkpoint", "more than 65536"},
		{"extra record", func(b *Bundle) { b.Records = append(b.Records, b.Records[0]) }, ErrInvalid, "record_count", "3 records, but the head counts 2"},
		{"bad record", func(b *Bundle) { b.Records = [][]byte{b.Records[0], append(bytes.Clone(b.Records[1]), 0)} }, ErrTrailingData, "records[1].log_record", "trailing"},
		{"record of another realm", func(b *Bundle) {
			e := *f.entryBob
			e.Realm = "example.org"
			eb := mustMarshal(t, &e)
			rec := &LogRecord{SignedEntry: SignedEntry{Entry: eb, Signatures: []Signature{SignEntry(testKey(4), EntryHash(eb))}}, Registration: f.regOIDC}
			b.Records = [][]byte{b.Records[0], mustMarshal(t, rec)}
		}, ErrInvalid, "records[1].log_record.signed_entry.entry.realm", "in a bundle of realm"},
		{"records reordered", func(b *Bundle) { b.Records = [][]byte{b.Records[1], b.Records[0]} }, ErrInvalid, "records", "does not match the head's updates_root"},
	}
	for _, tt := range tests {
		b := one
		b.Records = append([][]byte(nil), one.Records...)
		tt.mut(&b)
		wantField(t, b.Validate(), tt.kind, tt.field, tt.reason)
		_, err := ParseBundle(modelBundle(&b).bytes())
		wantField(t, err, tt.kind, "bundle."+tt.field, tt.reason)
	}
	// A record count larger than the input is rejected before allocating.
	enc := modelBundle(f.bundleGenesis).bytes()
	enc[len(enc)-4] = 0x7f
	_, err := ParseBundle(enc)
	wantField(t, err, ErrTooLarge, "bundle.record_count", "more than")
	enc[len(enc)-4], enc[len(enc)-2] = 0, 0x10
	_, err = ParseBundle(enc)
	wantField(t, err, ErrTruncated, "bundle.records", "input ends")
}

func TestSplitJoin(t *testing.T) {
	f := newFixtures(t)
	enc := mustMarshal(t, f.bundleTwo)
	header := chunkHeaderSize(fixtureRealm)
	for _, limit := range []int{header + 1, header + 7, 200, 500, len(enc) + header - 1, len(enc) + header, MaxChunkSize} {
		chunks, err := SplitBundle(enc, limit)
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		wantParts := (len(enc) + limit - header - 1) / (limit - header)
		if len(chunks) != wantParts {
			t.Fatalf("limit %d: %d chunks, want %d", limit, len(chunks), wantParts)
		}
		var wire [][]byte
		for i := range chunks {
			b := mustMarshal(t, &chunks[i])
			if len(b) > limit {
				t.Fatalf("limit %d: chunk %d is %d bytes", limit, i, len(b))
			}
			wire = append(wire, b)
		}
		// Receive in a shuffled order, through the wire encoding.
		rng := rand.New(rand.NewPCG(uint64(limit), 9))
		rng.Shuffle(len(wire), func(i, j int) { wire[i], wire[j] = wire[j], wire[i] })
		var got []BundleChunk
		for _, w := range wire {
			c, err := ParseBundleChunk(w)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, *c)
		}
		b, err := JoinBundle(got)
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		if !bytes.Equal(mustMarshal(t, b), enc) {
			t.Fatalf("limit %d: joined bundle differs", limit)
		}
	}

	chunks, err := SplitBundle(enc, 300)
	if err != nil || len(chunks) < 4 {
		t.Fatalf("%d chunks, %v", len(chunks), err)
	}
	mangle := func(mut func([]BundleChunk) []BundleChunk) error {
		c := append([]BundleChunk(nil), chunks...)
		return func() error { _, err := JoinBundle(mut(c)); return err }()
	}
	other, _ := SplitBundle(mustMarshal(t, f.bundleOne), 300)
	tests := []struct {
		name          string
		mut           func([]BundleChunk) []BundleChunk
		field, reason string
	}{
		{"none", func(c []BundleChunk) []BundleChunk { return nil }, "chunks", "no chunks"},
		{"missing", func(c []BundleChunk) []BundleChunk { return c[1:] }, "chunks", "part 0 of"},
		{"missing last", func(c []BundleChunk) []BundleChunk { return c[:len(c)-1] }, "chunks", "is missing"},
		{"duplicate", func(c []BundleChunk) []BundleChunk { c[1] = c[2]; return c }, "chunks[2].part", "duplicate part 2"},
		{"too many", func(c []BundleChunk) []BundleChunk { return append(c, c[0]) }, "chunks", "chunks for a bundle of"},
		{"other epoch", func(c []BundleChunk) []BundleChunk { c[1].Epoch++; return c }, "chunks[1].epoch", "epoch 3, but chunks[0] has 2"},
		{"other realm", func(c []BundleChunk) []BundleChunk { c[2].Realm = "example.org"; return c }, "chunks[2].realm", "realm \"example.org\""},
		{"other parts", func(c []BundleChunk) []BundleChunk { c[3].Parts++; return c }, "chunks[3].parts", "but chunks[0] says"},
		{"other digest", func(c []BundleChunk) []BundleChunk { c[1].Digest[0] ^= 1; return c }, "chunks[1].digest", "differs"},
		{"mixed bundles", func(c []BundleChunk) []BundleChunk {
			c[1].Data = other[1].Data
			return c
		}, "chunks", "does not match the chunks' digest"},
		{"flipped data", func(c []BundleChunk) []BundleChunk {
			c[0].Data = bytes.Clone(c[0].Data)
			c[0].Data[40] ^= 1
			return c
		}, "chunks", "does not match the chunks' digest"},
		{"invalid chunk", func(c []BundleChunk) []BundleChunk { c[2].Part = c[2].Parts; return c }, "chunks[2].bundle_chunk.part", "parts count from 0"},
	}
	for _, tt := range tests {
		wantField(t, mangle(tt.mut), ErrMalformed, tt.field, tt.reason)
	}
	// Chunks whose digest and data agree but whose head is of another
	// epoch than they claim.
	lie := append([]BundleChunk(nil), chunks...)
	for i := range lie {
		lie[i].Epoch = 7
	}
	_, err = JoinBundle(lie)
	wantField(t, err, ErrInvalid, "chunks", "but the bundle's head is realm")

	// Split refuses impossible sizes and bad bundles.
	_, err = SplitBundle(enc, header)
	wantField(t, err, ErrInvalid, "bundle_chunk", "no room for data")
	_, err = SplitBundle(enc, MaxChunkSize+1)
	wantField(t, err, ErrTooLarge, "bundle_chunk", "more than")
	_, err = SplitBundle(enc[:len(enc)-1], 500)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("split of a truncated bundle: %v", err)
	}

	// Chunk rules.
	c := chunks[0]
	for _, tt := range []struct {
		mut           func(*BundleChunk)
		kind          error
		field, reason string
	}{
		{func(c *BundleChunk) { c.Parts = 0 }, ErrInvalid, "parts", "0 parts"},
		{func(c *BundleChunk) { c.Parts = MaxChunkParts + 1 }, ErrTooLarge, "parts", "more than 65536"},
		{func(c *BundleChunk) { c.Data = nil }, ErrInvalid, "data", "empty data"},
		{func(c *BundleChunk) { c.Realm = "" }, ErrInvalid, "realm", "empty realm"},
	} {
		x := c
		tt.mut(&x)
		wantField(t, x.Validate(), tt.kind, tt.field, tt.reason)
		_, err := ParseBundleChunk(modelBundleChunk(&x).bytes())
		wantField(t, err, tt.kind, "bundle_chunk."+tt.field, tt.reason)
	}
	huge := c
	huge.Data = make([]byte, MaxChunkSize-header+1)
	wantField(t, huge.Validate(), ErrTooLarge, "data", "more than 9000000")
	huge.Data = huge.Data[:MaxChunkSize-header]
	if b := mustMarshal(t, &huge); len(b) != MaxChunkSize {
		t.Fatalf("largest chunk is %d bytes", len(b))
	}
}
