package checkpoint

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

type realm struct {
	log       *LogSigner
	cosigners []*Cosigner
	vs        []*CosignatureVerifier
}

func newRealm(t testing.TB, k int) realm {
	cs := testCosigners(t, k)
	return realm{log: testLogSigner(t), cosigners: cs, vs: cosignatureVerifiers(cs)}
}

func (r realm) open(msg []byte, quorum int) (*Verified, error) {
	return Open(msg, testRealm, r.log.Verifier(), r.vs, quorum)
}

func TestOpen(t *testing.T) {
	r := newRealm(t, 3)
	c := testCheckpoint(t)
	msg := signAll(t, c, r.log, r.cosigners)
	for q := 0; q <= 3; q++ {
		v, err := r.open(msg, q)
		if err != nil {
			t.Fatalf("quorum %d: %v", q, err)
		}
		if !equalCheckpoint(v.Checkpoint, c) {
			t.Errorf("Checkpoint = %+v", v.Checkpoint)
		}
		if len(v.Cosignatures) != 3 {
			t.Fatalf("Cosignatures = %+v", v.Cosignatures)
		}
		for i, cs := range v.Cosignatures {
			if cs.Name != r.cosigners[i].Name() || cs.KeyHash != r.cosigners[i].KeyHash() || cs.Timestamp != uint64(1000*(i+1)) {
				t.Errorf("Cosignatures[%d] = %+v", i, cs)
			}
		}
		if len(v.Note.Sigs) != 4 || len(v.Note.UnverifiedSigs) != 0 {
			t.Errorf("Note = %+v", v.Note)
		}
	}
	// The cosigner list order decides the order of the result.
	rev := slices.Clone(r.vs)
	slices.Reverse(rev)
	v, err := Open(msg, testRealm, r.log.Verifier(), rev, 3)
	if err != nil {
		t.Fatal(err)
	}
	if v.Cosignatures[0].Name != r.cosigners[2].Name() {
		t.Errorf("order: %+v", v.Cosignatures)
	}
	// Verifier keys from strings only.
	lv, err := NewVerifier(r.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	var cvs []*CosignatureVerifier
	for _, c := range r.cosigners {
		cv, err := NewCosignatureVerifier(c.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		cvs = append(cvs, cv)
	}
	if _, err := Open(msg, testRealm, lv, cvs, 3); err != nil {
		t.Fatal(err)
	}
}

func equalCheckpoint(a, b Checkpoint) bool {
	return a.Origin == b.Origin && a.Size == b.Size && a.Hash == b.Hash && slices.Equal(a.Extensions, b.Extensions)
}

// TestOpenSignatureBitFlips flips every bit of the signature lines of a
// note signed by the log and 3 of 3 cosigners: each must be rejected.
func TestOpenSignatureBitFlips(t *testing.T) {
	r := newRealm(t, 3)
	msg := signAll(t, testCheckpoint(t), r.log, r.cosigners)
	start := bytes.LastIndex(msg, []byte("\n\n")) + 2
	for i := start; i < len(msg); i++ {
		for bit := range 8 {
			bad := bytes.Clone(msg)
			bad[i] ^= 1 << bit
			if v, err := r.open(bad, 3); err == nil {
				t.Fatalf("byte %d bit %d flipped: accepted %+v", i, bit, v.Cosignatures)
			}
		}
	}
}

// TestOpenBodyBitFlips flips every bit of the checkpoint text.
func TestOpenBodyBitFlips(t *testing.T) {
	r := newRealm(t, 1)
	msg := signAll(t, testCheckpoint(t), r.log, r.cosigners)
	end := bytes.LastIndex(msg, []byte("\n\n")) + 2
	for i := range end {
		for bit := range 8 {
			bad := bytes.Clone(msg)
			bad[i] ^= 1 << bit
			if _, err := r.open(bad, 0); err == nil {
				t.Fatalf("byte %d bit %d flipped: accepted", i, bit)
			}
		}
	}
}

func TestOpenRejects(t *testing.T) {
	r := newRealm(t, 3)
	c := testCheckpoint(t)
	good := signAll(t, c, r.log, r.cosigners)
	text, lines := splitNote(good)
	logLine, cosLines := lines[0], lines[1:]
	textOf := func(c Checkpoint) string {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sign := func(text string, signers ...note.Signer) []byte {
		msg, err := note.Sign(&note.Note{Text: text}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	otherOrigin := c
	otherOrigin.Origin = "other.example/realm"
	withExt := c
	withExt.Extensions = []string{"ext"}
	// A second cosignature by w1 at another time.
	w1Again := sign(string(text), rawCosigner{name: r.cosigners[0].Name(), key: testKey(2), ts: 77})
	_, w1AgainLines := splitNote(w1Again)
	// Wrong timestamp bytes: rewrite the timestamp inside w2's signature.
	reTime := func(line string, ts uint64) string {
		return rewriteLine(line, func(raw []byte) { binary.BigEndian.PutUint64(raw[4:12], ts) })
	}
	unknown, err := NewCosigner("w9.example/verifier", testSigner(t, 9), fixedClock(9))
	if err != nil {
		t.Fatal(err)
	}
	unknownLine := splitLines(sign(string(text), unknown))[0]
	for _, tc := range []struct {
		name   string
		msg    []byte
		quorum int
		want   error
	}{
		{"empty", nil, 0, ErrMalformedNote},
		{"no signatures", text, 0, ErrMalformedNote},
		{"no blank line", []byte(string(text) + logLine), 0, ErrMalformedNote},
		{"missing final newline", good[:len(good)-1], 0, ErrMalformedNote},
		{"missing log signature", joinNote(text, cosLines), 0, ErrMissingLogSignature},
		{"only unknown signatures", joinNote(text, []string{unknownLine}), 0, ErrMissingLogSignature},
		{"duplicate log signature", joinNote(text, append([]string{logLine, logLine}, cosLines...)), 0, ErrDuplicateSignature},
		{"duplicate cosignature", joinNote(text, append([]string{logLine, cosLines[0]}, cosLines...)), 0, ErrDuplicateSignature},
		{"two cosignatures by one key", joinNote(text, append([]string{logLine, w1AgainLines[0]}, cosLines...)), 0, ErrDuplicateSignature},
		{"duplicate unknown signature", joinNote(text, []string{logLine, unknownLine, unknownLine}), 0, ErrDuplicateSignature},
		{"wrong timestamp", joinNote(text, []string{logLine, cosLines[0], reTime(cosLines[1], 2001), cosLines[2]}), 0, ErrBadSignature},
		{"timestamp 2^63", joinNote(text, []string{logLine, reTime(cosLines[0], 1<<63)}), 0, ErrBadSignature},
		{"quorum not met", joinNote(text, []string{logLine, cosLines[0], cosLines[2]}), 3, ErrQuorum},
		{"unknown cosigner does not count", joinNote(text, []string{logLine, cosLines[0], unknownLine, cosLines[2]}), 3, ErrQuorum},
		{"wrong origin", sign(textOf(otherOrigin), rawSigner(t, testRealm, testKey(1))), 0, ErrWrongOrigin},
		{"other realm's checkpoint", sign(textOf(otherOrigin), rawSigner(t, otherOrigin.Origin, testKey(1))), 0, ErrMissingLogSignature},
		{"wrong key name", sign(string(text), rawSigner(t, "example.com/other", testKey(1))), 0, ErrMissingLogSignature},
		{"wrong key", sign(string(text), rawSigner(t, testRealm, testKey(5))), 0, ErrMissingLogSignature},
		{"extension lines", sign(textOf(withExt), rawSigner(t, testRealm, testKey(1))), 0, ErrExtensions},
		{"not a checkpoint", sign("hello\n", rawSigner(t, testRealm, testKey(1))), 0, ErrMalformed},
		{"signature for other text", joinNote([]byte(textOf(otherOrigin)), []string{logLine}), 0, ErrBadSignature},
		{"control character", bytes.Replace(good, []byte("\n\n"), []byte("\n\r\n"), 1), 0, ErrMalformedNote},
		{"bad UTF-8", append(bytes.Clone(good[:len(good)-1]), 0xff, '\n'), 0, ErrMalformedNote},
		{"too large", append(bytes.Repeat([]byte("x"), MaxNoteLen), good...), 0, ErrMalformedNote},
	} {
		v, err := r.open(tc.msg, tc.quorum)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Open = %+v, %v; want %v", tc.name, v, err, tc.want)
		}
	}
	// Without the quorum, the note with an unknown cosigner opens and
	// reports it as unverified only.
	msg := joinNote(text, []string{logLine, cosLines[0], unknownLine, cosLines[2]})
	v, err := r.open(msg, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Cosignatures) != 2 || len(v.Note.UnverifiedSigs) != 1 || v.Note.UnverifiedSigs[0].Name != unknown.Name() {
		t.Errorf("Open = %+v, %+v", v.Cosignatures, v.Note)
	}
}

// rewriteLine decodes the signature of a signature line, lets f change
// it, and re-encodes it.
func rewriteLine(line string, f func(raw []byte)) string {
	name, b64, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(line, "— "), "\n"), " ")
	raw, _ := base64.StdEncoding.DecodeString(b64)
	f(raw)
	return "— " + name + " " + base64.StdEncoding.EncodeToString(raw) + "\n"
}

// rewriteSig applies rewriteLine to signature line i of msg.
func rewriteSig(msg []byte, i int, f func(raw []byte)) []byte {
	text, lines := splitNote(msg)
	lines[i] = rewriteLine(lines[i], f)
	return joinNote(text, lines)
}

func splitLines(msg []byte) []string {
	_, l := splitNote(msg)
	return l
}

func TestOpenLimits(t *testing.T) {
	r := newRealm(t, 1)
	msg := signAll(t, testCheckpoint(t), r.log, r.cosigners)
	text, lines := splitNote(msg)
	// MaxSignatures lines in all: accepted. One more: rejected.
	var extra []string
	for i := 0; len(lines)+len(extra) < MaxSignatures; i++ {
		extra = append(extra, fmt.Sprintf("— unknown%d.example AAAAAAA=\n", i))
	}
	all := append(slices.Clone(lines), extra...)
	if _, err := r.open(joinNote(text, all), 1); err != nil {
		t.Errorf("%d signatures: %v", len(all), err)
	}
	all = append(all, "— one.more.example AAAAAAA=\n")
	if _, err := r.open(joinNote(text, all), 1); !errors.Is(err, ErrMalformedNote) {
		t.Errorf("%d signatures: %v", len(all), err)
	}
	// Signature lines must be canonical base64 of at least 5 bytes.
	for _, l := range []string{
		"— unknown.example AAAAAA==\n", // 4 bytes
		"— unknown.example AAAAAAB=\n", // non-zero padding bits
		"— unknown.example AAAAAAA\n",  // unpadded
		"— unknown.example AAAA AAA=\n",
		"— unknown.example \n",
		"— unknown.example\n",
		"—  AAAAAAA=\n",
		"— a+b AAAAAAA=\n",
		"-- unknown.example AAAAAAA=\n",
	} {
		if _, err := r.open(joinNote(text, append(slices.Clone(lines), l)), 1); !errors.Is(err, ErrMalformedNote) {
			t.Errorf("line %q: %v", l, err)
		}
	}
}

func TestOpenConfig(t *testing.T) {
	r := newRealm(t, 2)
	msg := signAll(t, testCheckpoint(t), r.log, r.cosigners)
	dupKey := newCosignatureVerifier("w7.example/verifier", r.cosigners[0].PublicKey())
	otherLog, err := NewLogSigner("example.com/other", testSigner(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	sameAsLog := &CosignatureVerifier{name: r.log.Name(), hash: r.log.KeyHash(), pub: r.log.PublicKey()}
	for _, tc := range []struct {
		name      string
		log       note.Verifier
		cosigners []*CosignatureVerifier
		quorum    int
	}{
		{"nil log", nil, r.vs, 0},
		{"cosignature key as log key", newCosignatureVerifier(testRealm, r.log.PublicKey()), r.vs, 0},
		{"log not named after origin", otherLog.Verifier(), r.vs, 0},
		{"negative quorum", r.log.Verifier(), r.vs, -1},
		{"quorum above cosigners", r.log.Verifier(), r.vs, 3},
		{"nil cosigner", r.log.Verifier(), []*CosignatureVerifier{r.vs[0], nil}, 0},
		{"same cosigner twice", r.log.Verifier(), []*CosignatureVerifier{r.vs[0], r.vs[0]}, 0},
		{"one public key, two names", r.log.Verifier(), []*CosignatureVerifier{r.vs[0], dupKey}, 0},
		{"cosigner with the log's name and hash", r.log.Verifier(), []*CosignatureVerifier{sameAsLog}, 0},
	} {
		if _, err := Open(msg, testRealm, tc.log, tc.cosigners, tc.quorum); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Open = %v", tc.name, err)
		}
		if _, err := Merge(testRealm, tc.log, tc.cosigners, msg); tc.quorum == 0 && !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Merge = %v", tc.name, err)
		}
	}
}

func TestMerge(t *testing.T) {
	r := newRealm(t, 3)
	c := testCheckpoint(t)
	stored, err := Sign(c, r.log)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := splitNote(stored)
	var cos [][]byte
	for _, cs := range r.cosigners {
		m, err := note.Sign(&note.Note{Text: string(text)}, cs)
		if err != nil {
			t.Fatal(err)
		}
		cos = append(cos, m)
	}
	all := signAll(t, c, r.log, r.cosigners)
	want, err := Merge(testRealm, r.log.Verifier(), r.vs, stored, cos[0], cos[1], cos[2])
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.open(want, 3)
	if err != nil {
		t.Fatalf("merged note does not open: %v\n%s", err, want)
	}
	if len(v.Cosignatures) != 3 {
		t.Errorf("merged cosignatures %+v", v.Cosignatures)
	}
	// Deterministic: the same output for any order and grouping of inputs,
	// and the log signature first, then cosigners by name.
	_, lines := splitNote(want)
	if !strings.HasPrefix(lines[0], "— "+testRealm+" ") {
		t.Errorf("first signature line %q", lines[0])
	}
	if !slices.IsSorted(lines[1:]) {
		t.Errorf("cosignature lines not sorted:\n%s", want)
	}
	inputs := [][]byte{stored, cos[0], cos[1], cos[2], all}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		rng.Shuffle(len(inputs), func(i, j int) { inputs[i], inputs[j] = inputs[j], inputs[i] })
		n := 1 + rng.IntN(len(inputs))
		in := inputs[:n]
		if !slices.ContainsFunc(in, func(b []byte) bool { return bytes.Equal(b, stored) || bytes.Equal(b, all) }) {
			in = append(slices.Clone(in), stored)
		}
		got, err := Merge(testRealm, r.log.Verifier(), r.vs, in...)
		if err != nil {
			t.Fatal(err)
		}
		// Incrementally: merge the result again with each cosignature.
		for _, m := range cos {
			if got, err = Merge(testRealm, r.log.Verifier(), r.vs, got, m); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Merge is not deterministic:\n%s\nvs\n%s", got, want)
		}
	}
	// A newer cosignature by the same cosigner replaces the older one.
	newer, _ := note.Sign(&note.Note{Text: string(text)}, rawCosigner{name: r.cosigners[1].Name(), key: testKey(3), ts: 5000})
	older, _ := note.Sign(&note.Note{Text: string(text)}, rawCosigner{name: r.cosigners[1].Name(), key: testKey(3), ts: 5})
	got, err := Merge(testRealm, r.log.Verifier(), r.vs, want, newer, older)
	if err != nil {
		t.Fatal(err)
	}
	v, err = r.open(got, 3)
	if err != nil {
		t.Fatal(err)
	}
	if v.Cosignatures[1].Timestamp != 5000 || v.Cosignatures[0].Timestamp != 1000 {
		t.Errorf("timestamps after merge: %+v", v.Cosignatures)
	}
	// Unknown signatures are dropped.
	unknown, _ := NewCosigner("w9.example/verifier", testSigner(t, 9), fixedClock(9))
	withUnknown, _ := note.Sign(&note.Note{Text: string(text)}, r.cosigners[0], unknown)
	got, err = Merge(testRealm, r.log.Verifier(), r.vs, stored, withUnknown)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte("w9.example")) {
		t.Errorf("unknown signature kept:\n%s", got)
	}
	// Failures.
	otherC := c
	otherC.Size = 4
	otherStored, _ := Sign(otherC, r.log)
	onlyUnknown, _ := note.Sign(&note.Note{Text: string(text)}, unknown)
	badCos := rewriteSig(cos[0], 0, func(raw []byte) { raw[len(raw)-1] ^= 1 })
	for _, tc := range []struct {
		name  string
		notes [][]byte
		want  error
	}{
		{"nothing", nil, ErrMalformedNote},
		{"different checkpoints", [][]byte{stored, otherStored}, ErrTextMismatch},
		{"no log signature", [][]byte{cos[0], cos[1]}, ErrMissingLogSignature},
		{"only unknown keys", [][]byte{stored, onlyUnknown}, ErrUnknownSigner},
		{"bad cosignature", [][]byte{stored, badCos}, ErrBadSignature},
		{"malformed", [][]byte{stored, []byte("junk")}, ErrMalformedNote},
	} {
		if _, err := Merge(testRealm, r.log.Verifier(), r.vs, tc.notes...); !errors.Is(err, tc.want) {
			t.Errorf("%s: Merge = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzOpen(f *testing.F) {
	r := newRealm(f, 2)
	good := signAll(f, testCheckpoint(f), r.log, r.cosigners)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(bytes.Replace(good, []byte("— w1"), []byte("— w3"), 1))
	f.Add([]byte("example.com/realm\n1\n" + validHash + "\n\n— example.com/realm AAAAAAA=\n"))
	f.Add([]byte("\n\n— a AAAAAAA=\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		v, err := r.open(msg, 0)
		if err != nil {
			return
		}
		// Anything accepted is a canonical checkpoint with the log
		// signature, and merging it with itself keeps it valid.
		text, err := v.Checkpoint.Marshal()
		if err != nil || string(text) != v.Note.Text {
			t.Fatalf("accepted text %q re-encodes as %q, %v", v.Note.Text, text, err)
		}
		m, err := Merge(testRealm, r.log.Verifier(), r.vs, msg)
		if err != nil {
			t.Fatalf("Merge of an accepted note: %v", err)
		}
		v2, err := r.open(m, len(v.Cosignatures))
		if err != nil || len(v2.Cosignatures) != len(v.Cosignatures) {
			t.Fatalf("merged note: %+v, %v", v2, err)
		}
	})
}
