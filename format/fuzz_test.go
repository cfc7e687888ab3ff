package format

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// seed adds every vector of the format (valid and invalid) to f's corpus.
func seed(f *testing.F, format string) {
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		f.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(b, &vf); err != nil {
		f.Fatal(err)
	}
	n := 0
	add := func(format2, h string) {
		if format2 != format {
			return
		}
		enc, err := hex.DecodeString(h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		n++
	}
	for _, v := range vf.Valid {
		add(v.Format, v.Encoding)
	}
	for _, v := range vf.Invalid {
		add(v.Format, v.Encoding)
	}
	if n == 0 {
		f.Fatalf("no seeds for %s", format)
	}
	f.Add([]byte{})
}

// fuzzCodec checks, for any input, that parsing never panics, returns
// *Error on failure, and that parse(b) succeeding implies encode(parse(b))
// == b and parse(encode(parse(b))) == parse(b) (codec.checkCanonical).
func fuzzCodec(f *testing.F, format string) {
	seed(f, format)
	c := codecs[format]
	f.Fuzz(func(t *testing.T, b []byte) {
		c.checkCanonical(t, b)
	})
}

func FuzzProfile(f *testing.F)      { fuzzCodec(f, "profile") }
func FuzzEntry(f *testing.F)        { fuzzCodec(f, "entry") }
func FuzzSignedEntry(f *testing.F)  { fuzzCodec(f, "signed_entry") }
func FuzzRegistration(f *testing.F) { fuzzCodec(f, "registration") }
func FuzzLogRecord(f *testing.F)    { fuzzCodec(f, "log_record") }
func FuzzLeafRecord(f *testing.F)   { fuzzCodec(f, "leaf_record") }
func FuzzEpochHead(f *testing.F)    { fuzzCodec(f, "epoch_head") }
func FuzzBundle(f *testing.F)       { fuzzCodec(f, "bundle") }
func FuzzBundleChunk(f *testing.F)  { fuzzCodec(f, "bundle_chunk") }

// FuzzPolicy adds the quorum invariants of a valid policy: all keys signing
// satisfy it, none signing does not.
func FuzzPolicy(f *testing.F) {
	seed(f, "policy")
	c := codecs["policy"]
	f.Fuzz(func(t *testing.T, b []byte) {
		v := c.checkCanonical(t, b)
		if v == nil {
			return
		}
		p := v.(*Policy)
		if !p.Satisfied(func(KeyID) bool { return true }) {
			t.Fatalf("valid policy %x unsatisfiable", b)
		}
		if p.Satisfied(func(KeyID) bool { return false }) {
			t.Fatalf("valid policy %x satisfied by nobody", b)
		}
		if len(p.KeyIDs()) > MaxPolicyKeys {
			t.Fatalf("%d keys", len(p.KeyIDs()))
		}
	})
}

// FuzzJoinBundle splits a bundle at a fuzzed size, corrupts one chunk at a
// fuzzed place, and checks that JoinBundle either rejects the chunks or
// returns exactly the original bundle.
func FuzzJoinBundle(f *testing.F) {
	fx := newFixtures(f)
	enc := mustMarshal(f, fx.bundleTwo)
	f.Add(uint16(300), uint16(0), uint16(0), byte(0))
	f.Add(uint16(150), uint16(3), uint16(17), byte(1))
	f.Add(uint16(2000), uint16(0), uint16(900), byte(0x80))
	f.Fuzz(func(t *testing.T, size, which, at uint16, flip byte) {
		chunks, err := SplitBundle(enc, int(size))
		if err != nil {
			return
		}
		c := &chunks[int(which)%len(chunks)]
		c.Data = append([]byte(nil), c.Data...)
		c.Data[int(at)%len(c.Data)] ^= flip
		b, err := JoinBundle(chunks)
		if err != nil {
			if flip == 0 {
				t.Fatalf("intact chunks rejected: %v", err)
			}
			return
		}
		if flip != 0 {
			t.Fatal("corrupted chunk accepted")
		}
		if got := mustMarshal(t, b); string(got) != string(enc) {
			t.Fatal("joined bundle differs")
		}
	})
}
