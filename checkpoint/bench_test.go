package checkpoint

import (
	"crypto/ed25519"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
)

// BenchmarkOpen verifies a checkpoint with the log signature and 3 of 3
// cosignatures. Compare with BenchmarkEd25519Verify4, the raw signature
// checks it cannot avoid.
func BenchmarkOpen(b *testing.B) {
	r := newRealm(b, 3)
	msg := signAll(b, testCheckpoint(b), r.log, r.cosigners)
	logV := r.log.Verifier()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(msg, testRealm, logV, r.vs, 3); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify4 is the floor of BenchmarkOpen: ed25519.Verify of
// the same four signatures over the same messages.
func BenchmarkEd25519Verify4(b *testing.B) {
	r := newRealm(b, 3)
	text, _ := testCheckpoint(b).Marshal()
	pubs := []ed25519.PublicKey{r.log.PublicKey()}
	msgs := [][]byte{text}
	sigs := [][]byte{ed25519.Sign(testKey(1), text)}
	for _, c := range r.cosigners {
		s, err := c.Sign(text)
		if err != nil {
			b.Fatal(err)
		}
		pubs = append(pubs, c.PublicKey())
		msgs = append(msgs, CosignedMessage(binary.BigEndian.Uint64(s), text))
		sigs = append(sigs, s[8:])
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range pubs {
			if !ed25519.Verify(pubs[i], msgs[i], sigs[i]) {
				b.Fatal("bad signature")
			}
		}
	}
}

var (
	bigLogOnce sync.Once
	bigLog     *MemoryLog
)

const bigLogSize = 1_000_000

func millionLog(b *testing.B) *MemoryLog {
	bigLogOnce.Do(func() {
		m := NewMemoryLog()
		var buf [8]byte
		for i := range uint64(bigLogSize) {
			binary.BigEndian.PutUint64(buf[:], i)
			if _, err := m.Append(LeafHash(buf[:])); err != nil {
				panic(err)
			}
		}
		bigLog = m
	})
	return bigLog
}

func BenchmarkInclusionProof1M(b *testing.B) {
	m := millionLog(b)
	rng := rand.New(rand.NewPCG(1, 1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := InclusionProof(rng.Uint64N(bigLogSize), bigLogSize, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsistencyProof1M(b *testing.B) {
	m := millionLog(b)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ConsistencyProof(1+rng.Uint64N(bigLogSize-1), bigLogSize, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyInclusion1M(b *testing.B) {
	m := millionLog(b)
	const index = 123_456
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], index)
	leaf := LeafHash(buf[:])
	p, err := InclusionProof(index, bigLogSize, m)
	if err != nil {
		b.Fatal(err)
	}
	root, err := Root(bigLogSize, m)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyInclusion(leaf, index, bigLogSize, p, root); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend1M is one epoch's append to a log of a million epochs.
func BenchmarkAppend1M(b *testing.B) {
	m := millionLog(b)
	var leaf [32]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := AppendLeaf(bigLogSize, leaf, m); err != nil {
			b.Fatal(err)
		}
	}
}
