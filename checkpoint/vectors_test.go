package checkpoint

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestVectorSignedNote checks the example of c2sp.org/signed-note.
func TestVectorSignedNote(t *testing.T) {
	tv := readTxtar(t, "c2sp-signed-note.txtar")
	vkey := trimNL(tv["vkey"])
	name, alg, pub, err := ParseVerifierKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if name != "example.com/foo" || alg != AlgEd25519 || hex.EncodeToString(pub) != trimNL(tv["pubkey.hex"]) {
		t.Errorf("ParseVerifierKey = %q, %#x, %x", name, alg, pub)
	}
	if KeyHash(name, alg, pub) != 0x530d903a {
		t.Errorf("KeyHash = %08x", KeyHash(name, alg, pub))
	}
	if again, _ := VerifierKey(name, alg, pub); again != vkey {
		t.Errorf("VerifierKey = %q", again)
	}
	vs, err := NewVerifiers(vkey)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(tv["note"])
	n, err := note.Open(msg, vs)
	if err != nil || n.Text != "This is an example message.\n" {
		t.Fatalf("note.Open = %+v, %v", n, err)
	}
	if _, err := scanNote(msg); err != nil {
		t.Errorf("scanNote rejects the specification's example: %v", err)
	}
	msg[len(msg)-5] ^= 1
	if _, err := note.Open(msg, vs); err == nil {
		t.Error("mangled example verifies")
	}
}

// TestVectorXMod checks the example of the x/mod note documentation,
// through our verifier set.
func TestVectorXMod(t *testing.T) {
	tv := readTxtar(t, "xmod-note.txtar")
	vs, err := NewVerifiers(trimNL(tv["vkey"]))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"note", "note2"} {
		n, err := note.Open([]byte(tv[f]), vs)
		if err != nil || len(n.Sigs) != 1 || n.Sigs[0].Name != "PeterNeumann" {
			t.Errorf("%s: note.Open = %+v, %v", f, n, err)
		}
		if _, err := scanNote([]byte(tv[f])); err != nil {
			t.Errorf("%s: scanNote: %v", f, err)
		}
	}
	n, _ := note.Open([]byte(tv["note2"]), vs)
	if len(n.UnverifiedSigs) != 1 || n.UnverifiedSigs[0].Name != "EnochRoot" {
		t.Errorf("UnverifiedSigs = %+v", n.UnverifiedSigs)
	}
	// The documented private key reproduces the documented note.
	s, err := note.NewSigner(trimNL(tv["skey"]))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: n.Text}, s)
	if err != nil || string(msg) != tv["note"] {
		t.Errorf("note.Sign = %q, %v", msg, err)
	}
}

// TestVectorCosignedCheckpoint checks a real checkpoint with witness
// cosignatures, from an independent implementation's test data: the log
// signature (type 0x01) and a tlog-cosignature/v1 (type 0x04) by the
// witness remora.n621.de.
func TestVectorCosignedCheckpoint(t *testing.T) {
	tv := readTxtar(t, "arche2025h1-cosigned.txtar")
	log, err := NewVerifier(trimNL(tv["log.vkey"]))
	if err != nil {
		t.Fatal(err)
	}
	cos, err := NewCosignatureVerifier(trimNL(tv["cosigner.vkey"]))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(tv["note"])
	const origin = "arche2025h1.staging.ct.transparency.dev"
	v, err := Open(msg, origin, log, []*CosignatureVerifier{cos}, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantTS, _ := strconv.ParseUint(trimNL(tv["cosigner.timestamp"]), 10, 64)
	if v.Checkpoint.Size != 1432088532 || len(v.Cosignatures) != 1 ||
		v.Cosignatures[0].Name != "remora.n621.de" || v.Cosignatures[0].Timestamp != wantTS {
		t.Errorf("Open = %+v, %+v", v.Checkpoint, v.Cosignatures)
	}
	// The type 0x05 signature and the three other witnesses are unknown.
	if len(v.Note.Sigs) != 2 || len(v.Note.UnverifiedSigs) != 4 {
		t.Errorf("Sigs %d, UnverifiedSigs %d", len(v.Note.Sigs), len(v.Note.UnverifiedSigs))
	}
	// Tampering with the cosignature's timestamp or the checkpoint breaks it.
	_, lines := splitNote(msg)
	idx := -1
	for i, l := range lines {
		if bytes.HasPrefix([]byte(l), []byte("— remora.n621.de ")) {
			idx = i
		}
	}
	bad := rewriteSig(msg, idx, func(raw []byte) { raw[11]++ })
	if _, err := Open(bad, origin, log, []*CosignatureVerifier{cos}, 1); !errors.Is(err, ErrBadSignature) {
		t.Errorf("timestamp changed: %v", err)
	}
	bad = bytes.Replace(msg, []byte("1432088532"), []byte("1432088533"), 1)
	if _, err := Open(bad, origin, log, []*CosignatureVerifier{cos}, 1); !errors.Is(err, ErrBadSignature) {
		t.Errorf("size changed: %v", err)
	}
	// Merge keeps the log signature and the known cosignature only.
	m, err := Merge(origin, log, []*CosignatureVerifier{cos}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ls := splitNote(m); len(ls) != 2 {
		t.Errorf("merged note:\n%s", m)
	}
	if _, err := Open(m, origin, log, []*CosignatureVerifier{cos}, 1); err != nil {
		t.Errorf("merged note: %v", err)
	}
}

// TestVectorSumDB checks a real Go checksum database checkpoint, whose
// origin has spaces and differs from its key name (so it is opened with
// note.Open and Parse, not Open, which requires the two to match).
func TestVectorSumDB(t *testing.T) {
	tv := readTxtar(t, "sumdb-checkpoint.txtar")
	vs, err := NewVerifiers(trimNL(tv["vkey"]))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(tv["note"])
	if _, err := scanNote(msg); err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, vs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(n.Text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Origin != "go.sum database tree" || c.Size != 35225469 {
		t.Errorf("Parse = %+v", c)
	}
	v, err := NewVerifier(trimNL(tv["vkey"]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(msg, c.Origin, v, nil, 0); !errors.Is(err, ErrConfig) {
		t.Errorf("Open with a key not named after the origin: %v", err)
	}
}

// TestVectorConiferExample checks our signers against the worked example
// computed by an independent implementation (testdata/conifer-example.txtar).
func TestVectorConiferExample(t *testing.T) {
	tv := readTxtar(t, "conifer-example.txtar")
	ks, _ := NewKeySigner(testKey(1))
	log, err := NewLogSigner("example.com/realm", ks)
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := NewKeySigner(testKey(2))
	cos, err := NewCosigner("verifier.example/v1", vs, fixedClock(1767225600))
	if err != nil {
		t.Fatal(err)
	}
	if log.VerifierKey() != trimNL(tv["log.vkey"]) || cos.VerifierKey() != trimNL(tv["cosigner.vkey"]) {
		t.Errorf("verifier keys %q, %q", log.VerifierKey(), cos.VerifierKey())
	}
	m := NewMemoryLog()
	var root [32]byte
	for _, h := range []string{"head 0", "head 1", "head 2"} {
		root, _ = m.Append(LeafHash([]byte(h)))
	}
	c := Checkpoint{Origin: "example.com/realm", Size: 3, Hash: root}
	msg := signAll(t, c, log, []*Cosigner{cos})
	if string(msg) != tv["note"] {
		t.Errorf("signed note\n%s\nwant\n%s", msg, tv["note"])
	}
}
