package vrf

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/edwards25519"
)

// rfcVector is one example of RFC 9381 Appendix B.3, decoded from
// testdata/rfc9381-b3.json.
type rfcVector struct {
	Example                    int
	SK, PK, Alpha, X           []byte
	Ctr                        int
	H, KString, U, V, Pi, Beta []byte
}

func loadRFCVectors(t testing.TB) []rfcVector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "rfc9381-b3.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Source  string `json:"source"`
		URL     string `json:"url"`
		Note    string `json:"note"`
		Vectors []struct {
			Example int    `json:"example"`
			SK      string `json:"sk"`
			PK      string `json:"pk"`
			Alpha   string `json:"alpha"`
			X       string `json:"x"`
			Ctr     int    `json:"ctr"`
			H       string `json:"h"`
			KString string `json:"k_string"`
			U       string `json:"u"`
			V       string `json:"v"`
			Pi      string `json:"pi"`
			Beta    string `json:"beta"`
		} `json:"vectors"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	if file.URL != "https://www.rfc-editor.org/rfc/rfc9381#appendix-B.3" {
		t.Fatalf("unexpected source URL %q", file.URL)
	}
	if len(file.Vectors) != 3 {
		t.Fatalf("got %d vectors, want the 3 examples of Appendix B.3", len(file.Vectors))
	}
	h := func(s string, n int) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		if n >= 0 && len(b) != n {
			t.Fatalf("%q is %d bytes, want %d", s, len(b), n)
		}
		return b
	}
	var vs []rfcVector
	for _, v := range file.Vectors {
		vs = append(vs, rfcVector{
			Example: v.Example,
			SK:      h(v.SK, SeedSize), PK: h(v.PK, PublicKeySize), Alpha: h(v.Alpha, -1), X: h(v.X, 32),
			Ctr: v.Ctr, H: h(v.H, 32), KString: h(v.KString, 64), U: h(v.U, 32), V: h(v.V, 32),
			Pi: h(v.Pi, ProofSize), Beta: h(v.Beta, OutputSize),
		})
	}
	return vs
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func mustKey(t testing.TB, seed []byte) *PrivateKey {
	t.Helper()
	k, err := NewPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRFC9381Vectors(t *testing.T) {
	for _, v := range loadRFCVectors(t) {
		k := mustKey(t, v.SK)
		if got := k.Public().Bytes(); !bytes.Equal(got, v.PK) {
			t.Errorf("example %d: public key %x, want %x", v.Example, got, v.PK)
		}

		// Intermediate values.
		m := mNewKey(v.SK)
		if !bytes.Equal(m.xString, v.X) {
			t.Errorf("example %d: x %x, want %x", v.Example, m.xString, v.X)
		}
		xReduced := new(big.Int).Mod(mLEToInt(v.X), mL)
		if got := mLEToInt(k.x.Bytes()); got.Cmp(xReduced) != 0 {
			t.Errorf("example %d: secret scalar %v, want x mod L = %v", v.Example, got, xReduced)
		}
		if _, ctr := mEncodeToCurve(v.PK, v.Alpha); ctr != v.Ctr {
			t.Errorf("example %d: encode_to_curve succeeded on ctr %d, want %d", v.Example, ctr, v.Ctr)
		}
		h, hString, ok := encodeToCurve(v.PK, v.Alpha)
		if !ok || !bytes.Equal(hString[:], v.H) || !bytes.Equal(h.Bytes(), v.H) {
			t.Errorf("example %d: H %x, want %x", v.Example, hString, v.H)
		}
		kString := sha512.Sum512(append(k.prefix[:], v.H...))
		if !bytes.Equal(kString[:], v.KString) {
			t.Errorf("example %d: k string %x, want %x", v.Example, kString, v.KString)
		}
		nonce, _ := new(edwards25519.Scalar).SetUniformBytes(v.KString)
		if got := new(edwards25519.Point).ScalarBaseMult(nonce).Bytes(); !bytes.Equal(got, v.U) {
			t.Errorf("example %d: U %x, want %x", v.Example, got, v.U)
		}
		if got := new(edwards25519.Point).ScalarMult(nonce, h).Bytes(); !bytes.Equal(got, v.V) {
			t.Errorf("example %d: V %x, want %x", v.Example, got, v.V)
		}

		// Prove, Verify, ProofToHash.
		beta, pi := k.Prove(v.Alpha)
		if !bytes.Equal(pi[:], v.Pi) {
			t.Errorf("example %d: Prove gave pi %x, want %x", v.Example, pi, v.Pi)
		}
		if !bytes.Equal(beta[:], v.Beta) {
			t.Errorf("example %d: Prove gave beta %x, want %x", v.Example, beta, v.Beta)
		}
		pk, err := ParsePublicKey(v.PK)
		if err != nil {
			t.Fatalf("example %d: %v", v.Example, err)
		}
		beta, err = pk.Verify(v.Alpha, v.Pi)
		if err != nil || !bytes.Equal(beta[:], v.Beta) {
			t.Errorf("example %d: Verify = %x, %v; want %x", v.Example, beta, err, v.Beta)
		}
		beta, err = ProofToHash(v.Pi)
		if err != nil || !bytes.Equal(beta[:], v.Beta) {
			t.Errorf("example %d: ProofToHash = %x, %v; want %x", v.Example, beta, err, v.Beta)
		}

		// The independent model agrees.
		if !bytes.Equal(m.pk, v.PK) {
			t.Errorf("example %d: model public key %x", v.Example, m.pk)
		}
		mPi, mBeta := mProve(m, v.Alpha)
		if !bytes.Equal(mPi, v.Pi) || !bytes.Equal(mBeta, v.Beta) {
			t.Errorf("example %d: model Prove = %x, %x", v.Example, mPi, mBeta)
		}
		if mb, ok := mVerify(v.PK, v.Alpha, v.Pi); !ok || !bytes.Equal(mb, v.Beta) {
			t.Errorf("example %d: model Verify = %x, %v", v.Example, mb, ok)
		}
	}
}

func TestProofBitFlipsRejected(t *testing.T) {
	for _, v := range loadRFCVectors(t) {
		pk, err := ParsePublicKey(v.PK)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < ProofSize*8; i++ {
			pi := bytes.Clone(v.Pi)
			pi[i/8] ^= 1 << (i % 8)
			if beta, err := pk.Verify(v.Alpha, pi); !errors.Is(err, ErrInvalidProof) {
				t.Errorf("example %d: proof with bit %d flipped: Verify = %x, %v; want ErrInvalidProof", v.Example, i, beta, err)
			}
			// ProofToHash only reads Gamma: a flip there must fail to
			// parse or change the output; a flip in s may push it over L.
			beta, err := ProofToHash(pi)
			switch {
			case i < pointSize*8:
				if err == nil && bytes.Equal(beta[:], v.Beta) {
					t.Errorf("example %d: Gamma with bit %d flipped hashes to the same beta", v.Example, i)
				}
			case i < (pointSize+challengeSize)*8:
				if err != nil || !bytes.Equal(beta[:], v.Beta) {
					t.Errorf("example %d: c with bit %d flipped: ProofToHash = %x, %v", v.Example, i, beta, err)
				}
			}
			if err != nil && !errors.Is(err, ErrInvalidProof) {
				t.Errorf("example %d: bit %d: ProofToHash error %v does not wrap ErrInvalidProof", v.Example, i, err)
			}
		}
	}
}

func TestPublicKeyBitFlipsRejected(t *testing.T) {
	for _, v := range loadRFCVectors(t) {
		for i := 0; i < PublicKeySize*8; i++ {
			b := bytes.Clone(v.PK)
			b[i/8] ^= 1 << (i % 8)
			pk, err := ParsePublicKey(b)
			if err != nil {
				if !errors.Is(err, ErrInvalidKey) {
					t.Errorf("example %d: key bit %d: error %v does not wrap ErrInvalidKey", v.Example, i, err)
				}
				continue
			}
			if beta, err := pk.Verify(v.Alpha, v.Pi); !errors.Is(err, ErrInvalidProof) {
				t.Errorf("example %d: key with bit %d flipped: Verify = %x, %v; want ErrInvalidProof", v.Example, i, beta, err)
			}
		}
	}
}

func TestWrongAlphaRejected(t *testing.T) {
	vs := loadRFCVectors(t)
	for _, v := range vs {
		pk, err := ParsePublicKey(v.PK)
		if err != nil {
			t.Fatal(err)
		}
		alphas := [][]byte{append(bytes.Clone(v.Alpha), 0), append([]byte{0}, v.Alpha...), []byte("x")}
		if len(v.Alpha) > 0 {
			alphas = append(alphas, v.Alpha[:len(v.Alpha)-1], v.Alpha[1:])
		}
		for i := 0; i < len(v.Alpha)*8; i++ {
			a := bytes.Clone(v.Alpha)
			a[i/8] ^= 1 << (i % 8)
			alphas = append(alphas, a)
		}
		for _, w := range vs {
			if w.Example != v.Example {
				alphas = append(alphas, w.Alpha)
			}
		}
		for _, a := range alphas {
			if beta, err := pk.Verify(a, v.Pi); !errors.Is(err, ErrInvalidProof) {
				t.Errorf("example %d: alpha %x: Verify = %x, %v; want ErrInvalidProof", v.Example, a, beta, err)
			}
		}
		// Another example's key with this proof.
		for _, w := range vs {
			if w.Example == v.Example {
				continue
			}
			other, err := ParsePublicKey(w.PK)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Verify(v.Alpha, v.Pi); !errors.Is(err, ErrInvalidProof) {
				t.Errorf("example %d's proof under example %d's key: %v, want ErrInvalidProof", v.Example, w.Example, err)
			}
		}
	}
}

// smallOrderPoints are the canonical encodings of the eight points of order
// dividing 8 (the torsion subgroup of edwards25519).
var smallOrderPoints = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // identity
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2, y = -1
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4, y = 0
	"0000000000000000000000000000000000000000000000000000000000000080", // order 4, y = 0
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
}

func TestSmallOrderPublicKeysRejected(t *testing.T) {
	// The list is exactly the subgroup generated by an order-8 point.
	gen, ok := mDecode(mustHex(smallOrderPoints[4]))
	if !ok {
		t.Fatal("order-8 point does not decode")
	}
	want := map[string]bool{}
	p := mIdent
	for i := 0; i < 8; i++ {
		want[hex.EncodeToString(mEncode(p))] = true
		p = mAdd(p, gen)
	}
	if !mEqual(p, mIdent) {
		t.Fatal("8·T is not the identity")
	}
	if len(want) != 8 {
		t.Fatalf("T generates %d points, want 8", len(want))
	}
	for _, s := range smallOrderPoints {
		if !want[s] {
			t.Errorf("%s is not in the torsion subgroup", s)
		}
		delete(want, s)
		_, err := ParsePublicKey(mustHex(s))
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParsePublicKey(%s) = %v, want ErrInvalidKey", s, err)
		}
		if _, err := decodePoint(mustHex(s)); err != nil {
			t.Errorf("%s: rejected as %v, want rejected only for its order", s, err)
		}
	}
	if len(want) != 0 {
		t.Errorf("small-order points missing from the list: %v", want)
	}

	// A point with a small-order component but of large order is fine.
	k := mustKey(t, bytes.Repeat([]byte{7}, 32))
	y := new(edwards25519.Point).Add(k.pub.y, mustPoint(t, smallOrderPoints[4]))
	if _, err := ParsePublicKey(y.Bytes()); err != nil {
		t.Errorf("Y + T (mixed order) rejected: %v", err)
	}
}

func mustPoint(t testing.TB, s string) *edwards25519.Point {
	t.Helper()
	p, err := new(edwards25519.Point).SetBytes(mustHex(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// leY returns the 32-byte little-endian encoding of y with the sign bit.
func leY(y *big.Int, sign byte) []byte {
	b := mIntToLE(y, 32)
	b[31] |= sign << 7
	return b
}

func TestNonCanonicalPublicKeysRejected(t *testing.T) {
	lenient := 0
	// Every y in [p, 2^255) with either sign bit: 38 encodings.
	for y := new(big.Int).Set(mP); y.BitLen() <= 255; y.Add(y, big.NewInt(1)) {
		for sign := byte(0); sign < 2; sign++ {
			b := leY(y, sign)
			if _, err := ParsePublicKey(b); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("ParsePublicKey(%x) = %v, want ErrInvalidKey", b, err)
			}
			if _, err := decodePoint(b); err != errNonCanonical {
				t.Errorf("decodePoint(%x) = %v, want errNonCanonical", b, err)
			}
			if _, err := new(edwards25519.Point).SetBytes(b); err == nil {
				lenient++
			}
		}
	}
	// x = 0 with the sign bit set: y = 1 and y = -1.
	for _, s := range []string{
		"0100000000000000000000000000000000000000000000000000000000000080",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	} {
		b := mustHex(s)
		if _, err := ParsePublicKey(b); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParsePublicKey(%s) = %v, want ErrInvalidKey", s, err)
		}
		if _, err := decodePoint(b); err != errNonCanonical {
			t.Errorf("decodePoint(%s) = %v, want errNonCanonical", s, err)
		}
		if _, err := new(edwards25519.Point).SetBytes(b); err == nil {
			lenient++
		}
	}
	// The test is meaningful only if a lenient decoder would accept some.
	if lenient == 0 {
		t.Error("edwards25519.SetBytes rejected every non-canonical encoding; the test checks nothing")
	}
	for _, n := range []int{0, 1, 31, 33, 64} {
		if _, err := ParsePublicKey(make([]byte, n)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParsePublicKey of %d bytes = %v, want ErrInvalidKey", n, err)
		}
	}
}

// TestDecodePointExhaustive compares decodePoint with the model on every
// encoding whose y is within 300 of 0 or of p, with both sign bits.
func TestDecodePointExhaustive(t *testing.T) {
	var ys []*big.Int
	for i := int64(0); i < 300; i++ {
		ys = append(ys, big.NewInt(i), new(big.Int).Sub(mP, big.NewInt(i+1)))
	}
	for y := new(big.Int).Set(mP); y.BitLen() <= 255; y.Add(y, big.NewInt(1)) {
		ys = append(ys, new(big.Int).Set(y))
	}
	accepted := 0
	for _, y := range ys {
		for sign := byte(0); sign < 2; sign++ {
			b := leY(y, sign)
			mp, mok := mDecode(b)
			p, err := decodePoint(b)
			if mok != (err == nil) {
				t.Fatalf("decodePoint(%x): error %v, model ok = %v", b, err, mok)
			}
			if !mok {
				continue
			}
			accepted++
			if !bytes.Equal(p.Bytes(), b) || !bytes.Equal(mEncode(mp), b) {
				t.Fatalf("decodePoint(%x) does not re-encode to its input", b)
			}
		}
	}
	if accepted < 100 || accepted > len(ys)*2-100 {
		t.Errorf("%d of %d encodings accepted: the sample is lopsided", accepted, len(ys)*2)
	}
}

func TestScalarNotReducedRejected(t *testing.T) {
	v := loadRFCVectors(t)[0]
	pk, err := ParsePublicKey(v.PK)
	if err != nil {
		t.Fatal(err)
	}
	s := mLEToInt(v.Pi[48:])
	sPlusL := new(big.Int).Add(s, mL) // same scalar mod L: a lenient verifier accepts it
	for name, bad := range map[string]*big.Int{
		"s+L":     sPlusL,
		"L":       mL,
		"2^256-1": new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1)),
	} {
		pi := append(bytes.Clone(v.Pi[:48]), mIntToLE(bad, 32)...)
		if _, err := pk.Verify(v.Alpha, pi); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("s = %s: Verify = %v, want ErrInvalidProof", name, err)
		}
		if _, err := ProofToHash(pi); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("s = %s: ProofToHash = %v, want ErrInvalidProof", name, err)
		}
		if _, ok := mVerify(v.PK, v.Alpha, pi); ok {
			t.Errorf("s = %s: the model accepts it", name)
		}
	}
}

func TestGammaInvalidRejected(t *testing.T) {
	v := loadRFCVectors(t)[0]
	pk, err := ParsePublicKey(v.PK)
	if err != nil {
		t.Fatal(err)
	}
	var notOnCurve, nonCanonical []byte
	for y := int64(2); notOnCurve == nil || nonCanonical == nil; y++ {
		b := leY(big.NewInt(y), 0)
		if _, ok := mDecode(b); !ok {
			if notOnCurve == nil {
				notOnCurve = b
			}
			continue
		}
		// y < 19 has a second encoding y + p, which lenient decoders take.
		if y < 19 && nonCanonical == nil {
			nonCanonical = leY(new(big.Int).Add(big.NewInt(y), mP), 0)
			if _, err := new(edwards25519.Point).SetBytes(nonCanonical); err != nil {
				t.Fatalf("lenient decoding refused %x", nonCanonical)
			}
		}
		if y > 1000 {
			t.Fatal("no test encodings found")
		}
	}
	for name, g := range map[string][]byte{"not on curve": notOnCurve, "non-canonical": nonCanonical} {
		pi := append(bytes.Clone(g), v.Pi[32:]...)
		if _, err := pk.Verify(v.Alpha, pi); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("Gamma %s (%x): Verify = %v, want ErrInvalidProof", name, g, err)
		}
		if _, err := ProofToHash(pi); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("Gamma %s (%x): ProofToHash = %v, want ErrInvalidProof", name, g, err)
		}
	}
}

func TestProofLengthRejected(t *testing.T) {
	v := loadRFCVectors(t)[0]
	pk, err := ParsePublicKey(v.PK)
	if err != nil {
		t.Fatal(err)
	}
	long := append(bytes.Clone(v.Pi), v.Pi...)
	for n := 0; n <= len(long); n++ {
		if n == ProofSize {
			continue
		}
		if _, err := pk.Verify(v.Alpha, long[:n]); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("proof of %d bytes: Verify = %v, want ErrInvalidProof", n, err)
		}
		if _, err := ProofToHash(long[:n]); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("proof of %d bytes: ProofToHash = %v, want ErrInvalidProof", n, err)
		}
	}
}

func TestRandomRoundTrip(t *testing.T) {
	r := rand.New(rand.NewChaCha8([32]byte{'v', 'r', 'f'}))
	var prev *PublicKey
	for i := 0; i < 64; i++ {
		seed := make([]byte, SeedSize)
		for j := range seed {
			seed[j] = byte(r.Uint32())
		}
		alpha := make([]byte, r.IntN(300))
		for j := range alpha {
			alpha[j] = byte(r.Uint32())
		}
		k := mustKey(t, seed)
		beta, pi := k.Prove(alpha)
		beta2, pi2 := k.Prove(alpha)
		if beta != beta2 || pi != pi2 {
			t.Fatalf("seed %x: Prove is not deterministic", seed)
		}
		pk, err := ParsePublicKey(k.Public().Bytes())
		if err != nil {
			t.Fatalf("seed %x: own public key rejected: %v", seed, err)
		}
		got, err := pk.Verify(alpha, pi[:])
		if err != nil || got != beta {
			t.Fatalf("seed %x alpha %x: Verify = %x, %v; want %x", seed, alpha, got, err, beta)
		}
		if got, err := ProofToHash(pi[:]); err != nil || got != beta {
			t.Fatalf("seed %x alpha %x: ProofToHash = %x, %v; want %x", seed, alpha, got, err, beta)
		}
		if _, err := pk.Verify(append(alpha, 1), pi[:]); !errors.Is(err, ErrInvalidProof) {
			t.Fatalf("seed %x: proof verifies for another alpha", seed)
		}
		if prev != nil {
			if _, err := prev.Verify(alpha, pi[:]); !errors.Is(err, ErrInvalidProof) {
				t.Fatalf("seed %x: proof verifies under another key", seed)
			}
		}
		prev = pk
	}
}

// TestModelComparison proves with random keys and inputs in the package and
// in the big-integer model and compares the bytes.
func TestModelComparison(t *testing.T) {
	r := rand.New(rand.NewChaCha8([32]byte{'m', 'o', 'd', 'e', 'l'}))
	n := 12
	if testing.Short() {
		n = 3
	}
	for i := 0; i < n; i++ {
		seed := make([]byte, SeedSize)
		for j := range seed {
			seed[j] = byte(r.Uint32())
		}
		alpha := make([]byte, r.IntN(100))
		for j := range alpha {
			alpha[j] = byte(r.Uint32())
		}
		k := mustKey(t, seed)
		m := mNewKey(seed)
		if !bytes.Equal(k.Public().Bytes(), m.pk) {
			t.Fatalf("seed %x: public key %x, model %x", seed, k.Public().Bytes(), m.pk)
		}
		beta, pi := k.Prove(alpha)
		mPi, mBeta := mProve(m, alpha)
		if !bytes.Equal(pi[:], mPi) || !bytes.Equal(beta[:], mBeta) {
			t.Fatalf("seed %x alpha %x: Prove = %x, %x; model %x, %x", seed, alpha, pi, beta, mPi, mBeta)
		}
		// A random single-bit flip: both reject.
		bad := pi
		bit := r.IntN(ProofSize * 8)
		bad[bit/8] ^= 1 << (bit % 8)
		if _, ok := mVerify(m.pk, alpha, bad[:]); ok {
			t.Fatalf("model accepts a flipped proof")
		}
		if _, err := k.Public().Verify(alpha, bad[:]); err == nil {
			t.Fatalf("Verify accepts a flipped proof")
		}
	}
}

func TestNewPrivateKeySeedLength(t *testing.T) {
	for _, n := range []int{0, 1, 31, 33, 64} {
		if _, err := NewPrivateKey(make([]byte, n)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("NewPrivateKey of %d bytes = %v, want ErrInvalidKey", n, err)
		}
	}
}

func TestPublicKeyIsolation(t *testing.T) {
	k := mustKey(t, make([]byte, SeedSize))
	want := k.Public().Bytes()
	b := k.Public().Bytes()
	b[0] ^= 1
	p := k.Public()
	p.b[0] ^= 1
	if !bytes.Equal(k.Public().Bytes(), want) {
		t.Error("modifying a returned public key changed the private key's")
	}
}

func TestZeroPublicKey(t *testing.T) {
	v := loadRFCVectors(t)[0]
	var pk PublicKey
	if _, err := pk.Verify(v.Alpha, v.Pi); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("zero PublicKey: Verify = %v, want ErrInvalidKey", err)
	}
}

func TestIndex(t *testing.T) {
	var beta [OutputSize]byte
	for i := range beta {
		beta[i] = byte(i)
	}
	idx := Index(beta)
	if !bytes.Equal(idx[:], beta[:IndexSize]) {
		t.Errorf("Index = %x, want the first 32 bytes of %x", idx, beta)
	}
}

// TestWorkedExample checks the example of the package documentation, and
// that the model computes the same index.
func TestWorkedExample(t *testing.T) {
	alpha, err := Input("example.com", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	wantAlpha := mustHex("636f6e69666572" + "2f" + "7672662d696e707574" + "2f" + "7631" + "00" +
		"000b" + "6578616d706c652e636f6d" + "00000011" + "616c696365406578616d706c652e636f6d")
	if !bytes.Equal(alpha, wantAlpha) {
		t.Fatalf("Input = %x, want %x", alpha, wantAlpha)
	}
	seed := mustHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	beta, pi := mustKey(t, seed).Prove(alpha)
	idx := Index(beta)
	const wantIndex = "18dbdffea37ac2e66c988502b0d6155d09759e139023ef82d5acdb566a636896"
	if hex.EncodeToString(idx[:]) != wantIndex {
		t.Errorf("index = %x, want %s", idx, wantIndex)
	}
	mPi, mBeta := mProve(mNewKey(seed), alpha)
	if !bytes.Equal(mPi, pi[:]) || hex.EncodeToString(mBeta[:IndexSize]) != wantIndex {
		t.Errorf("model index = %x, want %s", mBeta[:IndexSize], wantIndex)
	}
}

// TestConcurrentUse proves and verifies with one key from several
// goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	k := mustKey(t, bytes.Repeat([]byte{3}, SeedSize))
	pk := k.Public()
	want, wantPi := k.Prove([]byte("shared"))
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 8; i++ {
				beta, pi := k.Prove([]byte("shared"))
				if beta != want || pi != wantPi {
					done <- errors.New("Prove gave a different result")
					return
				}
				if _, err := pk.Verify([]byte("shared"), pi[:]); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestEncodePoints compares the batched encoding with Point.Bytes for
// batches of every size, mixing random points (arbitrary Z), points with
// Z = 1, the identity and small-order points.
func TestEncodePoints(t *testing.T) {
	r := rand.New(rand.NewChaCha8([32]byte{'e', 'n', 'c'}))
	var pool []*edwards25519.Point
	for i := 0; i < 24; i++ {
		var wide [64]byte
		for j := range wide {
			wide[j] = byte(r.Uint32())
		}
		s, _ := new(edwards25519.Scalar).SetUniformBytes(wide[:])
		p := new(edwards25519.Point).ScalarBaseMult(s)
		pool = append(pool, p, new(edwards25519.Point).MultByCofactor(p), new(edwards25519.Point).Add(p, p))
	}
	for _, s := range smallOrderPoints {
		pool = append(pool, mustPoint(t, s))
	}
	pool = append(pool, edwards25519.NewIdentityPoint(), mustPoint(t, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))
	for trial := 0; trial < 200; trial++ {
		n := 1 + trial%maxEncodeBatch
		ps := make([]*edwards25519.Point, n)
		for i := range ps {
			ps[i] = pool[r.IntN(len(pool))]
		}
		var out [maxEncodeBatch][pointSize]byte
		encodePoints(&out, ps...)
		for i, p := range ps {
			if !bytes.Equal(out[i][:], p.Bytes()) {
				t.Fatalf("batch of %d, point %d: encodePoints %x, Bytes %x", n, i, out[i], p.Bytes())
			}
		}
	}
}
