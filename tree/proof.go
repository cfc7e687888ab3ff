package tree

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// ProofKind says what a proof's path ends in.
type ProofKind uint8

// Proof kinds; the numeric values are the kind byte of the encoding.
const (
	// Inclusion: the path ends in the looked-up key's own leaf.
	Inclusion ProofKind = 0
	// AbsenceEmpty: the path ends in an empty subtree.
	AbsenceEmpty ProofKind = 1
	// AbsenceLeaf: the path ends in the leaf of another key, which shares
	// the path's prefix.
	AbsenceLeaf ProofKind = 2
)

// String returns the kind's name.
func (k ProofKind) String() string {
	switch k {
	case Inclusion:
		return "inclusion"
	case AbsenceEmpty:
		return "absence (empty)"
	case AbsenceLeaf:
		return "absence (other leaf)"
	}
	return fmt.Sprintf("proofkind(%d)", uint8(k))
}

// Proof proves the value of a key, or its absence, against a root. See the
// package documentation for what a canonical proof is and its encoding.
type Proof struct {
	Kind ProofKind
	// Siblings[i] is the hash of the sibling of the path node at depth
	// i+1 (Empty where the sibling is empty); len(Siblings) is the depth of
	// the terminal.
	Siblings []Hash
	// OtherKey and OtherValue are the terminal leaf of an AbsenceLeaf
	// proof, and zero otherwise.
	OtherKey   Key
	OtherValue Hash
}

// proofVersion is the first byte of every encoded proof.
const proofVersion = 0x01

// MaxProofSize is the size of the largest valid encoded proof.
const MaxProofSize = 4 + 256/8 + 256*32 + 64

// Depth returns the depth of the proof's terminal (its number of siblings).
func (p *Proof) Depth() int { return len(p.Siblings) }

// Marshal returns the canonical encoding of p:
//
//	proof    = version:0x01 ‖ kind:uint8 ‖ depth:uint16be ‖ bitmap ‖ siblings ‖ other
//	bitmap   = ceil(depth/8) bytes; bit i (most significant bit of byte 0
//	           first) is 1 iff the sibling at depth i+1 is not Empty; bits
//	           past depth are 0
//	siblings = the non-Empty sibling hashes, 32 bytes each, depth 1 first
//	other    = key:32 ‖ value:32 if kind is AbsenceLeaf, else nothing
//
// A p that Check rejects yields bytes that ParseProof rejects.
func (p *Proof) Marshal() []byte {
	d := len(p.Siblings)
	if d > 0xffff {
		d = 0xffff
	}
	out := make([]byte, 4, p.Size())
	out[0], out[1] = proofVersion, byte(p.Kind)
	binary.BigEndian.PutUint16(out[2:], uint16(d))
	bm := len(out)
	out = out[:bm+(d+7)/8]
	for i, s := range p.Siblings[:d] {
		if s != Empty {
			out[bm+i/8] |= 0x80 >> uint(i%8)
			out = append(out, s[:]...)
		}
	}
	if p.Kind == AbsenceLeaf {
		out = append(out, p.OtherKey[:]...)
		out = append(out, p.OtherValue[:]...)
	}
	return out
}

// Size returns len(p.Marshal()).
func (p *Proof) Size() int {
	n := 4 + (len(p.Siblings)+7)/8
	for _, s := range p.Siblings {
		if s != Empty {
			n += 32
		}
	}
	if p.Kind == AbsenceLeaf {
		n += 64
	}
	return n
}

// ParseProof parses a proof encoded by Marshal. It accepts exactly the
// encodings of canonical proofs (see Check): any other input, including
// trailing bytes, set padding bits and explicitly encoded Empty siblings,
// fails with an error wrapping ErrMalformedProof.
func ParseProof(b []byte) (*Proof, error) {
	if len(b) > MaxProofSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the maximum %d", ErrMalformedProof, len(b), MaxProofSize)
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrMalformedProof, len(b))
	}
	if b[0] != proofVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformedProof, b[0], proofVersion)
	}
	p := &Proof{Kind: ProofKind(b[1])}
	d := int(binary.BigEndian.Uint16(b[2:]))
	if d > 256 {
		return nil, fmt.Errorf("%w: depth %d exceeds 256", ErrMalformedProof, d)
	}
	b = b[4:]
	nb := (d + 7) / 8
	if len(b) < nb {
		return nil, fmt.Errorf("%w: bitmap truncated", ErrMalformedProof)
	}
	bitmap := b[:nb]
	b = b[nb:]
	count := 0
	for _, x := range bitmap {
		count += bits.OnesCount8(x)
	}
	if d%8 != 0 && bitmap[nb-1]&(0xff>>uint(d%8)) != 0 {
		return nil, fmt.Errorf("%w: bitmap padding bits set", ErrMalformedProof)
	}
	want := count * 32
	if p.Kind == AbsenceLeaf {
		want += 64
	}
	if len(b) != want {
		return nil, fmt.Errorf("%w: %d bytes of siblings and leaf, want %d", ErrMalformedProof, len(b), want)
	}
	p.Siblings = make([]Hash, d)
	for i := range p.Siblings {
		if bitmap[i/8]&(0x80>>uint(i%8)) == 0 {
			p.Siblings[i] = Empty
			continue
		}
		copy(p.Siblings[i][:], b[:32])
		b = b[32:]
		if p.Siblings[i] == Empty {
			return nil, fmt.Errorf("%w: sibling at depth %d is Empty but encoded explicitly", ErrMalformedProof, i+1)
		}
	}
	if p.Kind == AbsenceLeaf {
		copy(p.OtherKey[:], b[:32])
		copy(p.OtherValue[:], b[32:64])
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	return p, nil
}

// Check returns an error wrapping ErrMalformedProof unless p could have
// been produced by Prove from some tree, as far as can be told without the
// key and root:
//   - Kind is Inclusion, AbsenceEmpty or AbsenceLeaf;
//   - the depth is at most 256 (255 for absence proofs: an empty subtree
//     at depth 256 would have a one-key sibling, and another leaf sharing
//     256 bits with the key would be the key itself);
//   - the deepest sibling is not Empty: a leaf is collapsed as high as it
//     goes, so its sibling is non-empty, and an empty subtree's sibling
//     holds the two or more keys of its parent;
//   - OtherKey and OtherValue are zero unless Kind is AbsenceLeaf.
func (p *Proof) Check() error {
	d := len(p.Siblings)
	switch p.Kind {
	case Inclusion:
		if d > 256 {
			return fmt.Errorf("%w: inclusion depth %d exceeds 256", ErrMalformedProof, d)
		}
	case AbsenceEmpty, AbsenceLeaf:
		if d > 255 {
			return fmt.Errorf("%w: %v depth %d exceeds 255", ErrMalformedProof, p.Kind, d)
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrMalformedProof, uint8(p.Kind))
	}
	if p.Kind != AbsenceLeaf && (p.OtherKey != Key{} || p.OtherValue != Hash{}) {
		return fmt.Errorf("%w: %v proof carries another leaf", ErrMalformedProof, p.Kind)
	}
	if d > 0 && p.Siblings[d-1] == Empty {
		return fmt.Errorf("%w: sibling at terminal depth %d is empty", ErrMalformedProof, d)
	}
	return nil
}

// root returns the root that p leads to from terminal hash h for key.
func (p *Proof) root(key *Key, h Hash) Hash {
	k := (*[32]byte)(key)
	for i := len(p.Siblings) - 1; i >= 0; i-- {
		if bitAt(k, i) == 0 {
			h = NodeHash(h, p.Siblings[i])
		} else {
			h = NodeHash(p.Siblings[i], h)
		}
	}
	return h
}

// VerifyInclusion checks that p proves key has value in the tree with the
// given root. It returns an error wrapping ErrMalformedProof or
// ErrProofMismatch if not.
func VerifyInclusion(root Hash, key Key, value Hash, p *Proof) error {
	if p == nil {
		return fmt.Errorf("%w: nil proof", ErrMalformedProof)
	}
	if err := p.Check(); err != nil {
		return err
	}
	if p.Kind != Inclusion {
		return fmt.Errorf("%w: %v proof given for inclusion", ErrProofMismatch, p.Kind)
	}
	if p.root(&key, LeafHash(key, value)) != root {
		return fmt.Errorf("%w: inclusion of %v leads to a different root", ErrProofMismatch, key)
	}
	return nil
}

// VerifyAbsence checks that p proves key is not in the tree with the given
// root. It returns an error wrapping ErrMalformedProof or ErrProofMismatch
// if not.
func VerifyAbsence(root Hash, key Key, p *Proof) error {
	if p == nil {
		return fmt.Errorf("%w: nil proof", ErrMalformedProof)
	}
	if err := p.Check(); err != nil {
		return err
	}
	var h Hash
	switch p.Kind {
	case AbsenceEmpty:
		h = Empty
	case AbsenceLeaf:
		k, o := [32]byte(key), [32]byte(p.OtherKey)
		if p.OtherKey == key {
			return fmt.Errorf("%w: absence proof ends in the key's own leaf", ErrProofMismatch)
		}
		if commonPrefix(&k, &o) < len(p.Siblings) {
			return fmt.Errorf("%w: other leaf %v is not on the path of %v at depth %d", ErrProofMismatch, p.OtherKey, key, len(p.Siblings))
		}
		h = LeafHash(p.OtherKey, p.OtherValue)
	default:
		return fmt.Errorf("%w: %v proof given for absence", ErrProofMismatch, p.Kind)
	}
	if p.root(&key, h) != root {
		return fmt.Errorf("%w: absence of %v leads to a different root", ErrProofMismatch, key)
	}
	return nil
}
