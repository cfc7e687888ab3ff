package statemachine

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"filippo.io/edwards25519"

	"github.com/conifer-kt/conifer/format"
)

// The state machine verifies with curve25519-voi; every other party (the
// format package, clients) with crypto/ed25519. These tests require the
// same verdict from both on the inputs where Ed25519 implementations are
// known to disagree ("Taming the many EdDSAs", Chalkias et al. 2020):
// non-canonical S, non-canonical R, small-order A and R, and A or R with
// a small-order component (where cofactored and cofactorless equations
// differ).

// agree checks that both verifiers give the same verdict and returns it.
func agree(t *testing.T, what string, pub, msg, sig []byte) bool {
	t.Helper()
	want := ed25519.Verify(pub, msg, sig)
	var s [64]byte
	copy(s[:], sig)
	if got := verifySignature(pub, msg, &s); got != want {
		t.Fatalf("%s: voi says %v, crypto/ed25519 says %v\npub %x\nmsg %x\nsig %x", what, got, want, pub, msg, sig)
	}
	return want
}

// torsion returns the 8 points of small order, T[i] = i·T1 with T1 of
// order 8.
func torsion(t *testing.T) []*edwards25519.Point {
	t1b, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	t1, err := new(edwards25519.Point).SetBytes(t1b)
	if err != nil {
		t.Fatal(err)
	}
	pts := []*edwards25519.Point{edwards25519.NewIdentityPoint()}
	for i := 1; i < 8; i++ {
		pts = append(pts, new(edwards25519.Point).Add(pts[i-1], t1))
	}
	if !bytes.Equal(new(edwards25519.Point).Add(pts[7], t1).Bytes(), edwards25519.NewIdentityPoint().Bytes()) {
		t.Fatal("T1 is not of order 8")
	}
	return pts
}

// secret returns the secret scalar of test key i (RFC 8032 5.1.5).
func secret(i int) *edwards25519.Scalar {
	h := sha512.Sum512(key(i).Seed())
	a, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		panic(err)
	}
	return a
}

// challenge returns k = SHA-512(R || A || M) mod L.
func challenge(r, a, m []byte) *edwards25519.Scalar {
	h := sha512.New()
	h.Write(r)
	h.Write(a)
	h.Write(m)
	k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	if err != nil {
		panic(err)
	}
	return k
}

func randScalar(rng *rand.Rand) *edwards25519.Scalar {
	var b [64]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	s, _ := edwards25519.NewScalar().SetUniformBytes(b[:])
	return s
}

func TestVerifyAgreesOnBitFlips(t *testing.T) {
	for i := range 3 {
		msg := fmt.Appendf(nil, "message %d", i)
		pub, sig := pub(i), ed25519.Sign(key(i), msg)
		if !agree(t, "valid", pub, msg, sig) {
			t.Fatal("valid signature rejected")
		}
		for bit := range 8 * len(sig) {
			s := bytes.Clone(sig)
			s[bit/8] ^= 1 << (bit % 8)
			agree(t, fmt.Sprintf("sig bit %d", bit), pub, msg, s)
		}
		for bit := range 8 * len(pub) {
			p := bytes.Clone(pub)
			p[bit/8] ^= 1 << (bit % 8)
			agree(t, fmt.Sprintf("key bit %d", bit), p, msg, sig)
		}
		for bit := range 8 * len(msg) {
			m := bytes.Clone(msg)
			m[bit/8] ^= 1 << (bit % 8)
			if agree(t, fmt.Sprintf("msg bit %d", bit), pub, m, sig) {
				t.Fatal("signature verifies for another message")
			}
		}
	}
}

func TestVerifyAgreesOnNonCanonicalS(t *testing.T) {
	msg := []byte("s")
	sig := ed25519.Sign(key(1), msg)
	// S + L: the same scalar, non-canonically encoded.
	S, _ := edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
	var sPlusL [32]byte
	lBytes, _ := hex.DecodeString("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
	carry := 0
	sb := S.Bytes()
	for i := range 32 {
		v := int(sb[i]) + int(lBytes[i]) + carry
		sPlusL[i], carry = byte(v), v>>8
	}
	bad := append(bytes.Clone(sig[:32]), sPlusL[:]...)
	if agree(t, "S+L", pub(1), msg, bad) {
		t.Fatal("non-canonical S accepted")
	}
	bad[63] |= 0xe0
	agree(t, "S with high bits", pub(1), msg, bad)
}

func TestVerifyAgreesOnTorsion(t *testing.T) {
	T := torsion(t)
	rng := rand.New(rand.NewPCG(1, 2))
	a := secret(2)
	A := new(edwards25519.Point).ScalarBaseMult(a)
	accepted, rejected := 0, 0
	for i := range 64 {
		msg := fmt.Appendf(nil, "torsion %d", i)
		r := randScalar(rng)
		tp := T[1+i%7]

		// R with a small-order component, honest A: cofactored verification
		// would accept; both must reject.
		R := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(r), tp)
		k := challenge(R.Bytes(), A.Bytes(), msg)
		S := edwards25519.NewScalar().MultiplyAdd(k, a, r)
		if agree(t, "R with torsion", A.Bytes(), msg, append(R.Bytes(), S.Bytes()...)) {
			t.Fatal("R with a torsion component accepted")
		}
		// The same construction without torsion verifies (the test is sound).
		R0 := new(edwards25519.Point).ScalarBaseMult(r)
		k0 := challenge(R0.Bytes(), A.Bytes(), msg)
		S0 := edwards25519.NewScalar().MultiplyAdd(k0, a, r)
		if !agree(t, "honest", A.Bytes(), msg, append(R0.Bytes(), S0.Bytes()...)) {
			t.Fatal("honest construction rejected")
		}

		// A with a small-order component: the cofactorless equation holds
		// exactly when k·T = 0, about one time in eight.
		Am := new(edwards25519.Point).Add(A, tp)
		km := challenge(R0.Bytes(), Am.Bytes(), msg)
		Sm := edwards25519.NewScalar().MultiplyAdd(km, a, r)
		if agree(t, "A with torsion", Am.Bytes(), msg, append(R0.Bytes(), Sm.Bytes()...)) {
			accepted++
		} else {
			rejected++
		}
	}
	if accepted == 0 || rejected == 0 {
		t.Fatalf("mixed-order A: %d accepted, %d rejected; want both outcomes", accepted, rejected)
	}
}

func TestVerifyAgreesOnSmallOrder(t *testing.T) {
	T := torsion(t)
	zero := make([]byte, 32)
	accepted := 0
	for ai, A := range T {
		for ri, R := range T {
			for m := range 16 {
				msg := fmt.Appendf(nil, "small %d", m)
				// S = 0: valid iff R = -k·A.
				if agree(t, fmt.Sprintf("A=T%d R=T%d", ai, ri), A.Bytes(), msg, append(R.Bytes(), zero...)) {
					accepted++
				}
			}
		}
	}
	if accepted == 0 {
		t.Fatal("no small-order signature accepted; the test exercises nothing")
	}
	// Non-canonical encodings of the identity as R, with A the identity
	// (any S = 0 signature "verifies" there): y = 1 + p, and x = -0.
	idA := T[0].Bytes()
	for _, r := range []string{
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0100000000000000000000000000000000000000000000000000000000000080",
	} {
		rb, _ := hex.DecodeString(r)
		if agree(t, "non-canonical R "+r, idA, []byte("m"), append(rb, zero...)) {
			t.Fatalf("non-canonical R %s accepted", r)
		}
	}
	if !agree(t, "canonical identity R", idA, []byte("m"), append(T[0].Bytes(), zero...)) {
		t.Fatal("identity signature under the identity key rejected")
	}
}

// TestVerifyNonCanonicalKeys: keys with y >= p are refused by format
// before any signature is checked, so the verifiers need not agree on
// them; they do anyway, on small-order signatures that make some of them
// verify.
func TestVerifyNonCanonicalKeys(t *testing.T) {
	T := torsion(t)
	zero := make([]byte, 32)
	accepted := 0
	for y := range 19 {
		b := make([]byte, 32)
		// y + p, little-endian.
		v := y + 0xed
		b[0] = byte(v)
		carry := v >> 8
		for i := 1; i < 31; i++ {
			v = 0xff + carry
			b[i], carry = byte(v), v>>8
		}
		b[31] = byte(0x7f + carry)
		p := format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{b}}
		if p.Validate() == nil {
			t.Fatalf("format accepts the non-canonical key %x", b)
		}
		for ri, R := range T {
			if agree(t, fmt.Sprintf("A=%d+p R=T%d", y, ri), b, []byte("m"), append(R.Bytes(), zero...)) {
				accepted++
			}
		}
	}
	if accepted == 0 {
		t.Fatal("no signature under a non-canonical key verified; the test exercises nothing")
	}
}
