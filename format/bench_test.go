package format

import (
	"crypto/ed25519"
	"testing"
)

// benchUpdate returns an encoded SignedEntry that updates a version 1 entry
// under policy p (old and new policy both p), signed by keys.
func benchUpdate(b *testing.B, p *Policy, keys []int) (old *Entry, oldHash [32]byte, enc []byte) {
	old = &Entry{Realm: "example.com", Index: fixedBytes("index"), Version: 1, Policy: *p, Commitment: fixedBytes("c1")}
	oldHash = EntryHash(mustMarshal(b, old))
	next := &Entry{Realm: "example.com", Index: old.Index, Version: 2, Prev: oldHash, Policy: *p, Commitment: fixedBytes("c2")}
	nb := mustMarshal(b, next)
	s := &SignedEntry{Entry: nb}
	for _, k := range keys {
		s.Signatures = append(s.Signatures, SignEntry(testKey(k), EntryHash(nb)))
	}
	SortSignatures(s.Signatures)
	return old, oldHash, mustMarshal(b, s)
}

// verifyUpdate is what the statemachine does per update (minus
// registration): parse, hash, check the transition, verify both quorums.
func verifyUpdate(old *Entry, oldHash [32]byte, enc []byte) error {
	s, next, err := ParseSignedEntry(enc)
	if err != nil {
		return err
	}
	h := EntryHash(s.Entry)
	if err := CheckTransition(old, oldHash, next); err != nil {
		return err
	}
	return VerifyUpdateSignatures(old, next, h, s.Signatures)
}

func benchVerifyUpdate(b *testing.B, p *Policy, keys []int) {
	old, oldHash, enc := benchUpdate(b, p, keys)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := verifyUpdate(old, oldHash, enc); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRawVerify is the floor: n bare ed25519.Verify calls over a message
// of the same length as SigningMessage.
func benchRawVerify(b *testing.B, n int) {
	msg := SigningMessage(fixedBytes("entry"))
	pubs := make([]ed25519.PublicKey, n)
	sigs := make([][]byte, n)
	for i := range pubs {
		pubs[i] = testPub(i)
		sigs[i] = ed25519.Sign(testKey(i), msg)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range pubs {
			if !ed25519.Verify(pubs[i], msg, sigs[i]) {
				b.Fatal("bad signature")
			}
		}
	}
}

// BenchmarkVerifyUpdate measures parse + hash + transition + quorum checks
// of a SignedEntry. Compare each case with BenchmarkEd25519Verify of the
// same number of signatures: the difference is this package's overhead.
func BenchmarkVerifyUpdate(b *testing.B) {
	b.Run("1-of-1", func(b *testing.B) { benchVerifyUpdate(b, mustPolicy(b, 1, 0), []int{0}) })
	b.Run("3-of-3", func(b *testing.B) { benchVerifyUpdate(b, mustPolicy(b, 3, 0, 1, 2), []int{0, 1, 2}) })
}

// BenchmarkEd25519Verify is the raw signature cost, measured in the same run.
func BenchmarkEd25519Verify(b *testing.B) {
	b.Run("x1", func(b *testing.B) { benchRawVerify(b, 1) })
	b.Run("x3", func(b *testing.B) { benchRawVerify(b, 3) })
}

// BenchmarkParse measures parsing alone.
func BenchmarkParse(b *testing.B) {
	f := newFixtures(b)
	se := mustMarshal(b, f.signedUpdate)
	rec := mustMarshal(b, f.recBob)
	bundle := mustMarshal(b, f.bundleTwo)
	b.Run("signed_entry", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := ParseSignedEntry(se); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("log_record", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := ParseLogRecord(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bundle-2-records", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseBundle(bundle); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUpdateOverhead isolates what this package adds around the
// signature checks of BenchmarkVerifyUpdate: parsing, hashing, the
// transition rules, the signing message, key lookups by KeyID and the
// quorum logic — everything but ed25519.Verify itself.
func BenchmarkUpdateOverhead(b *testing.B) {
	run := func(b *testing.B, p *Policy, keys []int) {
		old, oldHash, enc := benchUpdate(b, p, keys)
		b.ReportAllocs()
		for b.Loop() {
			s, next, err := ParseSignedEntry(enc)
			if err != nil {
				b.Fatal(err)
			}
			h := EntryHash(s.Entry)
			if err := CheckTransition(old, oldHash, next); err != nil {
				b.Fatal(err)
			}
			_ = SigningMessage(h)
			signed := func(id KeyID) bool {
				for i := range s.Signatures {
					if s.Signatures[i].KeyID == id {
						return true
					}
				}
				return false
			}
			if !old.Policy.Satisfied(signed) || !next.Policy.Satisfied(signed) {
				b.Fatal("not satisfied")
			}
		}
	}
	b.Run("1-of-1", func(b *testing.B) { run(b, mustPolicy(b, 1, 0), []int{0}) })
	b.Run("3-of-3", func(b *testing.B) { run(b, mustPolicy(b, 3, 0, 1, 2), []int{0, 1, 2}) })
}
