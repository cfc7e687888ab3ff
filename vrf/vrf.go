// Package vrf is Conifer's verifiable random function: ECVRF-EDWARDS25519-SHA512-TAI
// from RFC 9381 (suite_string 0x03), plus the realm-separated VRF input and
// the tree index derived from the VRF output.
//
// The tree is keyed by the VRF of a user id, not by the user id itself, so a
// lookup proof (which shows the neighbouring tree keys) reveals nothing about
// other users, and nobody but the keyserver can compute where a user id sits
// in the tree. The VRF proof that comes with every lookup lets a client check
// that the index was computed honestly for the id it asked about, and the
// output is unique: for a validated public key there is exactly one output
// per input, so the keyserver cannot give one user id two positions.
//
// # Keys
//
// The secret is a 32-byte seed, expanded as an Ed25519 secret key (RFC 8032,
// Section 5.1.5):
//
//	h      = SHA-512(seed)                   // 64 bytes
//	x      = clamp(h[0:32]) as a little-endian integer (the secret scalar)
//	prefix = h[32:64]                        // the nonce key
//	Y      = x·B, PK = encode(Y)             // 32 bytes, RFC 8032 Section 5.1.2
//
// In Conifer the seed is kept encrypted under a Cloud KMS key and never
// rotated in place: old epochs' proofs must stay verifiable.
//
// # Proving
//
// For an input alpha (any byte string), as RFC 9381 Section 5.1 specifies
// with this suite's parameters (Section 5.5):
//
//	H     = 8·P for the first ctr in 0, 1, ..., 255 such that
//	        P = decode(SHA-512(0x03 ‖ 0x01 ‖ PK ‖ alpha ‖ ctr ‖ 0x00)[0:32])
//	        is a point (strict RFC 8032 Section 5.1.3 decoding) and 8·P is not
//	        the identity                     // encode_to_curve_try_and_increment
//	Gamma = x·H
//	k     = SHA-512(prefix ‖ encode(H)) mod L   // L = 2^252 + 27742317777372353535851937790883648493
//	c     = SHA-512(0x03 ‖ 0x02 ‖ PK ‖ encode(H) ‖ encode(Gamma) ‖ encode(k·B) ‖ encode(k·H) ‖ 0x00)[0:16]
//	s     = (k + c·x) mod L
//
// The proof is 80 bytes:
//
//	proof = Gamma    32 bytes, canonical point encoding
//	      ‖ c        16 bytes, little-endian integer
//	      ‖ s        32 bytes, little-endian integer, s < L
//
// and the VRF output is 64 bytes:
//
//	beta = SHA-512(0x03 ‖ 0x03 ‖ encode(8·Gamma) ‖ 0x00)
//
// # Verifying
//
// Verification is RFC 9381 Section 5.3 with validate_key = TRUE. A public
// key is accepted by [ParsePublicKey] only if it is the canonical encoding
// (y < 2^255 − 19, and no sign bit on x = 0) of a curve point Y with 8·Y not
// the identity, which rejects the eight points of small order whatever their
// encoding. A proof is accepted only if it is exactly 80 bytes, Gamma is a
// canonically encoded point, s < L, and
//
//	U = s·B − c·Y,  V = s·H − c·Gamma,
//	c = SHA-512(0x03 ‖ 0x02 ‖ PK ‖ encode(H) ‖ Gamma ‖ encode(U) ‖ encode(V) ‖ 0x00)[0:16].
//
// Then beta is computed from Gamma as above. Canonical encodings make the
// proof bytes non-malleable: an accepted proof has no second encoding.
//
// # Input and index
//
// Conifer never feeds a bare user id to the VRF. [Input] builds the input
// from the realm (the keyserver deployment, also the checkpoint origin) and
// the user id, with a domain-separation tag and length prefixes so that no
// two (realm, user id) pairs share an input:
//
//	alpha = "conifer/vrf-input/v1" ‖ 0x00
//	      ‖ uint16be(len(realm))  ‖ realm     // 0 ≤ len(realm) ≤ 255
//	      ‖ uint32be(len(userID)) ‖ userID    // 0 ≤ len(userID) ≤ 1024
//
// and [Index] takes the tree key from the output:
//
//	index = beta[0:32]
//
// Worked example: for realm "example.com" and user id "alice@example.com",
//
//	alpha = 636f6e69666572 2f 7672662d696e707574 2f 7631   "conifer/vrf-input/v1"
//	        00                                         separator
//	        000b 6578616d706c652e636f6d                "example.com"
//	        00000011 616c696365406578616d706c652e636f6d "alice@example.com"
//
// and with the seed of RFC 9381 Example 16
// (9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60) the
// index is
//
//	index = 18dbdffea37ac2e66c988502b0d6155d09759e139023ef82d5acdb566a636896
//
// (vrf_test.go checks this value, and the slow big-integer model in
// model_test.go reproduces it independently).
//
// # Constant time
//
// Everything that touches the seed, the secret scalar x, the nonce key or
// the nonce k runs in time independent of those secrets: SHA-512, scalar
// clamping and reduction, x·B, x·H, k·B and k·H (edwards25519's
// ScalarBaseMult and ScalarMult), s = k + c·x (Scalar.MultiplyAdd) and the
// point encodings (field multiplications and one fixed-chain inversion for
// the four points a proof encodes). The nonce is derived
// deterministically from the secret prefix and H as in RFC 8032, so no
// randomness is needed and a weak random source cannot leak the key.
// encode_to_curve loops a variable number of times, but only on public
// data (the public key and alpha), and verification runs in variable time
// on public data only.
package vrf

import (
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// Sizes of the encodings, in bytes.
const (
	// ProofSize is the size of a proof: Gamma (32) ‖ c (16) ‖ s (32).
	ProofSize = 80
	// OutputSize is the size of the VRF output beta.
	OutputSize = 64
	// PublicKeySize is the size of an encoded public key.
	PublicKeySize = 32
	// SeedSize is the size of the secret seed a PrivateKey is made from.
	SeedSize = 32
)

const (
	pointSize     = 32 // ptLen: an encoded edwards25519 point
	challengeSize = 16 // cLen
	scalarSize    = 32 // qLen: an encoded scalar

	// suiteString identifies ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381
	// Section 5.5); every hash of the construction starts with it.
	suiteString = 0x03

	// Domain separators of RFC 9381 Section 5.4: each hash has a distinct
	// front byte and ends with the back byte 0x00.
	encodeToCurveFront = 0x01
	challengeFront     = 0x02
	proofToHashFront   = 0x03
	separatorBack      = 0x00
)

// ErrInvalidProof is returned (wrapped) by Verify and ProofToHash when a proof
// is malformed or does not verify.
var ErrInvalidProof = errors.New("vrf: invalid proof")

// ErrInvalidKey is returned (wrapped) when a seed or a public key is
// malformed, non-canonical or of small order.
var ErrInvalidKey = errors.New("vrf: invalid key")

// PrivateKey is a VRF secret key, made from a 32-byte seed by NewPrivateKey.
// It is safe for concurrent use. The zero value is not usable.
type PrivateKey struct {
	x      edwards25519.Scalar // the secret scalar, clamped and reduced mod L
	prefix [32]byte            // SHA-512(seed)[32:64], the nonce key
	pub    PublicKey
}

// PublicKey is a validated VRF public key: a canonical encoding of a point
// that is not of small order. Obtain one from ParsePublicKey or
// PrivateKey.Public; the zero value rejects every proof. It is safe for
// concurrent use.
type PublicKey struct {
	y *edwards25519.Point
	b [PublicKeySize]byte
}

// NewPrivateKey expands a 32-byte seed into a private key, exactly as an
// Ed25519 secret key is expanded (RFC 8032 Section 5.1.5, RFC 9381 Section
// 5.5). The seed must come from a cryptographically secure source.
func NewPrivateKey(seed []byte) (*PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("couldn't make private key: seed is %d bytes, want %d: %w", len(seed), SeedSize, ErrInvalidKey)
	}
	h := sha512.Sum512(seed)
	k := new(PrivateKey)
	if _, err := k.x.SetBytesWithClamping(h[:32]); err != nil {
		panic("vrf: clamping a 32-byte string failed: " + err.Error())
	}
	copy(k.prefix[:], h[32:])
	y := new(edwards25519.Point).ScalarBaseMult(&k.x)
	// x mod L = 0 happens with probability about 2^-250; refuse it anyway
	// so that every PublicKey this package hands out passes validate_key.
	if y.Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, fmt.Errorf("couldn't make private key: seed gives the identity as public key: %w", ErrInvalidKey)
	}
	k.pub.y = y
	copy(k.pub.b[:], y.Bytes())
	return k, nil
}

// Public returns the public key of k.
func (k *PrivateKey) Public() *PublicKey {
	p := k.pub
	return &p
}

// ParsePublicKey parses a 32-byte public key, rejecting encodings that are
// not canonical (RFC 8032 Section 5.1.3), points not on the curve, and the
// points of small order (RFC 9381 Section 5.4.5, validate_key). The errors
// wrap ErrInvalidKey.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("couldn't parse public key: it is %d bytes, want %d: %w", len(b), PublicKeySize, ErrInvalidKey)
	}
	y, err := decodePoint(b)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse public key: %w: %w", err, ErrInvalidKey)
	}
	if isSmallOrder(y) {
		return nil, fmt.Errorf("couldn't parse public key: point of small order: %w", ErrInvalidKey)
	}
	k := &PublicKey{y: y}
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns the 32-byte canonical encoding of k.
func (k *PublicKey) Bytes() []byte {
	b := k.b
	return b[:]
}

// Prove returns the VRF output and proof for alpha. It is deterministic: the
// same key and alpha always give the same proof.
func (k *PrivateKey) Prove(alpha []byte) (beta [OutputSize]byte, proof [ProofSize]byte) {
	h, hString, ok := encodeToCurve(k.pub.b[:], alpha)
	if !ok {
		// Every try hashes to a fresh point; 256 failures in a row have
		// probability about 2^-256.
		panic("vrf: encode_to_curve found no point in 256 tries")
	}
	gamma := new(edwards25519.Point).ScalarMult(&k.x, h)

	// Nonce (RFC 9381 Section 5.4.2.2, as RFC 8032 Section 5.1.6 step 2).
	kh := sha512.New()
	kh.Write(k.prefix[:])
	kh.Write(hString[:])
	var kBuf [sha512.Size]byte
	nonce, err := new(edwards25519.Scalar).SetUniformBytes(kh.Sum(kBuf[:0]))
	if err != nil {
		panic("vrf: reducing a 64-byte hash failed: " + err.Error())
	}
	u := new(edwards25519.Point).ScalarBaseMult(nonce)
	v := new(edwards25519.Point).ScalarMult(nonce, h)
	gamma8 := new(edwards25519.Point).MultByCofactor(gamma)

	var enc [maxEncodeBatch][pointSize]byte
	encodePoints(&enc, gamma, u, v, gamma8)
	c := challenge(k.pub.b[:], hString[:], enc[0][:], enc[1][:], enc[2][:])
	cScalar := challengeScalar(&c)
	s := new(edwards25519.Scalar).MultiplyAdd(cScalar, &k.x, nonce)

	copy(proof[:pointSize], enc[0][:])
	copy(proof[pointSize:pointSize+challengeSize], c[:])
	copy(proof[pointSize+challengeSize:], s.Bytes())
	return hashGamma8(&enc[3]), proof
}

// Verify checks that proof is k's proof for alpha and returns the VRF
// output. It implements RFC 9381 Section 5.3 with full validation (the key
// was validated by ParsePublicKey). Errors wrap ErrInvalidProof, or
// ErrInvalidKey for the zero PublicKey.
func (k *PublicKey) Verify(alpha, proof []byte) (beta [OutputSize]byte, err error) {
	if k.y == nil {
		return beta, fmt.Errorf("couldn't verify proof: uninitialised public key: %w", ErrInvalidKey)
	}
	gamma, c, s, err := decodeProof(proof)
	if err != nil {
		return beta, fmt.Errorf("couldn't verify proof: %w", err)
	}
	h, hString, ok := encodeToCurve(k.b[:], alpha)
	if !ok {
		return beta, fmt.Errorf("couldn't verify proof: encode_to_curve found no point in 256 tries: %w", ErrInvalidProof)
	}
	negC := new(edwards25519.Scalar).Negate(challengeScalar(c))
	// U = s·B − c·Y
	u := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(negC, k.y, s)
	// V = s·H − c·Gamma
	v := new(edwards25519.Point).VarTimeMultiScalarMult(
		[]*edwards25519.Scalar{s, negC}, []*edwards25519.Point{h, gamma})
	gamma8 := new(edwards25519.Point).MultByCofactor(gamma)
	var enc [maxEncodeBatch][pointSize]byte
	encodePoints(&enc, u, v, gamma8)
	// Gamma is canonical, so its encoding is the proof's first 32 bytes.
	want := challenge(k.b[:], hString[:], proof[:pointSize], enc[0][:], enc[1][:])
	if subtle.ConstantTimeCompare(want[:], c[:]) != 1 {
		return beta, fmt.Errorf("couldn't verify proof: challenge mismatch: %w", ErrInvalidProof)
	}
	return hashGamma8(&enc[2]), nil
}

// ProofToHash returns the VRF output of a proof without verifying it (RFC
// 9381 Section 5.2). It checks only that the proof is well formed (80
// bytes, canonical Gamma, s < L). Use it only on proofs that were verified
// or that this process made; otherwise call Verify, which returns the same
// output. Errors wrap ErrInvalidProof.
func ProofToHash(proof []byte) ([OutputSize]byte, error) {
	gamma, _, _, err := decodeProof(proof)
	if err != nil {
		return [OutputSize]byte{}, fmt.Errorf("couldn't hash proof: %w", err)
	}
	var g8 [pointSize]byte
	copy(g8[:], new(edwards25519.Point).MultByCofactor(gamma).Bytes())
	return hashGamma8(&g8), nil
}

// decodeProof splits and checks a proof (RFC 9381 Section 5.4.4,
// ECVRF_decode_proof). The returned c points into proof.
func decodeProof(proof []byte) (gamma *edwards25519.Point, c *[challengeSize]byte, s *edwards25519.Scalar, err error) {
	if len(proof) != ProofSize {
		return nil, nil, nil, fmt.Errorf("proof is %d bytes, want %d: %w", len(proof), ProofSize, ErrInvalidProof)
	}
	gamma, err = decodePoint(proof[:pointSize])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("gamma: %w: %w", err, ErrInvalidProof)
	}
	c = (*[challengeSize]byte)(proof[pointSize : pointSize+challengeSize])
	s, err = new(edwards25519.Scalar).SetCanonicalBytes(proof[pointSize+challengeSize:])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("s is not below the group order: %w", ErrInvalidProof)
	}
	return gamma, c, s, nil
}

// errNonCanonical and errNotOnCurve say why decodePoint refused a string.
var (
	errNonCanonical = errors.New("non-canonical point encoding")
	errNotOnCurve   = errors.New("not a curve point")
)

// decodePoint is RFC 9381's string_to_point for edwards25519: the strict
// decoding of RFC 8032 Section 5.1.3, which refuses y ≥ p and x = 0 with the
// sign bit set. edwards25519's SetBytes accepts both, so they are checked
// here first. b must be 32 bytes. Variable time: only for public data.
func decodePoint(b []byte) (*edwards25519.Point, error) {
	if !isCanonicalY(b) {
		return nil, errNonCanonical
	}
	// x = 0 exactly when y = ±1 (x² = (y² − 1)/(d·y² + 1)); with y
	// canonical, those are the only encodings that could carry a sign bit
	// for x = 0.
	if b[31]&0x80 != 0 && (isY(b, &yOne) || isY(b, &yMinusOne)) {
		return nil, errNonCanonical
	}
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return nil, errNotOnCurve
	}
	return p, nil
}

// yMinusOne is p − 1 = 2^255 − 20 (y = −1), little-endian; yOne is 1.
var (
	yMinusOne = [32]byte{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	yOne = [32]byte{1}
)

// isCanonicalY reports whether the 255-bit y of encoding b is below
// p = 2^255 − 19. The values p ... 2^255 − 1 are 0x7fff…ffed … 0x7fff…ffff:
// b[0] ≥ 0xed, b[1..30] all 0xff, and b[31] without the sign bit 0x7f.
func isCanonicalY(b []byte) bool {
	if b[31]&0x7f != 0x7f || b[0] < 0xed {
		return true
	}
	for _, x := range b[1:31] {
		if x != 0xff {
			return true
		}
	}
	return false
}

// isY reports whether encoding b, ignoring its sign bit, has y = *y.
func isY(b []byte, y *[32]byte) bool {
	for i := 0; i < 31; i++ {
		if b[i] != y[i] {
			return false
		}
	}
	return b[31]&0x7f == y[31]
}

// isSmallOrder reports whether 8·p is the identity.
func isSmallOrder(p *edwards25519.Point) bool {
	q := new(edwards25519.Point).MultByCofactor(p)
	return q.Equal(edwards25519.NewIdentityPoint()) == 1
}

// encodeToCurve is ECVRF_encode_to_curve_try_and_increment (RFC 9381
// Section 5.4.1.1) with encode_to_curve_salt = PK: for ctr = 0, 1, ..., 255
// it hashes
//
//	SHA-512(0x03 ‖ 0x01 ‖ salt ‖ alpha ‖ ctr ‖ 0x00)
//
// decodes the first 32 bytes as a point P (strictly), and returns H = 8·P
// and its encoding for the first ctr where that works and 8·P is not the
// identity. It runs in variable time on public data. ok is false if all
// 256 tries fail.
func encodeToCurve(salt, alpha []byte) (h *edwards25519.Point, hString [pointSize]byte, ok bool) {
	hh := sha512.New()
	var sum [sha512.Size]byte
	for ctr := 0; ctr < 256; ctr++ {
		hh.Reset()
		hh.Write([]byte{suiteString, encodeToCurveFront})
		hh.Write(salt)
		hh.Write(alpha)
		hh.Write([]byte{byte(ctr), separatorBack})
		hh.Sum(sum[:0])
		p, err := decodePoint(sum[:pointSize])
		if err != nil {
			continue
		}
		p.MultByCofactor(p)
		if p.Equal(edwards25519.NewIdentityPoint()) == 1 {
			continue
		}
		copy(hString[:], p.Bytes())
		return p, hString, true
	}
	return nil, hString, false
}

// challenge is ECVRF_challenge_generation (RFC 9381 Section 5.4.3) for the
// points Y, H, Gamma, U, V, given by their encodings:
//
//	c = SHA-512(0x03 ‖ 0x02 ‖ Y ‖ H ‖ Gamma ‖ U ‖ V ‖ 0x00)[0:16]
func challenge(y, h, gamma, u, v []byte) [challengeSize]byte {
	hh := sha512.New()
	hh.Write([]byte{suiteString, challengeFront})
	hh.Write(y)
	hh.Write(h)
	hh.Write(gamma)
	hh.Write(u)
	hh.Write(v)
	hh.Write([]byte{separatorBack})
	var sum [sha512.Size]byte
	var c [challengeSize]byte
	copy(c[:], hh.Sum(sum[:0]))
	return c
}

// challengeScalar reads the 16-byte little-endian challenge as a scalar.
func challengeScalar(c *[challengeSize]byte) *edwards25519.Scalar {
	var buf [scalarSize]byte
	copy(buf[:], c[:])
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(buf[:])
	if err != nil {
		panic("vrf: a 128-bit challenge is not below the group order: " + err.Error())
	}
	return s
}

// hashGamma8 is the hash step of ECVRF_proof_to_hash (RFC 9381 Section
// 5.2), given the encoding of 8·Gamma:
//
//	beta = SHA-512(0x03 ‖ 0x03 ‖ encode(8·Gamma) ‖ 0x00)
func hashGamma8(gamma8 *[pointSize]byte) [OutputSize]byte {
	var buf [2 + pointSize + 1]byte
	buf[0] = suiteString
	buf[1] = proofToHashFront
	copy(buf[2:], gamma8[:])
	buf[len(buf)-1] = separatorBack
	return sha512.Sum512(buf[:])
}

// maxEncodeBatch is the most points encodePoints encodes at once.
const maxEncodeBatch = 4

// encodePoints sets out[i] to the RFC 8032 Section 5.1.2 encoding of ps[i],
// the same bytes as ps[i].Bytes(), but with one field inversion for all the
// points instead of one each (Montgomery's trick: invert the product of the
// Z coordinates, then peel off each 1/Z with two multiplications). An
// inversion costs about 250 squarings, so this saves three of them per Prove
// and two per Verify. It uses only constant-time field operations.
func encodePoints(out *[maxEncodeBatch][pointSize]byte, ps ...*edwards25519.Point) {
	n := len(ps)
	if n == 0 || n > maxEncodeBatch {
		panic("vrf: encodePoints called with a bad number of points")
	}
	var xs, ys, zs, prods [maxEncodeBatch]field.Element
	for i, p := range ps {
		x, y, z, _ := p.ExtendedCoordinates()
		xs[i].Set(x)
		ys[i].Set(y)
		zs[i].Set(z)
		if i == 0 {
			prods[0].Set(z)
		} else {
			prods[i].Multiply(&prods[i-1], z) // prods[i] = Z_0 ⋯ Z_i
		}
	}
	var inv, zInv field.Element
	inv.Invert(&prods[n-1]) // 1/(Z_0 ⋯ Z_{n-1}); no Z of a valid point is 0
	for i := n - 1; i >= 0; i-- {
		if i > 0 {
			zInv.Multiply(&inv, &prods[i-1]) // 1/Z_i
			inv.Multiply(&inv, &zs[i])       // 1/(Z_0 ⋯ Z_{i-1})
		} else {
			zInv.Set(&inv)
		}
		xs[i].Multiply(&xs[i], &zInv)
		ys[i].Multiply(&ys[i], &zInv)
		copy(out[i][:], ys[i].Bytes())
		out[i][31] |= byte(xs[i].IsNegative() << 7)
	}
}
