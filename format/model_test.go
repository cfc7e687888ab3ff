package format

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// The model encoders below are a second, independent implementation of the
// grammars, written field by field as SPEC.md states them. They encode
// without validating (so tests can build invalid inputs) and label every
// field (so vectors and SPEC.md can show annotated examples).

type seg struct {
	name string
	b    []byte
}

type segs []seg

func (s segs) bytes() []byte {
	var out []byte
	for _, x := range s {
		out = append(out, x.b...)
	}
	return out
}

// annotate renders one field per line: hex, then the field name.
func (s segs) annotate() string {
	var sb strings.Builder
	for _, x := range s {
		h := hex.EncodeToString(x.b)
		for len(h) > 64 {
			fmt.Fprintf(&sb, "%s\n", h[:64])
			h = h[64:]
		}
		fmt.Fprintf(&sb, "%-64s  %s\n", h, x.name)
	}
	return sb.String()
}

func (s *segs) add(name string, b []byte) { *s = append(*s, seg{name, b}) }
func (s *segs) u8(name string, v uint8)   { s.add(name, []byte{v}) }
func (s *segs) u16(name string, v uint16) { s.add(name, binary.BigEndian.AppendUint16(nil, v)) }
func (s *segs) u32(name string, v uint32) { s.add(name, binary.BigEndian.AppendUint32(nil, v)) }
func (s *segs) u64(name string, v uint64) { s.add(name, binary.BigEndian.AppendUint64(nil, v)) }
func (s *segs) nest(prefix string, in segs) {
	for _, x := range in {
		s.add(prefix+x.name, x.b)
	}
}

// str adds a uint8-length-prefixed string.
func (s *segs) str(name string, v string) {
	s.u8(name+" length", uint8(len(v)))
	s.add(name+fmt.Sprintf(" %q", v), []byte(v))
}

func modelProfile(p *Profile) segs {
	var s segs
	s.u8("app_count", uint8(len(p.Keys)))
	for i, k := range p.Keys {
		f := fmt.Sprintf("keys[%d].", i)
		s.str(f+"app", k.App)
		s.u16(f+"key length", uint16(len(k.Key)))
		s.add(f+"key", k.Key)
	}
	return s
}

func modelPolicy(p *Policy) segs {
	var s segs
	s.u16("threshold", p.Threshold)
	s.u8("key_count", uint8(len(p.Keys)))
	for i, k := range p.Keys {
		s.add(fmt.Sprintf("keys[%d] (key id %s)", i, KeyIDOf(k)), k)
	}
	s.u8("subpolicy_count", uint8(len(p.Subpolicies)))
	for i, sub := range p.Subpolicies {
		s.nest(fmt.Sprintf("subpolicies[%d].", i), modelPolicy(sub))
	}
	return s
}

func modelEntry(e *Entry) segs {
	var s segs
	s.str("realm", e.Realm)
	s.add("index", e.Index[:])
	s.u64(fmt.Sprintf("version %d", e.Version), e.Version)
	s.add("prev", e.Prev[:])
	s.nest("policy.", modelPolicy(&e.Policy))
	t := uint8(0)
	if e.Tombstone {
		t = 1
	}
	s.u8("tombstone", t)
	s.add("commitment", e.Commitment[:])
	return s
}

func modelSignature(sig Signature) segs {
	var s segs
	s.add("key_id", sig.KeyID[:])
	s.add("sig", sig.Sig[:])
	return s
}

func modelSignedEntry(se *SignedEntry) segs {
	var s segs
	s.u16("entry length", uint16(len(se.Entry)))
	if e, err := ParseEntry(se.Entry); err == nil {
		s.nest("entry.", modelEntry(e))
	} else {
		s.add("entry", se.Entry)
	}
	s.u8("signature_count", uint8(len(se.Signatures)))
	for i, sig := range se.Signatures {
		s.nest(fmt.Sprintf("signatures[%d].", i), modelSignature(sig))
	}
	return s
}

func modelRegistration(r *Registration) segs {
	var s segs
	s.u8(fmt.Sprintf("kind (%v)", r.Kind), uint8(r.Kind))
	switch r.Kind {
	case RegistrationRegistrar:
		s.nest("registrar.", modelSignature(r.Registrar))
	case RegistrationOIDC:
		s.u16("issuer length", uint16(len(r.Issuer)))
		s.add(fmt.Sprintf("issuer %q", r.Issuer), []byte(r.Issuer))
	}
	return s
}

func modelLogRecord(l *LogRecord) segs {
	var s segs
	s.nest("signed_entry.", modelSignedEntry(&l.SignedEntry))
	if l.Registration != nil {
		s.nest("registration.", modelRegistration(l.Registration))
	}
	return s
}

func modelLeafRecord(l *LeafRecord) segs {
	var s segs
	s.add("entry_hash", l.EntryHash[:])
	s.u64(fmt.Sprintf("epoch %d", l.Epoch), l.Epoch)
	s.add("prev", l.Prev[:])
	return s
}

func modelEpochHead(h *EpochHead) segs {
	var s segs
	s.str("tag", "conifer/epoch-head/v1")
	s.str("realm", h.Realm)
	s.u64(fmt.Sprintf("epoch %d", h.Epoch), h.Epoch)
	s.u64(fmt.Sprintf("time %d", h.Time), h.Time)
	s.add("tree_root", h.TreeRoot[:])
	s.u64(fmt.Sprintf("update_count %d", h.UpdateCount), h.UpdateCount)
	s.add("updates_root", h.UpdatesRoot[:])
	return s
}

func modelBundle(b *Bundle) segs {
	var s segs
	s.str("tag", "conifer/bundle/v1")
	s.u16("head length", uint16(len(b.Head)))
	s.add("head", b.Head)
	s.u32("checkpoint length", uint32(len(b.Checkpoint)))
	s.add("checkpoint", b.Checkpoint)
	s.u32("record_count", uint32(len(b.Records)))
	for i, r := range b.Records {
		s.u16(fmt.Sprintf("records[%d] length", i), uint16(len(r)))
		s.add(fmt.Sprintf("records[%d]", i), r)
	}
	return s
}

func modelBundleChunk(c *BundleChunk) segs {
	var s segs
	s.str("tag", "conifer/bundle-chunk/v1")
	s.str("realm", c.Realm)
	s.u64("epoch", c.Epoch)
	s.u32("part", c.Part)
	s.u32("parts", c.Parts)
	s.add("digest", c.Digest[:])
	s.u32("data length", uint32(len(c.Data)))
	s.add("data", c.Data)
	return s
}

// model returns the model encoding of any format value.
func model(t testing.TB, v any) segs {
	t.Helper()
	switch v := v.(type) {
	case *Profile:
		return modelProfile(v)
	case *Policy:
		return modelPolicy(v)
	case *Entry:
		return modelEntry(v)
	case *SignedEntry:
		return modelSignedEntry(v)
	case *Registration:
		return modelRegistration(v)
	case *LogRecord:
		return modelLogRecord(v)
	case *LeafRecord:
		return modelLeafRecord(v)
	case *EpochHead:
		return modelEpochHead(v)
	case *Bundle:
		return modelBundle(v)
	case *BundleChunk:
		return modelBundleChunk(v)
	}
	t.Fatalf("no model for %T", v)
	return nil
}
