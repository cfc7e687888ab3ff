package format

import (
	"bytes"
	"reflect"
	"testing"
)

// codec gives generic tests one view of every format.
type codec struct {
	name   string
	parse  func([]byte) (any, error)
	encode func(any) ([]byte, error)
	// hash, if set, is the hash that names an encoding of this format.
	hash func([]byte) [32]byte
}

var codecs = map[string]codec{
	"profile": {
		name:   "profile",
		parse:  func(b []byte) (any, error) { return ParseProfile(b) },
		encode: func(v any) ([]byte, error) { return v.(*Profile).Marshal() },
	},
	"policy": {
		name:   "policy",
		parse:  func(b []byte) (any, error) { return ParsePolicy(b) },
		encode: func(v any) ([]byte, error) { return v.(*Policy).Marshal() },
	},
	"entry": {
		name:   "entry",
		parse:  func(b []byte) (any, error) { return ParseEntry(b) },
		encode: func(v any) ([]byte, error) { return v.(*Entry).Marshal() },
		hash:   EntryHash,
	},
	"signed_entry": {
		name: "signed_entry",
		parse: func(b []byte) (any, error) {
			s, _, err := ParseSignedEntry(b)
			return s, err
		},
		encode: func(v any) ([]byte, error) { return v.(*SignedEntry).Marshal() },
	},
	"registration": {
		name:   "registration",
		parse:  func(b []byte) (any, error) { return ParseRegistration(b) },
		encode: func(v any) ([]byte, error) { return v.(*Registration).Marshal() },
	},
	"log_record": {
		name: "log_record",
		parse: func(b []byte) (any, error) {
			l, _, err := ParseLogRecord(b)
			return l, err
		},
		encode: func(v any) ([]byte, error) { return v.(*LogRecord).Marshal() },
	},
	"leaf_record": {
		name:   "leaf_record",
		parse:  func(b []byte) (any, error) { return ParseLeafRecord(b) },
		encode: func(v any) ([]byte, error) { return v.(*LeafRecord).Marshal() },
		hash:   LeafRecordHash,
	},
	"epoch_head": {
		name:   "epoch_head",
		parse:  func(b []byte) (any, error) { return ParseEpochHead(b) },
		encode: func(v any) ([]byte, error) { return v.(*EpochHead).Marshal() },
	},
	"bundle": {
		name:   "bundle",
		parse:  func(b []byte) (any, error) { return ParseBundle(b) },
		encode: func(v any) ([]byte, error) { return v.(*Bundle).Marshal() },
	},
	"bundle_chunk": {
		name:   "bundle_chunk",
		parse:  func(b []byte) (any, error) { return ParseBundleChunk(b) },
		encode: func(v any) ([]byte, error) { return v.(*BundleChunk).Marshal() },
	},
}

// checkCanonical is the property every parser must have: if b parses, it
// re-encodes to exactly b, and parsing that again gives an equal value.
// It returns the parsed value, or nil if b does not parse.
func (c codec) checkCanonical(t testing.TB, b []byte) any {
	t.Helper()
	v, err := c.parse(b)
	if err != nil {
		if _, ok := err.(*Error); !ok {
			t.Fatalf("%s: parse error %q is %T, not *Error", c.name, err, err)
		}
		return nil
	}
	enc, err := c.encode(v)
	if err != nil {
		t.Fatalf("%s: parsed value does not encode: %v\ninput %x", c.name, err, b)
	}
	if !bytes.Equal(enc, b) {
		t.Fatalf("%s: encode(parse(b)) != b\nb   %x\nenc %x", c.name, b, enc)
	}
	v2, err := c.parse(enc)
	if err != nil || !reflect.DeepEqual(v, v2) {
		t.Fatalf("%s: parse(encode(parse(b))) differs: %v", c.name, err)
	}
	return v
}
