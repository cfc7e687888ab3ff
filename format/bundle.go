package format

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// Bundle and chunk limits.
const (
	// MaxCheckpointSize caps the signed note carried in a bundle: 64 KiB,
	// the checkpoint package's limit on a note (room for many
	// co-signatures when the feed serves an old epoch).
	MaxCheckpointSize = 64 << 10
	// MaxBundleRecords caps the log records of one epoch (and so an
	// EpochHead's UpdateCount). The epoch function must cut epochs below it.
	MaxBundleRecords = 1 << 20
	// MaxBundleSize caps an encoded bundle (1 GiB).
	MaxBundleSize = 1 << 30
	// MaxChunkSize caps an encoded BundleChunk, keeping each Pub/Sub
	// message below its 10 MB limit with room for attributes.
	MaxChunkSize = 9_000_000
	// MaxChunkParts caps the number of chunks of one bundle.
	MaxChunkParts = 1 << 16
)

// Bundle is everything a verifier needs to check and co-sign one epoch: the
// epoch head, the keyserver's checkpoint of the epoch log that includes it,
// and the epoch's log records in order. Pub/Sub carries it (in chunks, see
// SplitBundle) and the feed function serves it.
//
// Rules (Validate): Head is a canonical EpochHead; Checkpoint is 1..65536
// bytes of UTF-8 text ending in a newline, whose first line (origin) is the
// head's realm and second line (tree size) is head.Epoch+1; there are
// exactly head.UpdateCount records, each a canonical LogRecord of an entry
// in the head's realm; UpdatesRoot(Records) equals head.UpdatesRoot.
type Bundle struct {
	// Head is a canonical encoded EpochHead.
	Head []byte
	// Checkpoint is the signed note text of the epoch log at size
	// Epoch+1 (see the checkpoint package).
	Checkpoint []byte
	// Records are the epoch's encoded log records in log order.
	Records [][]byte
}

// Marshal validates b and returns its canonical encoding:
//
//	struct {
//	    uint8  tag_len;         opaque tag[tag_len];               /* = "conifer/bundle/v1" */
//	    uint16 head_len;        opaque head[head_len];             /* canonical EpochHead */
//	    uint32 checkpoint_len;  opaque checkpoint[checkpoint_len]; /* 1..65536 bytes */
//	    uint32 record_count;                                       /* = head.update_count */
//	    struct {
//	        uint16 record_len;  opaque record[record_len];         /* canonical LogRecord */
//	    } records[record_count];
//	} Bundle;                                                      /* total <= 2^30 bytes */
func (b *Bundle) Marshal() ([]byte, error) {
	if _, err := b.validate(); err != nil {
		return nil, within(err, "bundle")
	}
	out := make([]byte, 0, b.size())
	out = append(out, byte(len(tagBundle)))
	out = append(out, tagBundle...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.Head)))
	out = append(out, b.Head...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Checkpoint)))
	out = append(out, b.Checkpoint...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Records)))
	for _, r := range b.Records {
		out = binary.BigEndian.AppendUint16(out, uint16(len(r)))
		out = append(out, r...)
	}
	return out, nil
}

func (b *Bundle) size() int {
	n := 1 + len(tagBundle) + 2 + len(b.Head) + 4 + len(b.Checkpoint) + 4
	for _, r := range b.Records {
		n += 2 + len(r)
	}
	return n
}

// ParseBundle parses and fully checks an encoded bundle (every rule of
// Bundle, including each record's encoding and the updates root). The
// result does not alias data.
func ParseBundle(data []byte) (*Bundle, error) {
	b, err := parseBundle(clone(data))
	if err != nil {
		return nil, within(err, "bundle")
	}
	return b, nil
}

// parseBundle parses and checks data, which it aliases.
func parseBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, newError(ErrTooLarge, "", "%d bytes, more than %d", len(data), MaxBundleSize)
	}
	r := reader{data}
	if err := readTag(&r, tagBundle); err != nil {
		return nil, err
	}
	b := &Bundle{}
	var n uint16
	if !r.u16(&n) || !r.bytes(&b.Head, int(n)) {
		return nil, truncated("head")
	}
	var cpLen uint32
	if !r.u32(&cpLen) {
		return nil, truncated("checkpoint")
	}
	if cpLen > MaxCheckpointSize {
		return nil, newError(ErrTooLarge, "checkpoint", "%d bytes, more than %d", cpLen, MaxCheckpointSize)
	}
	if !r.bytes(&b.Checkpoint, int(cpLen)) {
		return nil, truncated("checkpoint")
	}
	var count uint32
	if !r.u32(&count) {
		return nil, truncated("record_count")
	}
	// Each record takes at least 2 bytes: a count the input cannot hold
	// is rejected before allocating for it.
	if count > MaxBundleRecords {
		return nil, newError(ErrTooLarge, "record_count", "%d records, more than %d", count, MaxBundleRecords)
	}
	if int(count) > len(r.b)/2 {
		return nil, truncated("records")
	}
	if count > 0 {
		b.Records = make([][]byte, count)
	}
	for i := range b.Records {
		if !r.u16(&n) || !r.bytes(&b.Records[i], int(n)) {
			return nil, truncated("records[" + strconv.Itoa(i) + "]")
		}
	}
	if !r.empty() {
		return nil, trailing("", len(r.b))
	}
	if _, err := b.validate(); err != nil {
		return nil, err
	}
	return b, nil
}

// Validate checks every rule of Bundle. Field names in the error are
// relative to the bundle.
func (b *Bundle) Validate() error {
	_, err := b.validate()
	return err
}

// validate checks b and returns its parsed head.
func (b *Bundle) validate() (*EpochHead, error) {
	if n := b.size(); n > MaxBundleSize {
		return nil, newError(ErrTooLarge, "", "encoding is %d bytes, more than %d", n, MaxBundleSize)
	}
	h, err := parseEpochHead(b.Head)
	if err != nil {
		return nil, within(err, "head")
	}
	if err := checkCheckpoint(b.Checkpoint, h); err != nil {
		return nil, within(err, "checkpoint")
	}
	if uint64(len(b.Records)) != h.UpdateCount {
		return nil, newError(ErrInvalid, "record_count", "%d records, but the head counts %d updates", len(b.Records), h.UpdateCount)
	}
	for i, rec := range b.Records {
		field := "records[" + strconv.Itoa(i) + "]"
		_, e, err := parseLogRecord(rec)
		if err != nil {
			return nil, within(within(err, "log_record"), field)
		}
		if e.Realm != h.Realm {
			return nil, newError(ErrInvalid, field+".log_record.signed_entry.entry.realm", "realm %q in a bundle of realm %q", e.Realm, h.Realm)
		}
	}
	if UpdatesRoot(b.Records) != h.UpdatesRoot {
		return nil, newError(ErrInvalid, "records", "the records' updates root does not match the head's updates_root")
	}
	return h, nil
}

// checkCheckpoint checks what a bundle can check of its checkpoint without
// the checkpoint package: size, UTF-8 text ending in a newline, the origin
// line equal to the realm and the tree-size line equal to epoch+1. The
// signatures and root hash are the verifier's to check.
func checkCheckpoint(c []byte, h *EpochHead) error {
	if len(c) == 0 {
		return newError(ErrInvalid, "", "empty checkpoint")
	}
	if len(c) > MaxCheckpointSize {
		return newError(ErrTooLarge, "", "%d bytes, more than %d", len(c), MaxCheckpointSize)
	}
	if !utf8.Valid(c) {
		return newError(ErrInvalid, "", "checkpoint is not valid UTF-8")
	}
	if c[len(c)-1] != '\n' {
		return newError(ErrInvalid, "", "checkpoint does not end in a newline")
	}
	origin, rest, _ := bytes.Cut(c, []byte("\n"))
	size, _, _ := bytes.Cut(rest, []byte("\n"))
	if string(origin) != h.Realm {
		return newError(ErrInvalid, "", "checkpoint origin %q is not the head's realm %q", origin, h.Realm)
	}
	if h.Epoch == ^uint64(0) || string(size) != strconv.FormatUint(h.Epoch+1, 10) {
		return newError(ErrInvalid, "", "checkpoint tree size %q, want %d (head epoch + 1)", size, h.Epoch+1)
	}
	return nil
}

// BundleChunk is one piece of an encoded bundle, small enough for one
// Pub/Sub message. Every chunk of a bundle carries the realm, epoch, number
// of parts and a digest of the whole bundle, so a receiver can tell chunks
// of different bundles apart and check the reassembled bytes.
type BundleChunk struct {
	// Realm and Epoch are the bundle head's.
	Realm string
	Epoch uint64
	// Part is this chunk's 0-based position; Parts the number of chunks.
	Part, Parts uint32
	// Digest is H("conifer/bundle-digest/v1", encoded bundle).
	Digest [32]byte
	// Data is bytes [Part*k, ...) of the encoded bundle, non-empty.
	Data []byte
}

// Marshal validates c and returns its canonical encoding:
//
//	struct {
//	    uint8  tag_len;    opaque tag[tag_len];     /* = "conifer/bundle-chunk/v1" */
//	    uint8  realm_len;  opaque realm[realm_len]; /* as in EpochHead */
//	    uint64 epoch;
//	    uint32 part;                                /* 0..parts-1 */
//	    uint32 parts;                               /* 1..65536 */
//	    opaque digest[32];                          /* H("conifer/bundle-digest/v1", bundle) */
//	    uint32 data_len;   opaque data[data_len];   /* >= 1 byte */
//	} BundleChunk;                                  /* total <= 9,000,000 bytes */
func (c *BundleChunk) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, within(err, "bundle_chunk")
	}
	b := make([]byte, 0, chunkHeaderSize(c.Realm)+len(c.Data))
	b = append(b, byte(len(tagBundleChunk)))
	b = append(b, tagBundleChunk...)
	b = append(b, byte(len(c.Realm)))
	b = append(b, c.Realm...)
	b = binary.BigEndian.AppendUint64(b, c.Epoch)
	b = binary.BigEndian.AppendUint32(b, c.Part)
	b = binary.BigEndian.AppendUint32(b, c.Parts)
	b = append(b, c.Digest[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Data)))
	return append(b, c.Data...), nil
}

// chunkHeaderSize is the encoded size of a chunk of realm without its data.
func chunkHeaderSize(realm string) int {
	return 1 + len(tagBundleChunk) + 1 + len(realm) + 8 + 4 + 4 + 32 + 4
}

// ParseBundleChunk parses a canonical encoded BundleChunk. The result does
// not alias b.
func ParseBundleChunk(b []byte) (*BundleChunk, error) {
	c, err := parseBundleChunk(b)
	if err != nil {
		return nil, within(err, "bundle_chunk")
	}
	return c, nil
}

func parseBundleChunk(b []byte) (*BundleChunk, error) {
	if len(b) > MaxChunkSize {
		return nil, newError(ErrTooLarge, "", "%d bytes, more than %d", len(b), MaxChunkSize)
	}
	r := reader{clone(b)}
	if err := readTag(&r, tagBundleChunk); err != nil {
		return nil, err
	}
	c := &BundleChunk{}
	var realmLen uint8
	var realm []byte
	if !r.u8(&realmLen) || !r.bytes(&realm, int(realmLen)) {
		return nil, truncated("realm")
	}
	c.Realm = string(realm)
	var n uint32
	switch {
	case !r.u64(&c.Epoch):
		return nil, truncated("epoch")
	case !r.u32(&c.Part):
		return nil, truncated("part")
	case !r.u32(&c.Parts):
		return nil, truncated("parts")
	case !r.copyTo(c.Digest[:]):
		return nil, truncated("digest")
	case !r.u32(&n) || !r.bytes(&c.Data, int(n)):
		return nil, truncated("data")
	case !r.empty():
		return nil, trailing("", len(r.b))
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks the rules of the BundleChunk grammar.
func (c *BundleChunk) Validate() error {
	if err := checkRealm(c.Realm); err != nil {
		return within(err, "realm")
	}
	if c.Parts == 0 {
		return newError(ErrInvalid, "parts", "0 parts")
	}
	if c.Parts > MaxChunkParts {
		return newError(ErrTooLarge, "parts", "%d parts, more than %d", c.Parts, MaxChunkParts)
	}
	if c.Part >= c.Parts {
		return newError(ErrInvalid, "part", "part %d of %d (parts count from 0)", c.Part, c.Parts)
	}
	if len(c.Data) == 0 {
		return newError(ErrInvalid, "data", "empty data")
	}
	if n := chunkHeaderSize(c.Realm) + len(c.Data); n > MaxChunkSize {
		return newError(ErrTooLarge, "data", "chunk would be %d bytes, more than %d", n, MaxChunkSize)
	}
	return nil
}

// SplitBundle checks an encoded bundle (as ParseBundle) and cuts it into
// chunks whose encodings are each at most maxChunk bytes (at most
// MaxChunkSize). All chunks but the last carry the same amount of data.
// The chunks' Data alias a copy of b, not b itself.
func SplitBundle(b []byte, maxChunk int) ([]BundleChunk, error) {
	data := clone(b)
	bundle, err := parseBundle(data)
	if err != nil {
		return nil, within(err, "bundle")
	}
	h, err := parseEpochHead(bundle.Head)
	if err != nil {
		panic("format: head of a checked bundle does not parse: " + err.Error())
	}
	if maxChunk > MaxChunkSize {
		return nil, newError(ErrTooLarge, "bundle_chunk", "maximum chunk size %d is more than %d", maxChunk, MaxChunkSize)
	}
	per := maxChunk - chunkHeaderSize(h.Realm)
	if per < 1 {
		return nil, newError(ErrInvalid, "bundle_chunk", "maximum chunk size %d leaves no room for data after the %d-byte header", maxChunk, chunkHeaderSize(h.Realm))
	}
	parts := (len(b) + per - 1) / per
	if parts > MaxChunkParts {
		return nil, newError(ErrTooLarge, "bundle_chunk.parts", "%d parts of %d bytes, more than %d", parts, per, MaxChunkParts)
	}
	digest := bundleDigest(data)
	chunks := make([]BundleChunk, parts)
	for i := range chunks {
		end := min((i+1)*per, len(data))
		chunks[i] = BundleChunk{
			Realm:  h.Realm,
			Epoch:  h.Epoch,
			Part:   uint32(i),
			Parts:  uint32(parts),
			Digest: digest,
			Data:   data[i*per : end : end],
		}
	}
	return chunks, nil
}

// JoinBundle reassembles and checks a bundle from all of its chunks, given in
// any order. It rejects a missing, duplicate (even if identical) or invalid
// chunk, chunks that disagree on realm, epoch, parts or digest, reassembled
// bytes that do not match the digest, a bundle that ParseBundle rejects, and
// a head whose realm or epoch differ from the chunks'.
func JoinBundle(chunks []BundleChunk) (*Bundle, error) {
	if len(chunks) == 0 {
		return nil, newError(ErrInvalid, "chunks", "no chunks")
	}
	first := &chunks[0]
	if err := first.Validate(); err != nil {
		return nil, within(within(err, "bundle_chunk"), "chunks[0]")
	}
	if uint64(len(chunks)) > uint64(first.Parts) {
		return nil, newError(ErrInvalid, "chunks", "%d chunks for a bundle of %d parts", len(chunks), first.Parts)
	}
	ordered := make([]*BundleChunk, first.Parts)
	total := 0
	for i := range chunks {
		c := &chunks[i]
		field := "chunks[" + strconv.Itoa(i) + "]"
		if err := c.Validate(); err != nil {
			return nil, within(within(err, "bundle_chunk"), field)
		}
		switch {
		case c.Realm != first.Realm:
			return nil, newError(ErrInvalid, field+".realm", "realm %q, but chunks[0] has %q", c.Realm, first.Realm)
		case c.Epoch != first.Epoch:
			return nil, newError(ErrInvalid, field+".epoch", "epoch %d, but chunks[0] has %d", c.Epoch, first.Epoch)
		case c.Parts != first.Parts:
			return nil, newError(ErrInvalid, field+".parts", "%d parts, but chunks[0] says %d", c.Parts, first.Parts)
		case c.Digest != first.Digest:
			return nil, newError(ErrInvalid, field+".digest", "digest differs from chunks[0]'s")
		case ordered[c.Part] != nil:
			return nil, newError(ErrInvalid, field+".part", "duplicate part %d", c.Part)
		}
		ordered[c.Part] = c
		total += len(c.Data)
		if total > MaxBundleSize {
			return nil, newError(ErrTooLarge, "chunks", "more than %d bytes of bundle", MaxBundleSize)
		}
	}
	for i, c := range ordered {
		if c == nil {
			return nil, newError(ErrInvalid, "chunks", "part %d of %d is missing", i, first.Parts)
		}
	}
	data := make([]byte, 0, total)
	for _, c := range ordered {
		data = append(data, c.Data...)
	}
	if bundleDigest(data) != first.Digest {
		return nil, newError(ErrInvalid, "chunks", "reassembled bundle does not match the chunks' digest")
	}
	b, err := parseBundle(data)
	if err != nil {
		return nil, within(err, "bundle")
	}
	h, err := parseEpochHead(b.Head)
	if err != nil {
		panic("format: head of a checked bundle does not parse: " + err.Error())
	}
	if h.Realm != first.Realm || h.Epoch != first.Epoch {
		return nil, newError(ErrInvalid, "chunks", "chunks say realm %q epoch %d, but the bundle's head is realm %q epoch %d", first.Realm, first.Epoch, h.Realm, h.Epoch)
	}
	return b, nil
}
