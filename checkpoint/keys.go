package checkpoint

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Signature types of c2sp.org/signed-note used by Conifer.
const (
	// AlgEd25519 is the plain Ed25519 note signature (type 0x01), used by
	// the keyserver to sign checkpoints.
	AlgEd25519 byte = 0x01
	// AlgCosignatureV1 is the timestamped Ed25519 checkpoint cosignature of
	// c2sp.org/tlog-cosignature (type 0x04), used by verifiers.
	AlgCosignatureV1 byte = 0x04
)

var (
	// ErrMalformedKey is wrapped by errors about verifier key strings and
	// key names that are not canonical.
	ErrMalformedKey = errors.New("malformed verifier key")
	// ErrUnknownAlgorithm is wrapped when a verifier key has a signature
	// type other than [AlgEd25519] and [AlgCosignatureV1].
	ErrUnknownAlgorithm = errors.New("unknown signature algorithm")
	// ErrSigner is wrapped when a signer misbehaves: its public key is not
	// an Ed25519 key, or it returned a signature that does not verify.
	ErrSigner = errors.New("signer failed")
	// ErrRefused is wrapped when a signer is asked to sign a text it must
	// not sign (not a Conifer checkpoint of its realm).
	ErrRefused = errors.New("refused to sign")
)

// KeyHash returns the c2sp.org/signed-note key ID of an Ed25519 public key
// of signature type alg under the given key name:
//
//	key ID = SHA-256(name || 0x0A || alg || 32-byte public key)[:4], big-endian
//
// The signature type byte separates the plain note key (0x01) from the
// cosignature key (0x04) even if the same key and name were used for both.
func KeyHash(name string, alg byte, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', alg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// ValidKeyName reports whether name can name a note key: non-empty, valid
// UTF-8, no Unicode space and no plus sign (c2sp.org/signed-note). Conifer's
// realm names, used as both checkpoint origin and keyserver key name, must
// be valid key names.
func ValidKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) &&
		strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+") &&
		strings.IndexFunc(name, isControl) < 0
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// VerifierKey returns the c2sp.org/signed-note verifier key string
//
//	<name>+<8 lowercase hex digits of the key ID>+<base64(alg || public key)>
//
// for an Ed25519 public key of signature type alg ([AlgEd25519] or
// [AlgCosignatureV1]).
func VerifierKey(name string, alg byte, pub ed25519.PublicKey) (string, error) {
	if !ValidKeyName(name) {
		return "", fmt.Errorf("couldn't encode verifier key: %w: invalid key name %q", ErrMalformedKey, name)
	}
	if alg != AlgEd25519 && alg != AlgCosignatureV1 {
		return "", fmt.Errorf("couldn't encode verifier key: %w: %#02x", ErrUnknownAlgorithm, alg)
	}
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("couldn't encode verifier key: %w: public key is %d bytes", ErrMalformedKey, len(pub))
	}
	key := append([]byte{alg}, pub...)
	return fmt.Sprintf("%s+%08x+%s", name, KeyHash(name, alg, pub), base64.StdEncoding.EncodeToString(key)), nil
}

// ParseVerifierKey parses a verifier key string made by [VerifierKey]. It
// accepts only the canonical form (lowercase hex, canonical padded base64),
// Ed25519 keys of type [AlgEd25519] or [AlgCosignatureV1], and a key ID
// that matches the name and key.
func ParseVerifierKey(vkey string) (name string, alg byte, pub ed25519.PublicKey, err error) {
	fail := func(format string, args ...any) (string, byte, ed25519.PublicKey, error) {
		return "", 0, nil, fmt.Errorf("couldn't parse verifier key: %w: %s", ErrMalformedKey, fmt.Sprintf(format, args...))
	}
	if len(vkey) > 1024 {
		return fail("longer than 1024 bytes")
	}
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 {
		return fail("want name+hash+key")
	}
	if !ValidKeyName(name) {
		return fail("invalid key name %q", name)
	}
	if len(hash16) != 8 || strings.Trim(hash16, "0123456789abcdef") != "" {
		return fail("key ID %q is not 8 lowercase hex digits", hash16)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(key64)
	if err != nil || base64.StdEncoding.EncodeToString(key) != key64 {
		return fail("key is not canonical base64")
	}
	if len(key) == 0 {
		return fail("empty key")
	}
	alg = key[0]
	if alg != AlgEd25519 && alg != AlgCosignatureV1 {
		return "", 0, nil, fmt.Errorf("couldn't parse verifier key: %w: %#02x", ErrUnknownAlgorithm, alg)
	}
	if len(key) != 1+ed25519.PublicKeySize {
		return fail("Ed25519 key is %d bytes, want %d", len(key)-1, ed25519.PublicKeySize)
	}
	pub = ed25519.PublicKey(key[1:])
	if fmt.Sprintf("%08x", KeyHash(name, alg, pub)) != hash16 {
		return fail("key ID %s does not match the key", hash16)
	}
	return name, alg, pub, nil
}

// NewVerifier returns the note.Verifier for a verifier key string: the
// x/mod note verifier for [AlgEd25519] keys, a *CosignatureVerifier for
// [AlgCosignatureV1] keys.
func NewVerifier(vkey string) (note.Verifier, error) {
	name, alg, pub, err := ParseVerifierKey(vkey)
	if err != nil {
		return nil, err
	}
	if alg == AlgCosignatureV1 {
		return newCosignatureVerifier(name, pub), nil
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse verifier key: %w: %w", ErrMalformedKey, err)
	}
	return v, nil
}

// Verifiers is a set of verifier keys, for [note.Open]. Unlike
// note.VerifierList it refuses to hold two keys with the same name and key
// ID, so a lookup is never ambiguous.
type Verifiers struct {
	m    map[nameHash]note.Verifier
	list []note.Verifier
}

type nameHash struct {
	name string
	hash uint32
}

// NewVerifiers builds a [Verifiers] from verifier key strings of either
// signature type.
func NewVerifiers(vkeys ...string) (*Verifiers, error) {
	vs := make([]note.Verifier, 0, len(vkeys))
	for _, k := range vkeys {
		v, err := NewVerifier(k)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return NewVerifierList(vs...)
}

// NewVerifierList builds a [Verifiers] from note verifiers.
func NewVerifierList(list ...note.Verifier) (*Verifiers, error) {
	s := &Verifiers{m: make(map[nameHash]note.Verifier, len(list))}
	for _, v := range list {
		if v == nil {
			return nil, fmt.Errorf("couldn't build verifier set: %w: nil verifier", ErrConfig)
		}
		k := nameHash{v.Name(), v.KeyHash()}
		if _, dup := s.m[k]; dup {
			return nil, fmt.Errorf("couldn't build verifier set: %w: two keys named %s+%08x", ErrConfig, k.name, k.hash)
		}
		s.m[k] = v
		s.list = append(s.list, v)
	}
	return s, nil
}

// Verifier implements [note.Verifiers]. It returns a *note.UnknownVerifierError
// for keys not in the set, which [note.Open] treats as signatures to ignore.
func (s *Verifiers) Verifier(name string, hash uint32) (note.Verifier, error) {
	if v, ok := s.m[nameHash{name, hash}]; ok {
		return v, nil
	}
	return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
}

// List returns the verifiers in the order they were given.
func (s *Verifiers) List() []note.Verifier { return append([]note.Verifier(nil), s.list...) }

// Ed25519Signer is an Ed25519 private key held somewhere else, such as
// Cloud KMS (an EC_SIGN_ED25519 key: AsymmetricSign over the raw message).
//
// Sign must return the 64-byte pure Ed25519 (RFC 8032) signature of msg by
// the key whose public half Public returns. It may be called concurrently
// and may block on the network; it is retried by nobody in this package.
type Ed25519Signer interface {
	Public() ed25519.PublicKey
	Sign(msg []byte) ([]byte, error)
}

// KeySigner is an [Ed25519Signer] over a private key in memory, for
// verifiers that hold their own key and for tests.
type KeySigner struct{ key ed25519.PrivateKey }

// NewKeySigner returns a signer for key, which must be an Ed25519 private
// key of [ed25519.PrivateKeySize] bytes.
func NewKeySigner(key ed25519.PrivateKey) (*KeySigner, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("couldn't make key signer: %w: private key is %d bytes", ErrSigner, len(key))
	}
	return &KeySigner{key: key}, nil
}

// Public returns the public key.
func (s *KeySigner) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign returns the Ed25519 signature of msg.
func (s *KeySigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// signChecked signs msg with s and checks the result against pub, so that a
// misconfigured KMS key version or a faulty signer can never put a bad
// signature into a published note.
func signChecked(s Ed25519Signer, pub ed25519.PublicKey, msg []byte) ([]byte, error) {
	sig, err := s.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign message: %w: %w", ErrSigner, err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return nil, fmt.Errorf("couldn't sign message: %w: signature does not verify under the signer's public key", ErrSigner)
	}
	return sig, nil
}

func signerPublic(s Ed25519Signer) (ed25519.PublicKey, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil signer", ErrSigner)
	}
	pub := s.Public()
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes", ErrSigner, len(pub))
	}
	return append(ed25519.PublicKey(nil), pub...), nil
}

// LogSigner is the keyserver's [note.Signer]: a c2sp.org/signed-note
// Ed25519 key (type 0x01) named after the realm, which signs the realm's
// checkpoints and nothing else.
type LogSigner struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
	s    Ed25519Signer
}

// NewLogSigner returns the keyserver signer for the realm origin, signing
// through s (the Cloud KMS key in production).
func NewLogSigner(origin string, s Ed25519Signer) (*LogSigner, error) {
	if !ValidKeyName(origin) {
		return nil, fmt.Errorf("couldn't make log signer: %w: invalid key name %q", ErrMalformedKey, origin)
	}
	pub, err := signerPublic(s)
	if err != nil {
		return nil, fmt.Errorf("couldn't make log signer: %w", err)
	}
	return &LogSigner{name: origin, hash: KeyHash(origin, AlgEd25519, pub), pub: pub, s: s}, nil
}

// Name returns the key name, which is the realm name.
func (l *LogSigner) Name() string { return l.name }

// KeyHash returns the key ID.
func (l *LogSigner) KeyHash() uint32 { return l.hash }

// PublicKey returns the Ed25519 public key.
func (l *LogSigner) PublicKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), l.pub...) }

// VerifierKey returns the verifier key string that clients pin.
func (l *LogSigner) VerifierKey() string {
	k, err := VerifierKey(l.name, AlgEd25519, l.pub)
	if err != nil {
		panic("checkpoint: log signer has an unencodable key: " + err.Error())
	}
	return k
}

// Verifier returns the note.Verifier for this key.
func (l *LogSigner) Verifier() note.Verifier {
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		panic("checkpoint: log signer's verifier key does not parse: " + err.Error())
	}
	return v
}

// Sign implements note.Signer. msg must be a canonical checkpoint of this
// realm without extension lines; anything else is refused, so the
// keyserver key can never be made to sign another kind of message.
func (l *LogSigner) Sign(msg []byte) ([]byte, error) {
	c, err := Parse(msg)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign checkpoint: %w: %w", ErrRefused, err)
	}
	if c.Origin != l.name {
		return nil, fmt.Errorf("couldn't sign checkpoint: %w: origin %q is not the realm %q", ErrRefused, c.Origin, l.name)
	}
	if len(c.Extensions) != 0 {
		return nil, fmt.Errorf("couldn't sign checkpoint: %w: %w", ErrRefused, ErrExtensions)
	}
	return signChecked(l.s, l.pub, msg)
}

// Sign returns the signed note of c, signed by the keyserver. This is the
// note the epoch function stores and publishes; verifiers' cosignatures are
// added to it later with [Merge].
func Sign(c Checkpoint, log *LogSigner) ([]byte, error) {
	text, err := c.Marshal()
	if err != nil {
		return nil, fmt.Errorf("couldn't sign checkpoint: %w", err)
	}
	n, err := note.Sign(&note.Note{Text: string(text)}, log)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign checkpoint: %w", err)
	}
	return n, nil
}

var _ note.Verifiers = (*Verifiers)(nil)
