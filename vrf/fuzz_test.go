package vrf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// FuzzVerify checks that Verify never panics on arbitrary keys, inputs and
// proofs, that whatever it accepts is well formed and accepted by the model
// too, and that under a key made from a seed it accepts exactly the proof
// Prove makes.
func FuzzVerify(f *testing.F) {
	for _, v := range loadRFCVectors(f) {
		f.Add(v.SK, v.PK, v.Alpha, v.Pi)
		bad := bytes.Clone(v.Pi)
		bad[40] ^= 0x10
		f.Add(v.SK, v.PK, v.Alpha, bad)
		f.Add(v.SK, v.PK, append(bytes.Clone(v.Alpha), 0), v.Pi)
		f.Add(v.SK[:31], v.PK[:31], v.Alpha, v.Pi[:79])
	}
	f.Add(make([]byte, 32), mustHex(smallOrderPoints[0]), []byte("alpha"), make([]byte, 80))
	f.Add([]byte{}, []byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, seed, pkBytes, alpha, proof []byte) {
		if pk, err := ParsePublicKey(pkBytes); err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ParsePublicKey error %v does not wrap ErrInvalidKey", err)
			}
		} else {
			beta, err := pk.Verify(alpha, proof)
			if err != nil {
				if !errors.Is(err, ErrInvalidProof) {
					t.Fatalf("Verify error %v does not wrap ErrInvalidProof", err)
				}
			} else {
				if b, err := ProofToHash(proof); err != nil || b != beta {
					t.Fatalf("accepted proof: ProofToHash = %x, %v; Verify gave %x", b, err, beta)
				}
				if mb, ok := mVerify(pkBytes, alpha, proof); !ok || !bytes.Equal(mb, beta[:]) {
					t.Fatalf("Verify accepted a proof the model rejects")
				}
			}
		}
		if len(seed) != SeedSize {
			if _, err := NewPrivateKey(seed); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("NewPrivateKey of %d bytes = %v, want ErrInvalidKey", len(seed), err)
			}
			return
		}
		k := mustKey(t, seed)
		wantBeta, wantProof := k.Prove(alpha)
		beta, err := k.Public().Verify(alpha, proof)
		if err == nil && (!bytes.Equal(proof, wantProof[:]) || beta != wantBeta) {
			t.Fatalf("Verify accepted %x, but Prove makes %x", proof, wantProof)
		}
		if err != nil && bytes.Equal(proof, wantProof[:]) {
			t.Fatalf("Verify rejected Prove's own proof: %v", err)
		}
	})
}

// FuzzParsePublicKey compares ParsePublicKey with the model's strict
// decoding and small-order check, and checks that an accepted key encodes
// back to its input.
func FuzzParsePublicKey(f *testing.F) {
	for _, v := range loadRFCVectors(f) {
		f.Add(v.PK)
		f.Add(v.Pi[:32])
	}
	for _, s := range smallOrderPoints {
		f.Add(mustHex(s))
	}
	f.Add(mustHex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"))
	f.Add(mustHex("0100000000000000000000000000000000000000000000000000000000000080"))
	f.Add(mustHex("0200000000000000000000000000000000000000000000000000000000000000"))
	f.Add(make([]byte, 31))
	f.Add(make([]byte, 33))
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := ParsePublicKey(b)
		mp, ok := mDecode(b)
		modelOK := ok && !mEqual(mMulCofactor(mp), mIdent)
		if (err == nil) != modelOK {
			t.Fatalf("ParsePublicKey(%x) = %v, model accepts = %v", b, err, modelOK)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error %v does not wrap ErrInvalidKey", err)
			}
			return
		}
		if !bytes.Equal(pk.Bytes(), b) || !bytes.Equal(pk.y.Bytes(), b) {
			t.Fatalf("ParsePublicKey(%x) encodes back to %x", b, pk.Bytes())
		}
	})
}

// FuzzProofToHash checks the proof parser: an accepted proof re-encodes to
// its input and hashes as the model does; a rejected one is malformed.
func FuzzProofToHash(f *testing.F) {
	for _, v := range loadRFCVectors(f) {
		f.Add(v.Pi)
		f.Add(append(bytes.Clone(v.Pi), 0))
		f.Add(append(bytes.Clone(v.Pi[:48]), bytes.Repeat([]byte{0xff}, 32)...))
	}
	f.Add(make([]byte, 80))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		beta, err := ProofToHash(b)
		modelOK := false
		var mp mPoint
		if len(b) == ProofSize {
			var ok bool
			mp, ok = mDecode(b[:32])
			modelOK = ok && mLEToInt(b[48:]).Cmp(mL) < 0
		}
		if (err == nil) != modelOK {
			t.Fatalf("ProofToHash(%x) = %v, model accepts = %v", b, err, modelOK)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidProof) {
				t.Fatalf("error %v does not wrap ErrInvalidProof", err)
			}
			return
		}
		gamma, c, s, err := decodeProof(b)
		if err != nil {
			t.Fatal(err)
		}
		enc := append(append(gamma.Bytes(), c[:]...), s.Bytes()...)
		if !bytes.Equal(enc, b) {
			t.Fatalf("proof %x re-encodes to %x", b, enc)
		}
		if !bytes.Equal(mProofToHash(mp), beta[:]) {
			t.Fatalf("ProofToHash(%x) = %x, model %x", b, beta, mProofToHash(mp))
		}
	})
}

// parseInput is a strict parser for Input's encoding, used to show that the
// encoding is injective and canonical.
func parseInput(b []byte) (realm, userID string, ok bool) {
	rest, found := bytes.CutPrefix(b, []byte(inputTag+"\x00"))
	if !found || len(rest) < 2 {
		return "", "", false
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if n > MaxRealmSize || len(rest) < n+4 {
		return "", "", false
	}
	realm, rest = string(rest[:n]), rest[n:]
	m := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if m > MaxUserIDSize || uint64(len(rest)) != uint64(m) {
		return "", "", false
	}
	return realm, string(rest), true
}

// FuzzInput checks parse(Input(r, u)) == (r, u) and Input(parse(b)) == b.
func FuzzInput(f *testing.F) {
	f.Add("example.com", "alice@example.com", []byte(nil))
	f.Add("", "", []byte(inputTag+"\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(strings.Repeat("r", MaxRealmSize+1), "u", []byte(inputTag))
	f.Add("r", strings.Repeat("u", MaxUserIDSize+1), []byte("conifer/vrf-input/v1\x00\x00\x01a\x00\x00\x00\x01b"))
	f.Add("a\x00b", "\x00\x00\x00\x01", []byte("conifer/vrf-input/v1\x00\x00\x01a\x00\x00\x00\x01bc"))
	f.Fuzz(func(t *testing.T, realm, userID string, b []byte) {
		alpha, err := Input(realm, userID)
		if len(realm) > MaxRealmSize || len(userID) > MaxUserIDSize {
			if !errors.Is(err, ErrInputTooLong) {
				t.Fatalf("Input of %d, %d bytes = %v, want ErrInputTooLong", len(realm), len(userID), err)
			}
		} else {
			if err != nil {
				t.Fatal(err)
			}
			r, u, ok := parseInput(alpha)
			if !ok || r != realm || u != userID {
				t.Fatalf("Input(%q, %q) = %x parses as %q, %q, %v", realm, userID, alpha, r, u, ok)
			}
		}
		if r, u, ok := parseInput(b); ok {
			alpha, err := Input(r, u)
			if err != nil || !bytes.Equal(alpha, b) {
				t.Fatalf("%x parses as %q, %q, which encode to %x, %v", b, r, u, alpha, err)
			}
		}
	})
}
