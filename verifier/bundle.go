package verifier

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/conifer-kt/conifer/format"
)

// errFraming is wrapped by splitBundle's errors.
var errFraming = errors.New("bundle framing")

// bundleTag is the tag an encoded format.Bundle starts with.
const bundleTag = "conifer/bundle/v1"

// bundleFields are the parts of an encoded bundle, not yet judged.
type bundleFields struct {
	head       []byte
	checkpoint []byte
	records    [][]byte
}

// splitBundle cuts an encoded format.Bundle into its fields by the
// bundle's framing alone:
//
//	struct {
//	    uint8  tag_len;         opaque tag[tag_len];               /* = "conifer/bundle/v1" */
//	    uint16 head_len;        opaque head[head_len];
//	    uint32 checkpoint_len;  opaque checkpoint[checkpoint_len]; /* <= format.MaxCheckpointSize */
//	    uint32 record_count;                                       /* <= format.MaxBundleRecords */
//	    struct {
//	        uint16 record_len;  opaque record[record_len];
//	    } records[record_count];
//	} Bundle;                                                      /* <= format.MaxBundleSize */
//
// It enforces the size caps and rejects trailing bytes, but none of the
// rules that relate the fields (head canonical, record count equal to the
// head's, updates root, checkpoint origin and size): format.ParseBundle
// checks those all at once, while the verifier checks them one by one so
// that it can say which one a keyserver broke, and keep as evidence the
// signed checkpoint of a bundle that breaks one. Whatever format.ParseBundle
// accepts, splitBundle splits into the same fields (FuzzSplitBundle). The
// fields alias data.
func splitBundle(data []byte) (*bundleFields, error) {
	if len(data) > format.MaxBundleSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errFraming, len(data), format.MaxBundleSize)
	}
	r := byteReader{data}
	var tag []byte
	if !r.u8Bytes(&tag) || string(tag) != bundleTag {
		return nil, fmt.Errorf("%w: tag is not %q", errFraming, bundleTag)
	}
	f := &bundleFields{}
	n, ok := r.take(2)
	if !ok {
		return nil, fmt.Errorf("%w: truncated head", errFraming)
	}
	if f.head, ok = r.take(int(binary.BigEndian.Uint16(n))); !ok {
		return nil, fmt.Errorf("%w: truncated head", errFraming)
	}
	if n, ok = r.take(4); !ok {
		return nil, fmt.Errorf("%w: truncated checkpoint", errFraming)
	}
	cpLen := binary.BigEndian.Uint32(n)
	if cpLen > format.MaxCheckpointSize {
		return nil, fmt.Errorf("%w: checkpoint of %d bytes, more than %d", errFraming, cpLen, format.MaxCheckpointSize)
	}
	if f.checkpoint, ok = r.take(int(cpLen)); !ok {
		return nil, fmt.Errorf("%w: truncated checkpoint", errFraming)
	}
	if n, ok = r.take(4); !ok {
		return nil, fmt.Errorf("%w: truncated record count", errFraming)
	}
	count := binary.BigEndian.Uint32(n)
	if count > format.MaxBundleRecords {
		return nil, fmt.Errorf("%w: %d records, more than %d", errFraming, count, format.MaxBundleRecords)
	}
	// Each record takes at least its 2-byte length: refuse a count the
	// input cannot hold before allocating for it.
	if int(count) > len(r.b)/2 {
		return nil, fmt.Errorf("%w: truncated records", errFraming)
	}
	if count > 0 {
		f.records = make([][]byte, count)
	}
	for i := range f.records {
		if n, ok = r.take(2); !ok {
			return nil, fmt.Errorf("%w: truncated records[%d]", errFraming, i)
		}
		if f.records[i], ok = r.take(int(binary.BigEndian.Uint16(n))); !ok {
			return nil, fmt.Errorf("%w: truncated records[%d]", errFraming, i)
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errFraming, len(r.b))
	}
	return f, nil
}

// bundleDigest returns H("conifer/bundle-digest/v1", bundle), the digest
// every format.BundleChunk of the bundle carries:
//
//	SHA-256( uint8(24) ‖ "conifer/bundle-digest/v1" ‖ bundle )
func bundleDigest(bundle []byte) [32]byte {
	const tag = "conifer/bundle-digest/v1"
	h := sha256.New()
	h.Write(append([]byte{byte(len(tag))}, tag...))
	h.Write(bundle)
	return [32]byte(h.Sum(nil))
}

// errChunks is wrapped when chunks do not make a bundle. Nothing signs
// chunks, so a bad chunk proves nothing about the keyserver: it is
// dropped, and the bundle fetched again.
var errChunks = errors.New("chunks do not make a bundle")

// chunkSet collects the chunks of one bundle: one epoch, one digest, one
// number of parts. Duplicates of a part are ignored (the first copy is
// kept; the digest check at the end catches a bad one).
type chunkSet struct {
	epoch  uint64
	digest [32]byte
	parts  [][]byte // nil until received
	have   int
	size   int // bytes of data held
}

func newChunkSet(c *format.BundleChunk) *chunkSet {
	return &chunkSet{epoch: c.Epoch, digest: c.Digest, parts: make([][]byte, c.Parts)}
}

// matches reports whether c belongs to the set.
func (s *chunkSet) matches(c *format.BundleChunk) bool {
	return c.Epoch == s.epoch && c.Digest == s.digest && int(c.Parts) == len(s.parts)
}

// add adds c, which must match, and reports whether it was new.
func (s *chunkSet) add(c *format.BundleChunk) bool {
	if s.parts[c.Part] != nil {
		return false
	}
	s.parts[c.Part] = c.Data
	s.have++
	s.size += len(c.Data)
	return true
}

func (s *chunkSet) complete() bool { return s.have == len(s.parts) }

// join concatenates the parts of a complete set and checks the digest.
func (s *chunkSet) join() ([]byte, error) {
	if !s.complete() {
		return nil, fmt.Errorf("%w: %d of %d parts", errChunks, s.have, len(s.parts))
	}
	if s.size > format.MaxBundleSize {
		return nil, fmt.Errorf("%w: more than %d bytes", errChunks, format.MaxBundleSize)
	}
	data := make([]byte, 0, s.size)
	for _, p := range s.parts {
		data = append(data, p...)
	}
	if bundleDigest(data) != s.digest {
		return nil, fmt.Errorf("%w: reassembled bytes do not match the chunks' digest", errChunks)
	}
	return data, nil
}
