package verifier

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/conifer-kt/conifer/format"
)

// TestBundleDigest checks bundleDigest against the digest format puts in
// the chunks it makes.
func TestBundleDigest(t *testing.T) {
	s := newHonest(t)
	scenario(s)
	for n := range s.epochs() {
		b := s.bundle(n)
		chunks, err := format.SplitBundle(b, 256)
		if err != nil {
			t.Fatal(err)
		}
		if chunks[0].Digest != bundleDigest(b) {
			t.Fatalf("epoch %d: digest differs from format's", n)
		}
		// And chunkBundle (the tests' chunker) agrees with format's
		// JoinBundle.
		var cs []format.BundleChunk
		for _, c := range chunkBundle(t, testRealm, n, b, 100) {
			p, err := format.ParseBundleChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, *p)
		}
		if _, err := format.JoinBundle(cs); err != nil {
			t.Fatalf("epoch %d: %v", n, err)
		}
	}
}

func TestSplitBundle(t *testing.T) {
	s := newHonest(t)
	scenario(s)
	b := s.bundle(2)
	f, err := splitBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	p, err := format.ParseBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.head, p.Head) || !bytes.Equal(f.checkpoint, p.Checkpoint) || !slices.EqualFunc(f.records, p.Records, bytes.Equal) {
		t.Fatal("fields differ from format's")
	}
	// Every truncation, and any trailing byte, is refused.
	for i := range len(b) {
		if _, err := splitBundle(b[:i]); !errors.Is(err, errFraming) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := splitBundle(append(slices.Clone(b), 0)); !errors.Is(err, errFraming) {
		t.Fatal("trailing byte accepted")
	}
	// A record count the input cannot hold is refused before allocating.
	huge := encodeBundle(f.head, f.checkpoint, nil)
	huge[len(huge)-1], huge[len(huge)-2] = 0xff, 0xff
	if _, err := splitBundle(huge); !errors.Is(err, errFraming) {
		t.Fatal("impossible record count accepted")
	}
}

func FuzzSplitBundle(f *testing.F) {
	s := newHonest(f)
	scenario(s)
	for n := range s.epochs() {
		f.Add(s.bundle(n))
	}
	f.Add(encodeBundle([]byte("h"), []byte("c"), [][]byte{{}, {1}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := splitBundle(b)
		p, perr := format.ParseBundle(b)
		if perr == nil {
			// Whatever format accepts, splitBundle splits the same way.
			if err != nil {
				t.Fatalf("format accepts, splitBundle refuses: %v", err)
			}
			if !bytes.Equal(fs.head, p.Head) || !bytes.Equal(fs.checkpoint, p.Checkpoint) || !slices.EqualFunc(fs.records, p.Records, bytes.Equal) {
				t.Fatal("fields differ from format's")
			}
		}
		if err != nil {
			return
		}
		if got := encodeBundle(fs.head, fs.checkpoint, fs.records); !bytes.Equal(got, b) {
			t.Fatal("encode(split(b)) != b")
		}
		again, err := splitBundle(encodeBundle(fs.head, fs.checkpoint, fs.records))
		if err != nil || !bytes.Equal(again.head, fs.head) || !bytes.Equal(again.checkpoint, fs.checkpoint) || !slices.EqualFunc(again.records, fs.records, bytes.Equal) {
			t.Fatal("split(encode(x)) != x")
		}
	})
}

func TestChunkSet(t *testing.T) {
	s := newHonest(t)
	scenario(s)
	b := s.bundle(4)
	raw := chunkBundle(t, testRealm, 4, b, 64)
	var cs []*format.BundleChunk
	for _, r := range raw {
		c, err := format.ParseBundleChunk(r)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	// Every order, with duplicates, makes the bundle.
	for _, order := range [][]int{
		{0, 1, 2, 3},
		{3, 2, 1, 0},
		{1, 1, 3, 0, 3, 2, 2},
	} {
		set := newChunkSet(cs[order[0]%len(cs)])
		for _, i := range order {
			c := cs[i%len(cs)]
			if !set.matches(c) {
				t.Fatal("chunk of the bundle does not match")
			}
			set.add(c)
		}
		for _, c := range cs {
			set.add(c)
		}
		got, err := set.join()
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("order %v: %v", order, err)
		}
	}
	// Incomplete: refused.
	set := newChunkSet(cs[0])
	set.add(cs[0])
	if _, err := set.join(); !errors.Is(err, errChunks) {
		t.Fatalf("incomplete: %v", err)
	}
	// A part of the right epoch and digest with other data: the digest
	// check refuses the whole.
	bad := *cs[1]
	bad.Data = slices.Clone(bad.Data)
	bad.Data[0] ^= 1
	set = newChunkSet(cs[0])
	set.add(&bad)
	for _, c := range cs {
		set.add(c)
	}
	if _, err := set.join(); !errors.Is(err, errChunks) {
		t.Fatalf("bad part: %v", err)
	}
	// Chunks of another epoch, digest or number of parts do not match.
	for _, mod := range []func(c *format.BundleChunk){
		func(c *format.BundleChunk) { c.Epoch++ },
		func(c *format.BundleChunk) { c.Digest[0] ^= 1 },
		func(c *format.BundleChunk) { c.Parts++ },
	} {
		c := *cs[0]
		mod(&c)
		if newChunkSet(cs[0]).matches(&c) {
			t.Fatalf("foreign chunk matches: %+v", c)
		}
	}
}
