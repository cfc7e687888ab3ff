package checkpoint

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// cosignatureHeader is the first line of the message a tlog-cosignature/v1
// Ed25519 cosigner signs. It separates cosignatures from every other use of
// the key.
const cosignatureHeader = "cosignature/v1\n"

// CosignatureLen is the length of a tlog-cosignature/v1 Ed25519 signature
// (the part of a note signature after the 4-byte key ID):
//
//	timestamped_signature = timestamp signature
//	timestamp             = 8 bytes, big-endian POSIX seconds, < 2^63
//	signature             = 64 bytes, Ed25519 over CosignedMessage(timestamp, text)
const CosignatureLen = 8 + ed25519.SignatureSize

// CosignedMessage returns the message a tlog-cosignature/v1 Ed25519
// cosigner signs for the checkpoint body text at POSIX time timestamp:
//
//	"cosignature/v1" LF "time " decimal(timestamp) LF text
//
// where decimal has no leading zeros and text includes its final newline.
func CosignedMessage(timestamp uint64, text []byte) []byte {
	m := make([]byte, 0, len(cosignatureHeader)+5+20+1+len(text))
	m = append(m, cosignatureHeader...)
	m = append(m, "time "...)
	m = strconv.AppendUint(m, timestamp, 10)
	m = append(m, '\n')
	return append(m, text...)
}

// Cosigner is a Conifer verifier's [note.Signer]: a c2sp.org/tlog-cosignature
// v1 Ed25519 cosigner (signature type 0x04). Its signatures say "as of the
// timestamp, this is the largest checkpoint of the log I have verified".
type Cosigner struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
	s    Ed25519Signer
	now  func() time.Time
}

// NewCosigner returns a cosigner named name (a schema-less URL identifying
// the verifier) that signs through s and timestamps with now. One Ed25519
// key must serve one cosigner name only: the signed message does not
// include the name.
func NewCosigner(name string, s Ed25519Signer, now func() time.Time) (*Cosigner, error) {
	if !ValidKeyName(name) {
		return nil, fmt.Errorf("couldn't make cosigner: %w: invalid key name %q", ErrMalformedKey, name)
	}
	if now == nil {
		return nil, fmt.Errorf("couldn't make cosigner: %w: nil clock", ErrConfig)
	}
	pub, err := signerPublic(s)
	if err != nil {
		return nil, fmt.Errorf("couldn't make cosigner: %w", err)
	}
	return &Cosigner{name: name, hash: KeyHash(name, AlgCosignatureV1, pub), pub: pub, s: s, now: now}, nil
}

// Name returns the cosigner name.
func (c *Cosigner) Name() string { return c.name }

// KeyHash returns the key ID (computed with signature type 0x04).
func (c *Cosigner) KeyHash() uint32 { return c.hash }

// PublicKey returns the Ed25519 public key.
func (c *Cosigner) PublicKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), c.pub...) }

// VerifierKey returns the verifier key string for the realm configuration.
func (c *Cosigner) VerifierKey() string {
	k, err := VerifierKey(c.name, AlgCosignatureV1, c.pub)
	if err != nil {
		panic("checkpoint: cosigner has an unencodable key: " + err.Error())
	}
	return k
}

// Verifier returns the verifier for this cosigner's signatures.
func (c *Cosigner) Verifier() *CosignatureVerifier { return newCosignatureVerifier(c.name, c.pub) }

// Sign implements note.Signer: msg must be a canonical checkpoint body
// without extension lines (Conifer never produces them, so a cosigner never
// vouches for lines it cannot check). The result is the 72-byte
// timestamped_signature, with the timestamp read from the clock.
func (c *Cosigner) Sign(msg []byte) ([]byte, error) {
	cp, err := Parse(msg)
	if err != nil {
		return nil, fmt.Errorf("couldn't cosign checkpoint: %w: %w", ErrRefused, err)
	}
	if len(cp.Extensions) != 0 {
		return nil, fmt.Errorf("couldn't cosign checkpoint: %w: %w", ErrRefused, ErrExtensions)
	}
	unix := c.now().Unix()
	if unix < 0 {
		return nil, fmt.Errorf("couldn't cosign checkpoint: %w: clock before 1970", ErrConfig)
	}
	ts := uint64(unix)
	sig, err := signChecked(c.s, c.pub, CosignedMessage(ts, msg))
	if err != nil {
		return nil, fmt.Errorf("couldn't cosign checkpoint: %w", err)
	}
	out := make([]byte, 0, CosignatureLen)
	out = binary.BigEndian.AppendUint64(out, ts)
	return append(out, sig...), nil
}

// CosignatureVerifier verifies tlog-cosignature/v1 Ed25519 cosignatures
// (signature type 0x04) of one cosigner. It implements [note.Verifier].
type CosignatureVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

// NewCosignatureVerifier parses a verifier key string of type 0x04.
func NewCosignatureVerifier(vkey string) (*CosignatureVerifier, error) {
	name, alg, pub, err := ParseVerifierKey(vkey)
	if err != nil {
		return nil, err
	}
	if alg != AlgCosignatureV1 {
		return nil, fmt.Errorf("couldn't parse cosigner key: %w: type %#02x is not a cosignature key", ErrUnknownAlgorithm, alg)
	}
	return newCosignatureVerifier(name, pub), nil
}

func newCosignatureVerifier(name string, pub ed25519.PublicKey) *CosignatureVerifier {
	return &CosignatureVerifier{name: name, hash: KeyHash(name, AlgCosignatureV1, pub), pub: append(ed25519.PublicKey(nil), pub...)}
}

// Name returns the cosigner name.
func (v *CosignatureVerifier) Name() string { return v.name }

// KeyHash returns the key ID.
func (v *CosignatureVerifier) KeyHash() uint32 { return v.hash }

// PublicKey returns the Ed25519 public key.
func (v *CosignatureVerifier) PublicKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), v.pub...)
}

// VerifierKey returns the verifier key string.
func (v *CosignatureVerifier) VerifierKey() string {
	k, err := VerifierKey(v.name, AlgCosignatureV1, v.pub)
	if err != nil {
		panic("checkpoint: cosignature verifier has an unencodable key: " + err.Error())
	}
	return k
}

// Verify implements note.Verifier: it reports whether sig is a valid
// timestamped cosignature of the checkpoint body msg.
func (v *CosignatureVerifier) Verify(msg, sig []byte) bool {
	_, ok := v.VerifyTimestamp(msg, sig)
	return ok
}

// VerifyTimestamp is Verify that also returns the cosignature's timestamp
// (POSIX seconds). msg must be a canonical checkpoint body (extension lines
// allowed, as the specification covers them); sig must be exactly
// [CosignatureLen] bytes with a timestamp below 2^63. Callers with a clock
// may additionally reject timestamps in the future.
func (v *CosignatureVerifier) VerifyTimestamp(msg, sig []byte) (timestamp uint64, ok bool) {
	if len(sig) != CosignatureLen {
		return 0, false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	if ts > math.MaxInt64 {
		return 0, false
	}
	if _, err := Parse(msg); err != nil {
		return 0, false
	}
	if !ed25519.Verify(v.pub, CosignedMessage(ts, msg), sig[8:]) {
		return 0, false
	}
	return ts, true
}

var _ note.Signer = (*Cosigner)(nil)
var _ note.Signer = (*LogSigner)(nil)
var _ note.Verifier = (*CosignatureVerifier)(nil)
