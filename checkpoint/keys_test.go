package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestKeyHash(t *testing.T) {
	pub := testKey(7).Public().(ed25519.PublicKey)
	for _, alg := range []byte{AlgEd25519, AlgCosignatureV1} {
		// SHA-256(name || 0x0A || alg || key)[:4], written out by hand.
		sum := sha256.Sum256(append([]byte("example.com/k\n"+string([]byte{alg})), pub...))
		if got, want := KeyHash("example.com/k", alg, pub), binary.BigEndian.Uint32(sum[:4]); got != want {
			t.Errorf("KeyHash(alg %#x) = %08x, want %08x", alg, got, want)
		}
	}
	if KeyHash("n", AlgEd25519, pub) == KeyHash("n", AlgCosignatureV1, pub) {
		t.Error("key hash does not depend on the signature type")
	}
	// The x/mod key hash of a generated key is the same as ours.
	vk, err := note.NewEd25519VerifierKey("example.com/k", pub)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := VerifierKey("example.com/k", AlgEd25519, pub)
	if err != nil {
		t.Fatal(err)
	}
	if vk != ours {
		t.Errorf("VerifierKey = %q, x/mod says %q", ours, vk)
	}
}

func TestVerifierKeyRoundTrip(t *testing.T) {
	pub := testKey(9).Public().(ed25519.PublicKey)
	for _, alg := range []byte{AlgEd25519, AlgCosignatureV1} {
		vk, err := VerifierKey("verifier.example/v1", alg, pub)
		if err != nil {
			t.Fatal(err)
		}
		name, gotAlg, gotPub, err := ParseVerifierKey(vk)
		if err != nil || name != "verifier.example/v1" || gotAlg != alg || !bytes.Equal(gotPub, pub) {
			t.Errorf("ParseVerifierKey(%q) = %q, %#x, %x, %v", vk, name, gotAlg, gotPub, err)
		}
		v, err := NewVerifier(vk)
		if err != nil {
			t.Fatal(err)
		}
		if v.Name() != name || v.KeyHash() != KeyHash(name, alg, pub) {
			t.Errorf("NewVerifier(%q) = %s+%08x", vk, v.Name(), v.KeyHash())
		}
		_, isCosig := v.(*CosignatureVerifier)
		if isCosig != (alg == AlgCosignatureV1) {
			t.Errorf("NewVerifier(%q) is %T", vk, v)
		}
	}
}

func TestParseVerifierKeyRejects(t *testing.T) {
	pub := testKey(9).Public().(ed25519.PublicKey)
	good, _ := VerifierKey("n.example", AlgCosignatureV1, pub)
	hash16, key64, _ := strings.Cut(strings.TrimPrefix(good, "n.example+"), "+")
	other := func(alg byte, k []byte) string {
		b := append([]byte{alg}, k...)
		return fmt.Sprintf("n.example+%08x+%s", KeyHash("n.example", alg, k), base64.StdEncoding.EncodeToString(b))
	}
	flipped := []byte(key64)
	flipped[len(flipped)-2]++ // changes the key material: hash mismatch
	for _, tc := range []struct {
		vkey string
		want error
	}{
		{"", ErrMalformedKey},
		{"n.example", ErrMalformedKey},
		{"n.example+" + hash16, ErrMalformedKey},
		{"+" + hash16 + "+" + key64, ErrMalformedKey},
		{"n example+" + hash16 + "+" + key64, ErrMalformedKey},
		{"n.example+" + strings.ToUpper(hash16) + "+" + key64, ErrMalformedKey},
		{"n.example+0" + hash16 + "+" + key64, ErrMalformedKey},
		{"n.example+" + hash16[1:] + "+" + key64, ErrMalformedKey},
		{"n.example+" + hash16 + "+" + key64 + "=", ErrMalformedKey},
		{"n.example+" + hash16 + "+" + key64[:20] + "\n" + key64[20:], ErrMalformedKey},
		{"n.example+" + hash16 + "+" + key64[:20] + "\r" + key64[20:], ErrMalformedKey},
		{"n.example+" + hash16 + "+" + strings.ReplaceAll(key64, "/", "_"), ErrMalformedKey},
		{"n.example+" + hash16 + "+" + string(flipped), ErrMalformedKey},
		{"n.example+00000000+" + key64, ErrMalformedKey},
		{"n.example+" + hash16 + "+" + key64 + "+", ErrMalformedKey},
		{"other.example+" + hash16 + "+" + key64, ErrMalformedKey},
		{other(AlgCosignatureV1, pub[:31]), ErrMalformedKey},
		{other(AlgCosignatureV1, append(pub, 0)), ErrMalformedKey},
		{other(0x02, pub), ErrUnknownAlgorithm},
		{other(0x06, pub), ErrUnknownAlgorithm},
		{"n.example+" + hash16 + "+", ErrMalformedKey},
		{strings.Repeat("n", 2000), ErrMalformedKey},
	} {
		if _, _, _, err := ParseVerifierKey(tc.vkey); !errors.Is(err, tc.want) {
			t.Errorf("ParseVerifierKey(%q) = %v, want %v", tc.vkey, err, tc.want)
		}
		if _, err := NewVerifier(tc.vkey); !errors.Is(err, tc.want) {
			t.Errorf("NewVerifier(%q) = %v, want %v", tc.vkey, err, tc.want)
		}
	}
	if _, err := NewCosignatureVerifier(other(AlgEd25519, pub)); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("NewCosignatureVerifier(type 0x01 key) = %v", err)
	}
}

func TestValidKeyName(t *testing.T) {
	for name, want := range map[string]bool{
		"example.com/realm":                          true,
		"transparency.dev/DEV:witness-little-garden": true,
		"ünïcødé":                                    true,
		"":                                           false,
		"a b":                                        false,
		"a+b":                                        false,
		"a\tb":                                       false,
		"a\u00a0b":                                   false,
		"a\u2003b":                                   false,
		"a\x01b":                                     false,
		"\xff":                                       false,
	} {
		if got := ValidKeyName(name); got != want {
			t.Errorf("ValidKeyName(%q) = %v", name, got)
		}
	}
}

func TestVerifiersSet(t *testing.T) {
	log := testLogSigner(t)
	cs := testCosigners(t, 2)
	vs, err := NewVerifiers(log.VerifierKey(), cs[0].VerifierKey(), cs[1].VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []interface {
		Name() string
		KeyHash() uint32
	}{log, cs[0], cs[1]} {
		v, err := vs.Verifier(want.Name(), want.KeyHash())
		if err != nil || v.Name() != want.Name() || v.KeyHash() != want.KeyHash() {
			t.Errorf("Verifier(%s) = %v, %v", want.Name(), v, err)
		}
	}
	var unk *note.UnknownVerifierError
	if _, err := vs.Verifier(log.Name(), log.KeyHash()+1); !errors.As(err, &unk) {
		t.Errorf("unknown key hash: %v", err)
	}
	if _, err := vs.Verifier("x", log.KeyHash()); !errors.As(err, &unk) {
		t.Errorf("unknown name: %v", err)
	}
	if len(vs.List()) != 3 {
		t.Errorf("List has %d verifiers", len(vs.List()))
	}
	if _, err := NewVerifiers(log.VerifierKey(), log.VerifierKey()); !errors.Is(err, ErrConfig) {
		t.Errorf("duplicate key: %v", err)
	}
	if _, err := NewVerifiers("bad"); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("bad key: %v", err)
	}
	// Both kinds work with plain note.Open.
	msg := signAll(t, testCheckpoint(t), log, cs)
	n, err := note.Open(msg, vs)
	if err != nil || len(n.Sigs) != 3 {
		t.Fatalf("note.Open = %+v, %v", n, err)
	}
}

// TestInteropXMod checks that a checkpoint signed by LogSigner verifies
// with plain x/mod note.Open and a verifier made by x/mod from the vkey
// string alone.
func TestInteropXMod(t *testing.T) {
	log := testLogSigner(t)
	msg, err := Sign(testCheckpoint(t), log)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != testRealm {
		t.Errorf("Sigs = %+v", n.Sigs)
	}
	c, err := Parse([]byte(n.Text))
	if err != nil || !equalCheckpoint(c, testCheckpoint(t)) {
		t.Errorf("Parse = %+v, %v", c, err)
	}
	// And x/mod's signer, from an skey string, makes the same note (Ed25519
	// is deterministic).
	same, err := note.Sign(&note.Note{Text: n.Text}, rawSigner(t, testRealm, testKey(1)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(same, msg) {
		t.Errorf("x/mod signer made\n%s\nwe made\n%s", same, msg)
	}
}

func TestSignersRefuse(t *testing.T) {
	log := testLogSigner(t)
	c := testCosigners(t, 1)[0]
	good, _ := testCheckpoint(t).Marshal()
	other := testCheckpoint(t)
	other.Origin = "other.example/realm"
	otherText, _ := other.Marshal()
	ext := testCheckpoint(t)
	ext.Extensions = []string{"x"}
	extText, _ := ext.Marshal()
	for _, msg := range [][]byte{nil, []byte("hello\n"), good[:len(good)-1], extText} {
		if _, err := log.Sign(msg); !errors.Is(err, ErrRefused) {
			t.Errorf("LogSigner.Sign(%q) = %v", msg, err)
		}
		if _, err := c.Sign(msg); !errors.Is(err, ErrRefused) {
			t.Errorf("Cosigner.Sign(%q) = %v", msg, err)
		}
	}
	if _, err := log.Sign(otherText); !errors.Is(err, ErrRefused) {
		t.Errorf("LogSigner.Sign(other origin) = %v", err)
	}
	if _, err := Sign(ext, log); !errors.Is(err, ErrRefused) {
		t.Errorf("Sign(extensions) = %v", err)
	}
	// A cosigner cosigns any log's checkpoint (verifiers may witness
	// several realms).
	if _, err := c.Sign(otherText); err != nil {
		t.Errorf("Cosigner.Sign(other origin) = %v", err)
	}
}

type badSigner struct {
	pub ed25519.PublicKey
	sig []byte
	err error
}

func (b badSigner) Public() ed25519.PublicKey       { return b.pub }
func (b badSigner) Sign(msg []byte) ([]byte, error) { return b.sig, b.err }

func TestFaultySigner(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	text, _ := testCheckpoint(t).Marshal()
	wrongKeySig := ed25519.Sign(testKey(2), text)
	for i, s := range []badSigner{
		{pub: pub, err: errors.New("KMS unavailable")},
		{pub: pub, sig: nil},
		{pub: pub, sig: make([]byte, 64)},
		{pub: pub, sig: wrongKeySig},
		{pub: pub, sig: append(ed25519.Sign(testKey(1), text), 0)},
	} {
		l, err := NewLogSigner(testRealm, s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Sign(text); !errors.Is(err, ErrSigner) {
			t.Errorf("signer %d: %v", i, err)
		}
		c, err := NewCosigner("w.example", s, fixedClock(1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Sign(text); !errors.Is(err, ErrSigner) {
			t.Errorf("cosigner %d: %v", i, err)
		}
	}
	if _, err := NewLogSigner(testRealm, badSigner{pub: pub[:31]}); !errors.Is(err, ErrSigner) {
		t.Errorf("short public key: %v", err)
	}
	if _, err := NewLogSigner(testRealm, nil); !errors.Is(err, ErrSigner) {
		t.Errorf("nil signer: %v", err)
	}
	if _, err := NewLogSigner("bad name", testSigner(t, 1)); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := NewCosigner("w.example", testSigner(t, 1), nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil clock: %v", err)
	}
	c, _ := NewCosigner("w.example", testSigner(t, 1), fixedClock(-1))
	if _, err := c.Sign(text); !errors.Is(err, ErrConfig) {
		t.Errorf("negative time: %v", err)
	}
	if _, err := NewKeySigner(testKey(1)[:63]); !errors.Is(err, ErrSigner) {
		t.Errorf("short private key: %v", err)
	}
}

func TestCosignature(t *testing.T) {
	c := testCosigners(t, 1)[0]
	text, _ := testCheckpoint(t).Marshal()
	sig, err := c.Sign(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != CosignatureLen || binary.BigEndian.Uint64(sig) != 1000 {
		t.Fatalf("cosignature %x", sig)
	}
	// The signature is plain Ed25519 over the documented message.
	want := "cosignature/v1\ntime 1000\n" + string(text)
	if string(CosignedMessage(1000, text)) != want {
		t.Errorf("CosignedMessage = %q", CosignedMessage(1000, text))
	}
	if !ed25519.Verify(c.PublicKey(), []byte(want), sig[8:]) {
		t.Error("cosignature is not Ed25519 over the cosigned message")
	}
	v, err := NewCosignatureVerifier(c.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if ts, ok := v.VerifyTimestamp(text, sig); !ok || ts != 1000 {
		t.Errorf("VerifyTimestamp = %d, %v", ts, ok)
	}
	// Every bit of the timestamp and signature matters.
	for i := range len(sig) * 8 {
		bad := bytes.Clone(sig)
		bad[i/8] ^= 1 << (i % 8)
		if v.Verify(text, bad) {
			t.Errorf("bit %d flipped: still verifies", i)
		}
	}
	if v.Verify(text, sig[:71]) || v.Verify(text, append(bytes.Clone(sig), 0)) {
		t.Error("wrong-length cosignature verifies")
	}
	// A timestamp of 2^63 or more is invalid even if signed.
	big := rawCosigner{name: c.Name(), key: testKey(2), ts: 1 << 63}
	bs, _ := big.Sign(text)
	if v.Verify(text, bs) {
		t.Error("timestamp 2^63 accepted")
	}
	max := rawCosigner{name: c.Name(), key: testKey(2), ts: 1<<63 - 1}
	ms, _ := max.Sign(text)
	if ts, ok := v.VerifyTimestamp(text, ms); !ok || ts != 1<<63-1 {
		t.Errorf("timestamp 2^63-1: %d, %v", ts, ok)
	}
	// Signatures over non-checkpoint texts are rejected even if valid.
	junk := []byte("not a checkpoint\n")
	js, _ := rawCosigner{name: c.Name(), key: testKey(2), ts: 5}.Sign(junk)
	if v.Verify(junk, js) {
		t.Error("cosignature over a non-checkpoint accepted")
	}
	// Extension lines are covered by the signature.
	ext := testCheckpoint(t)
	ext.Extensions = []string{"extension"}
	extText, _ := ext.Marshal()
	es, _ := rawCosigner{name: c.Name(), key: testKey(2), ts: 5}.Sign(extText)
	if !v.Verify(extText, es) {
		t.Error("cosignature over a checkpoint with extensions rejected")
	}
	extText[len(extText)-2] ^= 1
	if v.Verify(extText, es) {
		t.Error("cosignature does not cover extension lines")
	}
	// A type 0x01 signature by the same key is not a cosignature.
	if v.Verify(text, append(make([]byte, 8), ed25519.Sign(testKey(2), text)...)) {
		t.Error("plain signature with a zero timestamp accepted")
	}
}

func FuzzParseVerifierKey(f *testing.F) {
	pub := testKey(3).Public().(ed25519.PublicKey)
	for _, alg := range []byte{AlgEd25519, AlgCosignatureV1} {
		k, _ := VerifierKey("example.com/k", alg, pub)
		f.Add(k)
	}
	f.Add("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
	f.Add("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
	f.Add("a+00000000+AQ==")
	f.Fuzz(func(t *testing.T, vkey string) {
		name, alg, pub, err := ParseVerifierKey(vkey)
		if err != nil {
			if !errors.Is(err, ErrMalformedKey) && !errors.Is(err, ErrUnknownAlgorithm) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		again, err := VerifierKey(name, alg, pub)
		if err != nil {
			t.Fatalf("VerifierKey(ParseVerifierKey(%q)): %v", vkey, err)
		}
		if again != vkey {
			t.Fatalf("VerifierKey(ParseVerifierKey(%q)) = %q", vkey, again)
		}
	})
}
