package vrf

// A slow, independent model of ECVRF-EDWARDS25519-SHA512-TAI, written from
// RFC 8032 and RFC 9381 with math/big and affine coordinates. It shares no
// code with the package (not even edwards25519), so agreement between the
// two is evidence that both follow the RFCs. Variable time; tests only.

import (
	"crypto/sha512"
	"math/big"
)

var (
	mP      = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	mL      = mustBig("7237005577332262213973186563042994240857116359379907606001950938285454250989")
	mD      = mMod(new(big.Int).Mul(big.NewInt(-121665), mInv(big.NewInt(121666))))
	mSqrtM1 = new(big.Int).Exp(big.NewInt(2), new(big.Int).Rsh(new(big.Int).Sub(mP, big.NewInt(1)), 2), mP)
	mB      = mBasePoint()
	mIdent  = mPoint{big.NewInt(0), big.NewInt(1)}
)

func mustBig(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic("bad constant " + s)
	}
	return n
}

func mMod(a *big.Int) *big.Int { return a.Mod(a, mP) }

func mInv(a *big.Int) *big.Int { return new(big.Int).ModInverse(a, mP) }

// mPoint is an affine point (x, y) on -x² + y² = 1 + d·x²·y².
type mPoint struct{ x, y *big.Int }

func mBasePoint() mPoint {
	y := mMod(new(big.Int).Mul(big.NewInt(4), mInv(big.NewInt(5))))
	p, ok := mDecode(mIntToLE(y, 32))
	if !ok {
		panic("base point does not decode")
	}
	return p
}

func mAdd(a, b mPoint) mPoint {
	x1y2 := new(big.Int).Mul(a.x, b.y)
	y1x2 := new(big.Int).Mul(a.y, b.x)
	y1y2 := new(big.Int).Mul(a.y, b.y)
	x1x2 := new(big.Int).Mul(a.x, b.x)
	t := mMod(new(big.Int).Mul(mD, mMod(new(big.Int).Mul(x1x2, y1y2))))
	one := big.NewInt(1)
	x := mMod(new(big.Int).Mul(new(big.Int).Add(x1y2, y1x2), mInv(mMod(new(big.Int).Add(one, t)))))
	y := mMod(new(big.Int).Mul(new(big.Int).Add(y1y2, x1x2), mInv(mMod(new(big.Int).Sub(one, t)))))
	return mPoint{x, y}
}

func mNeg(a mPoint) mPoint { return mPoint{mMod(new(big.Int).Neg(a.x)), new(big.Int).Set(a.y)} }

func mEqual(a, b mPoint) bool { return a.x.Cmp(b.x) == 0 && a.y.Cmp(b.y) == 0 }

// mMul computes k·p by double-and-add.
func mMul(k *big.Int, p mPoint) mPoint {
	r := mIdent
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = mAdd(r, r)
		if k.Bit(i) == 1 {
			r = mAdd(r, p)
		}
	}
	return r
}

func mLEToInt(b []byte) *big.Int {
	r := make([]byte, len(b))
	for i := range b {
		r[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(r)
}

func mIntToLE(n *big.Int, size int) []byte {
	be := n.FillBytes(make([]byte, size))
	for i, j := 0, size-1; i < j; i, j = i+1, j-1 {
		be[i], be[j] = be[j], be[i]
	}
	return be
}

// mEncode is RFC 8032 Section 5.1.2.
func mEncode(p mPoint) []byte {
	b := mIntToLE(p.y, 32)
	b[31] |= byte(p.x.Bit(0)) << 7
	return b
}

// mDecode is RFC 8032 Section 5.1.3, strict.
func mDecode(b []byte) (mPoint, bool) {
	if len(b) != 32 {
		return mPoint{}, false
	}
	c := append([]byte(nil), b...)
	sign := uint(c[31] >> 7)
	c[31] &= 0x7f
	y := mLEToInt(c)
	if y.Cmp(mP) >= 0 {
		return mPoint{}, false
	}
	y2 := mMod(new(big.Int).Mul(y, y))
	u := mMod(new(big.Int).Sub(y2, big.NewInt(1)))
	v := mMod(new(big.Int).Add(new(big.Int).Mul(mD, y2), big.NewInt(1)))
	x2 := mMod(new(big.Int).Mul(u, mInv(v)))
	e := new(big.Int).Rsh(new(big.Int).Add(mP, big.NewInt(3)), 3)
	x := new(big.Int).Exp(x2, e, mP)
	if mMod(new(big.Int).Mul(x, x)).Cmp(x2) != 0 {
		x = mMod(x.Mul(x, mSqrtM1))
	}
	if mMod(new(big.Int).Mul(x, x)).Cmp(x2) != 0 {
		return mPoint{}, false
	}
	if x.Sign() == 0 && sign == 1 {
		return mPoint{}, false
	}
	if x.Bit(0) != sign {
		x = mMod(new(big.Int).Neg(x))
	}
	return mPoint{x, y}, true
}

func mMulCofactor(p mPoint) mPoint { return mMul(big.NewInt(8), p) }

// mKey is the model's expanded secret key.
type mKey struct {
	xString []byte   // the clamped 32 bytes
	x       *big.Int // their value, not reduced
	prefix  []byte
	pk      []byte
	y       mPoint
}

func mNewKey(seed []byte) mKey {
	h := sha512.Sum512(seed)
	a := append([]byte(nil), h[:32]...)
	a[0] &= 248
	a[31] &= 127
	a[31] |= 64
	x := mLEToInt(a)
	y := mMul(x, mB)
	return mKey{xString: a, x: x, prefix: append([]byte(nil), h[32:]...), pk: mEncode(y), y: y}
}

func mSHA512(parts ...[]byte) []byte {
	h := sha512.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// mEncodeToCurve returns H and the counter it was found at, or ctr = -1.
func mEncodeToCurve(salt, alpha []byte) (mPoint, int) {
	for ctr := 0; ctr < 256; ctr++ {
		hs := mSHA512([]byte{3, 1}, salt, alpha, []byte{byte(ctr), 0})
		p, ok := mDecode(hs[:32])
		if !ok {
			continue
		}
		h := mMulCofactor(p)
		if mEqual(h, mIdent) {
			continue
		}
		return h, ctr
	}
	return mPoint{}, -1
}

func mChallenge(ps ...mPoint) *big.Int {
	parts := [][]byte{{3, 2}}
	for _, p := range ps {
		parts = append(parts, mEncode(p))
	}
	parts = append(parts, []byte{0})
	return mLEToInt(mSHA512(parts...)[:16])
}

func mProofToHash(gamma mPoint) []byte {
	return mSHA512([]byte{3, 3}, mEncode(mMulCofactor(gamma)), []byte{0})
}

// mProve is RFC 9381 Section 5.1.
func mProve(k mKey, alpha []byte) (pi, beta []byte) {
	h, _ := mEncodeToCurve(k.pk, alpha)
	gamma := mMul(k.x, h)
	nonce := new(big.Int).Mod(mLEToInt(mSHA512(k.prefix, mEncode(h))), mL)
	c := mChallenge(k.y, h, gamma, mMul(nonce, mB), mMul(nonce, h))
	s := new(big.Int).Mod(new(big.Int).Add(nonce, new(big.Int).Mul(c, k.x)), mL)
	pi = append(append(mEncode(gamma), mIntToLE(c, 16)...), mIntToLE(s, 32)...)
	return pi, mProofToHash(gamma)
}

// mVerify is RFC 9381 Section 5.3 with validate_key = TRUE.
func mVerify(pk, alpha, pi []byte) ([]byte, bool) {
	y, ok := mDecode(pk)
	if !ok || mEqual(mMulCofactor(y), mIdent) {
		return nil, false
	}
	if len(pi) != 80 {
		return nil, false
	}
	gamma, ok := mDecode(pi[:32])
	if !ok {
		return nil, false
	}
	c := mLEToInt(pi[32:48])
	s := mLEToInt(pi[48:])
	if s.Cmp(mL) >= 0 {
		return nil, false
	}
	h, ctr := mEncodeToCurve(pk, alpha)
	if ctr < 0 {
		return nil, false
	}
	u := mAdd(mMul(s, mB), mNeg(mMul(c, y)))
	v := mAdd(mMul(s, h), mNeg(mMul(c, gamma)))
	if mChallenge(y, h, gamma, u, v).Cmp(c) != 0 {
		return nil, false
	}
	return mProofToHash(gamma), true
}
