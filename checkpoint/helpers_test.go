package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/tools/txtar"
)

const testRealm = "example.com/realm"

// testKey returns the Ed25519 key whose seed is 32 bytes of b.
func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func testSigner(t testing.TB, b byte) *KeySigner {
	t.Helper()
	s, err := NewKeySigner(testKey(b))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fixedClock(unix int64) func() time.Time {
	return func() time.Time { return time.Unix(unix, 0) }
}

func testLogSigner(t testing.TB) *LogSigner {
	t.Helper()
	l, err := NewLogSigner(testRealm, testSigner(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testCosigners returns n cosigners named w<i>.example/verifier with keys
// from seeds 2, 3, ... and clocks at 1000, 2000, ... seconds.
func testCosigners(t testing.TB, n int) []*Cosigner {
	t.Helper()
	var cs []*Cosigner
	for i := range n {
		c, err := NewCosigner(fmt.Sprintf("w%d.example/verifier", i+1), testSigner(t, byte(2+i)), fixedClock(int64(1000*(i+1))))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

func cosignatureVerifiers(cs []*Cosigner) []*CosignatureVerifier {
	var vs []*CosignatureVerifier
	for _, c := range cs {
		vs = append(vs, c.Verifier())
	}
	return vs
}

// testCheckpoint is the checkpoint of a 5-leaf log.
func testCheckpoint(t testing.TB) Checkpoint {
	t.Helper()
	m := NewMemoryLog()
	var root [32]byte
	for i := range 5 {
		var err error
		if root, err = m.Append(LeafHash([]byte(fmt.Sprintf("epoch head %d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	return Checkpoint{Origin: testRealm, Size: 5, Hash: root}
}

// signAll returns c signed by the log and cosigned by every cosigner,
// assembled with plain note.Sign (not Merge).
func signAll(t testing.TB, c Checkpoint, log *LogSigner, cs []*Cosigner) []byte {
	t.Helper()
	text, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	signers := []note.Signer{log}
	for _, c := range cs {
		signers = append(signers, c)
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// rawSigner returns an x/mod note.Signer for key named name, which signs
// any text: it stands for a buggy or malicious keyserver.
func rawSigner(t testing.TB, name string, key ed25519.PrivateKey) note.Signer {
	t.Helper()
	pub := key.Public().(ed25519.PublicKey)
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, KeyHash(name, AlgEd25519, pub),
		base64.StdEncoding.EncodeToString(append([]byte{AlgEd25519}, key.Seed()...)))
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawCosigner signs any text as a cosigner at timestamp ts.
type rawCosigner struct {
	name string
	key  ed25519.PrivateKey
	ts   uint64
}

func (r rawCosigner) Name() string { return r.name }
func (r rawCosigner) KeyHash() uint32 {
	return KeyHash(r.name, AlgCosignatureV1, r.key.Public().(ed25519.PublicKey))
}
func (r rawCosigner) Sign(msg []byte) ([]byte, error) {
	sig := ed25519.Sign(r.key, CosignedMessage(r.ts, msg))
	out := []byte{byte(r.ts >> 56), byte(r.ts >> 48), byte(r.ts >> 40), byte(r.ts >> 32), byte(r.ts >> 24), byte(r.ts >> 16), byte(r.ts >> 8), byte(r.ts)}
	return append(out, sig...), nil
}

func readTxtar(t testing.TB, name string) map[string]string {
	t.Helper()
	a, err := txtar.ParseFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	for _, f := range a.Files {
		m[f.Name] = string(f.Data)
	}
	return m
}

func trimNL(s string) string { return strings.TrimSuffix(s, "\n") }

// sigLines returns the signature block of a note, split into lines with
// their newlines.
func splitNote(msg []byte) (text []byte, lines []string) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	text = msg[:i+1]
	for _, l := range strings.SplitAfter(string(msg[i+2:]), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return text, lines
}

func joinNote(text []byte, lines []string) []byte {
	return []byte(string(text) + "\n" + strings.Join(lines, ""))
}
