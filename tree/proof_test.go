package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// claim is a proof with what it is meant to prove.
type claim struct {
	name  string
	root  Hash
	key   Key
	value Hash // for inclusion
	proof *Proof
}

func (c *claim) verify(p *Proof) error {
	if c.proof.Kind == Inclusion {
		return VerifyInclusion(c.root, c.key, c.value, p)
	}
	return VerifyAbsence(c.root, c.key, p)
}

// sampleClaims returns proofs of every kind and shape: shallow and deep
// (depth 256) inclusion, absence in a chain, absence at another leaf, and
// the depth-0 proofs of trees with zero and one key.
func sampleClaims(t testing.TB) []claim {
	r := rand.New(rand.NewPCG(21, 22))
	var out []claim
	add := func(name string, tr *Tree, v uint64, root Hash, key Key, value Hash, kind ProofKind, depth int) {
		p, err := tr.Prove(ctx, v, key)
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind != kind || (depth >= 0 && p.Depth() != depth) {
			t.Fatalf("%s: got %v proof at depth %d, want %v at %d", name, p.Kind, p.Depth(), kind, depth)
		}
		c := claim{name: name, root: root, key: key, value: value, proof: p}
		if err := c.verify(p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, c)
	}

	s := NewMemoryStore()
	tr := New(s)
	add("empty tree", tr, 0, Empty, randKey(r), Hash{}, AbsenceEmpty, 0)
	one := Change{Key: randKey(r), Value: randHash(r)}
	root := update(t, tr, s, 0, []Change{one})
	add("single key", tr, 1, root, one.Key, one.Value, Inclusion, 0)
	add("single other key", tr, 1, root, flip(one.Key, 7), Hash{}, AbsenceLeaf, 0)

	var ch []Change
	for range 1000 {
		ch = append(ch, Change{Key: randKey(r), Value: randHash(r)})
	}
	deep := collidingKeys(9)
	for _, k := range deep {
		ch = append(ch, Change{Key: k, Value: randHash(r)})
	}
	root = update(t, tr, s, 1, ch)
	add("inclusion", tr, 2, root, ch[0].Key, ch[0].Value, Inclusion, -1)
	add("inclusion at depth 256", tr, 2, root, deep[1], ch[1001].Value, Inclusion, 256)
	add("absence in chain", tr, 2, root, flip(deep[0], 220), Hash{}, AbsenceEmpty, 221)
	add("absence at other leaf", tr, 2, root, flip(ch[5].Key, 200), Hash{}, AbsenceLeaf, -1)
	return out
}

// TestProofBitFlips flips every bit of several encoded proofs: each result
// must fail to parse or fail to verify, for the original claim and for the
// opposite one (inclusion vs absence of the same key).
func TestProofBitFlips(t *testing.T) {
	for _, c := range sampleClaims(t) {
		b := c.proof.Marshal()
		if len(b) != c.proof.Size() {
			t.Fatalf("%s: Size %d, Marshal %d bytes", c.name, c.proof.Size(), len(b))
		}
		parsed := 0
		for i := range len(b) * 8 {
			m := slices.Clone(b)
			m[i/8] ^= 0x80 >> (i % 8)
			p, err := ParseProof(m)
			if err != nil {
				if !errors.Is(err, ErrMalformedProof) {
					t.Fatalf("%s: bit %d: parse error %v does not wrap ErrMalformedProof", c.name, i, err)
				}
				continue
			}
			parsed++
			if err := c.verify(p); err == nil {
				t.Fatalf("%s: proof with bit %d flipped still verifies", c.name, i)
			}
			if err := VerifyAbsence(c.root, c.key, p); err == nil && c.proof.Kind == Inclusion {
				t.Fatalf("%s: bit %d flipped turns inclusion into absence", c.name, i)
			}
			if err := VerifyInclusion(c.root, c.key, c.value, p); err == nil && c.proof.Kind != Inclusion {
				t.Fatalf("%s: bit %d flipped turns absence into inclusion", c.name, i)
			}
		}
		t.Logf("%s: %d bytes, %d of %d flips parse (and fail verification)", c.name, len(b), parsed, len(b)*8)
	}
}

// TestProofTampering changes proofs structurally rather than bit by bit.
func TestProofTampering(t *testing.T) {
	for _, c := range sampleClaims(t) {
		p := c.proof
		mutants := map[string]*Proof{}
		if d := p.Depth(); d > 0 {
			mutants["drop first sibling"] = &Proof{Kind: p.Kind, Siblings: p.Siblings[1:], OtherKey: p.OtherKey, OtherValue: p.OtherValue}
			mutants["drop last sibling"] = &Proof{Kind: p.Kind, Siblings: p.Siblings[:d-1], OtherKey: p.OtherKey, OtherValue: p.OtherValue}
		}
		mutants["extra sibling"] = &Proof{Kind: p.Kind, Siblings: append(slices.Clone(p.Siblings), Hash{1}), OtherKey: p.OtherKey, OtherValue: p.OtherValue}
		mutants["wrong kind"] = &Proof{Kind: (p.Kind + 1) % 3, Siblings: p.Siblings, OtherKey: c.key}
		for name, m := range mutants {
			if err := c.verify(m); err == nil {
				t.Errorf("%s: %s: still verifies", c.name, name)
			}
		}
		if err := c.verify(p); err != nil {
			t.Fatalf("%s: original no longer verifies: %v", c.name, err)
		}
		other := flip(c.key, 255)
		if c.proof.Kind == Inclusion {
			if VerifyInclusion(c.root, other, c.value, p) == nil {
				t.Errorf("%s: verifies for another key", c.name)
			}
		}
		if VerifyInclusion(flipHash(c.root), c.key, c.value, p) == nil || VerifyAbsence(flipHash(c.root), c.key, p) == nil {
			t.Errorf("%s: verifies against another root", c.name)
		}
	}
	// An absence proof may not end at the key's own leaf.
	c := sampleClaims(t)[2]
	if err := VerifyAbsence(c.root, c.proof.OtherKey, c.proof); !errors.Is(err, ErrProofMismatch) {
		t.Errorf("absence proof at the key's own leaf: %v, want ErrProofMismatch", err)
	}
	if err := VerifyInclusion(c.root, c.key, Hash{}, nil); !errors.Is(err, ErrMalformedProof) {
		t.Errorf("nil proof: %v", err)
	}
}

func TestParseProofRejects(t *testing.T) {
	sib := Hash{7}
	enc := func(version, kind byte, depth uint16, rest ...[]byte) []byte {
		b := []byte{version, kind, 0, 0}
		binary.BigEndian.PutUint16(b[2:], depth)
		for _, r := range rest {
			b = append(b, r...)
		}
		return b
	}
	valid := enc(1, 0, 3, []byte{0xa0}, sib[:], sib[:]) // siblings at depths 1 and 3
	if _, err := ParseProof(valid); err != nil {
		t.Fatalf("valid proof rejected: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "shorter than the header"},
		{"short header", []byte{1, 0, 0}, "shorter than the header"},
		{"version 0", enc(0, 0, 0), "version 0"},
		{"version 2", enc(2, 0, 0), "version 2"},
		{"unknown kind", enc(1, 3, 0), "unknown kind 3"},
		{"depth 257", enc(1, 0, 257, make([]byte, 33)), "depth 257 exceeds 256"},
		{"bitmap truncated", enc(1, 0, 9, []byte{0x80}), "bitmap truncated"},
		{"padding bit", enc(1, 0, 3, []byte{0xb0}, sib[:], sib[:], sib[:]), "padding"},
		{"trailing byte", append(slices.Clone(valid), 0), "siblings and leaf"},
		{"truncated sibling", valid[:len(valid)-1], "siblings and leaf"},
		{"explicit Empty", enc(1, 0, 2, []byte{0xc0}, Empty[:], sib[:]), "Empty but encoded explicitly"},
		{"empty terminal sibling", enc(1, 0, 2, []byte{0x80}, sib[:]), "terminal depth 2 is empty"},
		{"absence at 256", enc(1, 1, 256, bytes.Repeat([]byte{0xff}, 32), bytes.Repeat(sib[:], 256)), "depth 256 exceeds 255"},
		{"missing other leaf", enc(1, 2, 1, []byte{0x80}, sib[:]), "siblings and leaf"},
		{"too long", make([]byte, MaxProofSize+1), "exceeds the maximum"},
	}
	for _, tt := range tests {
		_, err := ParseProof(tt.b)
		if !errors.Is(err, ErrMalformedProof) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrMalformedProof mentioning %q", tt.name, err, tt.want)
		}
	}
	// Marshal of an impossible proof yields bytes that do not parse.
	bad := &Proof{Kind: Inclusion, Siblings: make([]Hash, 300)}
	if _, err := ParseProof(bad.Marshal()); err == nil {
		t.Errorf("Marshal of a depth-300 proof parsed")
	}
	if err := (&Proof{Kind: AbsenceEmpty, OtherKey: Key{1}}).Check(); err == nil {
		t.Errorf("absence-empty proof carrying another leaf passed Check")
	}
}

// TestProofSize checks the size promised in the package doc on a tree of
// 2^14 keys: at most 32·(log2 N + 2) bytes plus header and bitmap.
func TestProofSize(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	s := NewMemoryStore()
	tr := New(s)
	const n = 1 << 14
	var ch []Change
	for range n {
		ch = append(ch, Change{Key: randKey(r), Value: randHash(r)})
	}
	update(t, tr, s, 0, ch)
	total := 0
	for _, c := range ch[:2000] {
		p, err := tr.Prove(ctx, 1, c.Key)
		if err != nil {
			t.Fatal(err)
		}
		total += p.Size()
	}
	mean := float64(total) / 2000
	if limit := 32.0*(14+2) + 8; mean > limit {
		t.Errorf("mean proof size %.1f bytes at N=2^14 exceeds %.0f", mean, limit)
	}
	t.Logf("mean proof size at N=2^14: %.1f bytes", mean)
}

func TestNodeEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	for range 2000 {
		k := randKey(r)
		d := r.IntN(257)
		id := Position(k, d)
		var n Node
		switch r.IntN(3) {
		case 0:
			if d == 256 {
				continue
			}
			n = Node{ID: id, Kind: Internal, Branch: Position(k, d+r.IntN(256-d)), Left: randHash(r), Right: randHash(r)}
		case 1:
			n = Node{ID: id, Kind: Leaf, Key: k, Value: randHash(r)}
		case 2:
			n = Node{ID: id, Kind: Deleted}
		}
		b := AppendNode(nil, &n)
		if len(b) > MaxNodeSize {
			t.Fatalf("encoding of %+v is %d bytes", n, len(b))
		}
		got, err := ParseNode(id, b)
		if err != nil {
			t.Fatalf("ParseNode(AppendNode(%+v)): %v", n, err)
		}
		if got != n {
			t.Fatalf("round trip: %+v became %+v", n, got)
		}
	}
	id := NodeID{Depth: 3, Prefix: [32]byte{0xa0}}
	h := Hash{1}
	tests := []struct {
		name string
		id   NodeID
		b    []byte
		want string
	}{
		{"no kind", id, nil, "missing kind"},
		{"absent kind", id, []byte{0}, "unknown kind 0"},
		{"unknown kind", id, []byte{9}, "unknown kind 9"},
		{"deleted trailing", id, []byte{3, 0}, "trailing"},
		{"short leaf", id, append([]byte{2}, make([]byte, 63)...), "leaf body"},
		{"leaf outside", id, append([]byte{2}, make([]byte, 64)...), "outside its subtree"},
		{"branch depth 256", id, slices.Concat([]byte{1, 1, 0}, make([]byte, 32), h[:], h[:]), "exceeds 255"},
		{"branch above id", id, slices.Concat([]byte{1, 0, 2, 0x80}, h[:], h[:]), "branch depth 2"},
		{"branch outside", id, slices.Concat([]byte{1, 0, 4, 0x40}, h[:], h[:]), "outside its subtree"},
		{"branch padding", id, slices.Concat([]byte{1, 0, 4, 0xa1}, h[:], h[:]), "bits set past depth"},
		{"empty half", id, slices.Concat([]byte{1, 0, 4, 0xa0}, Empty[:], h[:]), "empty half"},
		{"internal trailing", id, slices.Concat([]byte{1, 0, 4, 0xa0}, h[:], h[:], []byte{0}), "internal node body"},
		{"bad id", NodeID{Depth: 2, Prefix: [32]byte{0xff}}, []byte{3}, "bits set past depth"},
	}
	for _, tt := range tests {
		_, err := ParseNode(tt.id, tt.b)
		if !errors.Is(err, ErrMalformedNode) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrMalformedNode mentioning %q", tt.name, err, tt.want)
		}
	}
}

func FuzzParseProof(f *testing.F) {
	for _, c := range sampleClaims(f) {
		f.Add(c.proof.Marshal())
	}
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{1, 2, 0, 1, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProof(b)
		if err != nil {
			return
		}
		if m := p.Marshal(); !bytes.Equal(m, b) {
			t.Fatalf("Marshal(ParseProof(%x)) = %x", b, m)
		}
		if p.Size() != len(b) {
			t.Fatalf("Size %d, encoding %d", p.Size(), len(b))
		}
		q, err := ParseProof(p.Marshal())
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("ParseProof(Marshal(p)) = %+v, %v; want %+v", q, err, p)
		}
	})
}

// FuzzVerify checks that verification never panics, on parsed proofs and
// on proofs built directly (which Verify must check itself).
func FuzzVerify(f *testing.F) {
	for _, c := range sampleClaims(f) {
		f.Add(c.proof.Marshal(), c.key[:], c.value[:], c.root[:], uint8(c.proof.Kind), uint16(c.proof.Depth()))
	}
	f.Fuzz(func(t *testing.T, b, key, value, root []byte, kind uint8, depth uint16) {
		var k Key
		var v, r Hash
		copy(k[:], key)
		copy(v[:], value)
		copy(r[:], root)
		if p, err := ParseProof(b); err == nil {
			incl, abs := VerifyInclusion(r, k, v, p), VerifyAbsence(r, k, p)
			if incl == nil && abs == nil {
				t.Fatalf("proof verifies both inclusion and absence")
			}
		}
		p := &Proof{Kind: ProofKind(kind), Siblings: make([]Hash, depth%300)}
		for i := range p.Siblings {
			if i < len(b) {
				p.Siblings[i][0] = b[i]
			}
		}
		_ = VerifyInclusion(r, k, v, p)
		_ = VerifyAbsence(r, k, p)
		_ = p.Marshal()
	})
}

func FuzzParseNode(f *testing.F) {
	h := Hash{1}
	f.Add(uint16(3), []byte{0xa0}, slices.Concat([]byte{1, 0, 4, 0xa0}, h[:], h[:]))
	f.Add(uint16(0), []byte{}, slices.Concat([]byte{2}, h[:], h[:]))
	f.Add(uint16(256), bytes.Repeat([]byte{0xff}, 32), []byte{3})
	f.Fuzz(func(t *testing.T, depth uint16, prefix, b []byte) {
		var id NodeID
		id.Depth = depth
		copy(id.Prefix[:], prefix)
		n, err := ParseNode(id, b)
		if err != nil {
			return
		}
		if m := AppendNode(nil, &n); !bytes.Equal(m, b) {
			t.Fatalf("AppendNode(ParseNode(%x)) = %x", b, m)
		}
		if err := n.Check(); err != nil {
			t.Fatalf("parsed node fails Check: %v", err)
		}
		if m, err := ParseNode(id, AppendNode(nil, &n)); err != nil || m != n {
			t.Fatalf("ParseNode(AppendNode(%+v)) = %+v, %v", n, m, err)
		}
	})
}

// FuzzUpdate runs random change sequences over a few colliding keys and
// compares every version with the reference model.
func FuzzUpdate(f *testing.F) {
	f.Add([]byte{0x01, 0x12, 0x23, 0xff, 0x81, 0x92})
	f.Add([]byte{0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0xfa, 0x8f, 0x9e})
	keys := collidingKeys(8)
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			return
		}
		s := NewMemoryStore()
		tr := New(s)
		model := map[Key]Hash{}
		var v uint64
		var batch []Change
		seen := map[Key]bool{}
		for i, op := range ops {
			// op: bit 7 = remove, bits 4-6 = value, bits 0-2 = key; 0xff ends a batch.
			if op != 0xff {
				k := keys[op&7]
				if !seen[k] {
					seen[k] = true
					batch = append(batch, Change{Key: k, Value: valueOf(int(op>>4&7), 0), Remove: op&0x80 != 0})
				}
			}
			if op == 0xff || i == len(ops)-1 {
				root := update(t, tr, s, v, batch)
				v++
				model = applyModel(model, batch)
				if want := refRoot(model); root != want {
					t.Fatalf("version %d: root %v, want %v", v, root, want)
				}
				checkStructure(t, s, v, model)
				batch, seen = nil, map[Key]bool{}
			}
		}
	})
}
