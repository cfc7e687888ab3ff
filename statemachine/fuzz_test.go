package statemachine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/conifer-kt/conifer/format"
)

// fuzzBase is a committed epoch 1 (bob at version 2, tom tombstoned) that
// every FuzzApply input is applied on top of as epoch 2 (never committed,
// so each run starts from the same state).
type fuzzBase struct {
	env         *env
	seeds       [][]byte // valid and invalid records for epoch 2
	bob2, tom2h [32]byte
}

var (
	fuzzOnce sync.Once
	fuzzEnv  *fuzzBase
)

func getFuzzBase(tb testing.TB) *fuzzBase {
	fuzzOnce.Do(func() {
		b := &fuzzBase{env: newEnv(tb)}
		bob, tom := indexOf("bob"), indexOf("tom")
		r1, h1 := register(tb, ent{index: bob, policy: pol(1, []int{1})}, 1)
		r2, h2 := update(tb, ent{index: bob, version: 2, prev: h1, policy: pol(1, []int{2}), commit: 2}, 1, 2)
		r3, t1 := register(tb, ent{index: tom, policy: pol(1, []int{5})}, 5)
		r4, t2 := update(tb, ent{index: tom, version: 2, prev: t1, policy: pol(1, []int{5}), tombstone: true}, 5)
		out, err := b.env.apply(r1, r2, r3, r4)
		if err != nil || len(out.Applied) != 4 {
			tb.Fatalf("fuzz base: %v", err)
		}
		b.env.epoch = 1
		if err := b.env.store.Commit(tb.Context(), 1, out.Head.TreeRoot); err != nil {
			tb.Fatal(err)
		}
		b.env.entries.commit(1, out.Applied)
		b.bob2, b.tom2h = h2, t2
		u1, h3 := update(tb, ent{index: bob, version: 3, prev: h2, policy: pol(1, []int{3})}, 2, 3)
		u2, _ := update(tb, ent{index: bob, version: 4, prev: h3, policy: pol(1, []int{3}), tombstone: true}, 3)
		u3, _ := update(tb, ent{index: tom, version: 3, prev: t2, policy: pol(1, []int{6})}, 5, 6)
		n1, _ := register(tb, ent{index: indexOf("new"), policy: pol(2, []int{7}, pol(1, []int{8, 9}))}, 7, 9)
		b.seeds = [][]byte{u1, u2, u3, n1, r1, r2}
		fuzzEnv = b
	})
	return fuzzEnv
}

// frame encodes records for FuzzApply: each as uint16 length || bytes.
func frame(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
	}
	return b
}

// unframe splits fuzz input into records; a short final piece is a record
// of its own.
func unframe(b []byte) [][]byte {
	var recs [][]byte
	for len(b) > 0 && len(recs) < 64 {
		if len(b) < 2 {
			recs = append(recs, b)
			break
		}
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		n = min(n, len(b))
		recs = append(recs, b[:n])
		b = b[n:]
	}
	return recs
}

// FuzzApply: arbitrary records never make Apply panic or fail; it always
// makes a head counting every record; records that do not parse are
// Malformed; and Check, run against the state each record met, agrees
// with every decision.
func FuzzApply(f *testing.F) {
	base := getFuzzBase(f)
	s := base.seeds
	f.Add(frame(s...))
	f.Add(frame(s[0], s[1], s[2]))
	f.Add(frame(s[1], s[0], s[0], s[3], s[3]))
	f.Add(frame(s[4], s[5], []byte("junk"), nil))
	f.Add([]byte{0xff, 0xff, 1, 2, 3})
	for _, r := range s {
		bad := bytes.Clone(r)
		bad[len(bad)/2] ^= 0x10
		f.Add(frame(bad, r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs := unframe(data)
		v := base.env
		out, err := Apply(t.Context(), v.tree, v.entries, Input{Rules: v.rules, Epoch: 2, Time: 5, Records: recs})
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		checkOutput(t, 2, recs, out)
		got := codes(out, len(recs))

		// Replay the decisions with Check against the state each record met.
		prev := map[[32]byte][]byte{}
		stored, _ := v.entries.Latest(t.Context(), 1, [][32]byte{indexOf("bob"), indexOf("tom")})
		for idx, l := range stored {
			prev[idx] = l.SignedEntry
		}
		applied := map[int]*Applied{}
		for i := range out.Applied {
			applied[out.Applied[i].Position] = &out.Applied[i]
		}
		for i, rec := range recs {
			_, e, perr := format.ParseLogRecord(rec)
			if perr != nil {
				if got[i] != Malformed {
					t.Fatalf("record %d does not parse (%v) but got %v", i, perr, got[i])
				}
				continue
			}
			_, cerr := Check(v.rules, prev[e.Index], rec)
			var rej *Rejection
			switch {
			case errors.As(cerr, &rej):
				if rej.Code != got[i] {
					t.Fatalf("record %d: Check says %v, Apply %v", i, rej.Code, got[i])
				}
			case cerr != nil:
				t.Fatalf("record %d: Check: %v", i, cerr)
			case got[i] != 0:
				t.Fatalf("record %d: Check accepts, Apply says %v", i, got[i])
			default:
				prev[e.Index] = applied[i].SignedEntry
			}
		}
	})
}

// FuzzCheck: Check never panics; a prev that is not a signed entry is
// ErrInconsistent, a record that is not a log record Malformed, and an
// accepted record's decision describes it exactly.
func FuzzCheck(f *testing.F) {
	base := getFuzzBase(f)
	stored, _ := base.env.entries.Latest(f.Context(), 1, [][32]byte{indexOf("bob"), indexOf("tom")})
	bobPrev, tomPrev := stored[indexOf("bob")].SignedEntry, stored[indexOf("tom")].SignedEntry
	for _, r := range base.seeds {
		f.Add(bobPrev, r)
		f.Add(tomPrev, r)
		f.Add([]byte(nil), r)
	}
	f.Add([]byte("x"), []byte("y"))
	f.Fuzz(func(t *testing.T, prev, rec []byte) {
		if len(prev) == 0 {
			prev = nil
		}
		d, err := Check(testRules(), prev, rec)
		if prev != nil {
			if _, _, perr := format.ParseSignedEntry(prev); perr != nil {
				if !errors.Is(err, ErrInconsistent) {
					t.Fatalf("malformed prev: %v", err)
				}
				return
			}
		}
		l, e, perr := format.ParseLogRecord(rec)
		if perr != nil {
			if !isCode(err, Malformed) {
				t.Fatalf("malformed record: %v", err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("Check: %v", err)
			}
			return
		}
		enc, _ := l.Marshal()
		se, _ := l.SignedEntry.Marshal()
		if !bytes.Equal(enc, rec) || !bytes.Equal(se, d.SignedEntry) || d.Index != e.Index || d.Version != e.Version ||
			d.EntryHash != format.EntryHash(l.SignedEntry.Entry) || d.Tombstone != e.Tombstone {
			t.Fatalf("decision %+v does not describe the record", d)
		}
	})
}
