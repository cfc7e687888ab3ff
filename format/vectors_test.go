package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json and the examples in ../SPEC.md")

const (
	vectorsPath = "testdata/vectors.json"
	specPath    = "../SPEC.md"
)

// vectorFile is the layout of testdata/vectors.json.
type vectorFile struct {
	Comment        []string        `json:"comment"`
	ProfileOpening string          `json:"profile_opening"`
	Keys           []keyVector     `json:"keys"`
	Valid          []validVector   `json:"valid"`
	Invalid        []invalidVector `json:"invalid"`
}

type keyVector struct {
	Name   string `json:"name"`
	Seed   string `json:"seed"`
	Public string `json:"public"`
	KeyID  string `json:"key_id"`
}

type validVector struct {
	Format   string            `json:"format"`
	Name     string            `json:"name"`
	Encoding string            `json:"encoding"`
	Hashes   map[string]string `json:"hashes,omitempty"`
	Fields   []fieldVector     `json:"fields"`
}

type fieldVector struct {
	Field string `json:"field"`
	Hex   string `json:"hex"`
}

type invalidVector struct {
	Format   string `json:"format"`
	Name     string `json:"name"`
	Encoding string `json:"encoding"`
	Error    string `json:"error"`
}

// namedValue is one valid vector before encoding.
type namedValue struct {
	format, name string
	value        any
}

func (f *fixtures) values(t testing.TB) []namedValue {
	chunks, err := SplitBundle(mustMarshal(t, f.bundleOne), 500)
	if err != nil {
		t.Fatal(err)
	}
	v := []namedValue{
		{"profile", "empty", f.profileEmpty},
		{"profile", "alice", f.profileAlice},
		{"policy", "one-of-one", f.policyOne},
		{"policy", "nested", f.policyNested},
		{"policy", "three-of-three", f.policyAll},
		{"entry", "registration", f.entryReg},
		{"entry", "update", f.entryUpdate},
		{"entry", "tombstone", f.entryTomb},
		{"entry", "bob-registration", f.entryBob},
		{"signed_entry", "registration", f.signedReg},
		{"signed_entry", "update", f.signedUpdate},
		{"signed_entry", "tombstone", f.signedTomb},
		{"signed_entry", "bob-registration", f.signedBob},
		{"registration", "registrar", f.regRegistrar},
		{"registration", "oidc", f.regOIDC},
		{"log_record", "registration", f.recReg},
		{"log_record", "update", f.recUpdate},
		{"log_record", "tombstone", f.recTomb},
		{"log_record", "bob-registration", f.recBob},
		{"leaf_record", "first", f.leafFirst},
		{"leaf_record", "next", f.leafNext},
		{"epoch_head", "genesis", f.headGenesis},
		{"epoch_head", "epoch-1", f.headOne},
		{"epoch_head", "epoch-2", f.headTwo},
		{"bundle", "genesis", f.bundleGenesis},
		{"bundle", "epoch-1", f.bundleOne},
		{"bundle", "epoch-2", f.bundleTwo},
	}
	for i := range chunks {
		v = append(v, namedValue{"bundle_chunk", fmt.Sprintf("epoch-1-part-%d", i), &chunks[i]})
	}
	return v
}

// vectorHashes returns the derived values a vector of this format lists.
func vectorHashes(format string, enc []byte, opening [OpeningSize]byte) map[string]string {
	h := map[string]string{}
	x := func(b []byte) string { return hex.EncodeToString(b) }
	switch format {
	case "profile":
		c := CommitProfile(opening, enc)
		h["commitment"] = x(c[:])
	case "entry":
		e := EntryHash(enc)
		h["entry_hash"] = x(e[:])
		h["signing_message"] = x(SigningMessage(e))
		h["registration_message"] = x(RegistrationMessage(e))
		h["oidc_nonce"] = OIDCNonce(e)
	case "log_record":
		h["rfc6962_leaf_hash"] = x(rfc6962.DefaultHasher.HashLeaf(enc))
	case "leaf_record":
		l := LeafRecordHash(enc)
		h["leaf_record_hash"] = x(l[:])
	case "epoch_head":
		h["rfc6962_leaf_hash"] = x(rfc6962.DefaultHasher.HashLeaf(enc))
	case "bundle":
		d := bundleDigest(enc)
		h["digest"] = x(d[:])
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

// invalidInputs returns mangled encodings that every implementation must
// reject, each with the error this one gives.
func (f *fixtures) invalidInputs(t testing.TB) []invalidVector {
	type bad struct {
		format, name string
		enc          []byte
	}
	flipLast := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-1] ^= 1; return b }
	plus := func(b []byte, extra ...byte) []byte { return append(bytes.Clone(b), extra...) }

	entryWith := func(mut func(e *Entry)) []byte {
		e := *f.entryUpdate
		e.Policy = *clonePolicy(&f.entryUpdate.Policy)
		mut(&e)
		return modelEntry(&e).bytes()
	}
	profile := modelProfile(f.profileAlice).bytes()
	swapped := &Profile{Keys: []AppKey{f.profileAlice.Keys[1], f.profileAlice.Keys[0]}}
	upper := &Profile{Keys: []AppKey{{App: "PGP", Key: []byte{1}}}}
	utf := &Profile{Keys: []AppKey{{App: "p\xc3\xa9p", Key: []byte{1}}}}
	signedSwapped := *f.signedUpdate
	signedSwapped.Signatures = []Signature{f.signedUpdate.Signatures[1], f.signedUpdate.Signatures[0], f.signedUpdate.Signatures[2]}
	signedDup := *f.signedUpdate
	signedDup.Signatures = []Signature{f.signedUpdate.Signatures[0], f.signedUpdate.Signatures[0]}
	recUpdate := mustMarshal(t, f.recUpdate)
	recReg := mustMarshal(t, f.recReg)
	head := mustMarshal(t, f.headOne)
	badTag := bytes.Clone(head)
	badTag[1] = 'C'
	genesisCount := *f.headGenesis
	genesisCount.UpdateCount = 1
	leaf0 := *f.leafFirst
	leaf0.Epoch = 0
	bundleShort := *f.bundleOne
	bundleShort.Records = bundleShort.Records[:1]
	bundleSwapped := *f.bundleOne
	bundleSwapped.Records = [][]byte{f.bundleOne.Records[1], f.bundleOne.Records[0]}

	list := []bad{
		{"profile", "trailing-byte", plus(profile, 0)},
		{"profile", "truncated", profile[:len(profile)-1]},
		{"profile", "apps-out-of-order", modelProfile(swapped).bytes()},
		{"profile", "uppercase-app", modelProfile(upper).bytes()},
		{"profile", "non-ascii-app", modelProfile(utf).bytes()},
		{"policy", "threshold-zero", modelPolicy(&Policy{Threshold: 0, Keys: []ed25519.PublicKey{testPub(0)}}).bytes()},
		{"policy", "threshold-unsatisfiable", modelPolicy(&Policy{Threshold: 2, Keys: []ed25519.PublicKey{testPub(0)}}).bytes()},
		{"policy", "keys-out-of-order", modelPolicy(reversedKeys(mustPolicy(t, 1, 0, 1, 2))).bytes()},
		{"policy", "key-twice", modelPolicy(&Policy{Threshold: 1, Keys: []ed25519.PublicKey{testPub(0)}, Subpolicies: []*Policy{subPolicy(1, 0)}}).bytes()},
		{"policy", "small-order-key", modelPolicy(&Policy{Threshold: 1, Keys: []ed25519.PublicKey{smallOrderKeys[0][:]}}).bytes()},
		{"entry", "version-zero", entryWith(func(e *Entry) { e.Version = 0 })},
		{"entry", "registration-with-prev", entryWith(func(e *Entry) { e.Version = 1 })},
		{"entry", "update-without-prev", entryWith(func(e *Entry) { e.Prev = [32]byte{} })},
		{"entry", "tombstone-with-commitment", entryWith(func(e *Entry) { e.Tombstone = true })},
		{"entry", "zero-commitment", entryWith(func(e *Entry) { e.Commitment = [32]byte{} })},
		{"entry", "bad-realm", entryWith(func(e *Entry) { e.Realm = "example com" })},
		{"entry", "tombstone-byte-2", func() []byte {
			b := modelEntry(f.entryTomb).bytes()
			b[len(b)-33] = 2
			return b
		}()},
		{"signed_entry", "signatures-out-of-order", modelSignedEntry(&signedSwapped).bytes()},
		{"signed_entry", "duplicate-signer", modelSignedEntry(&signedDup).bytes()},
		{"registration", "unknown-kind", []byte{3}},
		{"registration", "issuer-with-query", modelRegistration(&Registration{Kind: RegistrationOIDC, Issuer: "https://a.example?x=1"}).bytes()},
		{"log_record", "update-with-registration", append(bytes.Clone(recUpdate), mustMarshal(t, f.regOIDC)...)},
		{"log_record", "registration-without-registration", recReg[:len(recReg)-1-signatureSize]},
		{"leaf_record", "epoch-zero", modelLeafRecord(&leaf0).bytes()},
		{"epoch_head", "wrong-tag", badTag},
		{"epoch_head", "genesis-with-updates", modelEpochHead(&genesisCount).bytes()},
		{"epoch_head", "trailing-byte", plus(head, 0)},
		{"bundle", "missing-record", modelBundle(&bundleShort).bytes()},
		{"bundle", "records-swapped", modelBundle(&bundleSwapped).bytes()},
		{"bundle", "checkpoint-without-newline", modelBundle(&Bundle{Head: f.bundleGenesis.Head, Checkpoint: flipLast(f.bundleGenesis.Checkpoint)}).bytes()},
		{"bundle", "checkpoint-of-other-epoch", modelBundle(&Bundle{Head: f.bundleGenesis.Head, Checkpoint: f.bundleOne.Checkpoint}).bytes()},
	}
	var out []invalidVector
	for _, b := range list {
		_, err := codecs[b.format].parse(b.enc)
		if err == nil {
			t.Fatalf("invalid vector %s/%s parses", b.format, b.name)
		}
		out = append(out, invalidVector{b.format, b.name, hex.EncodeToString(b.enc), err.Error()})
	}
	return out
}

func clonePolicy(p *Policy) *Policy {
	c := &Policy{Threshold: p.Threshold, Keys: append([]ed25519.PublicKey(nil), p.Keys...)}
	for _, s := range p.Subpolicies {
		c.Subpolicies = append(c.Subpolicies, clonePolicy(s))
	}
	return c
}

func reversedKeys(p *Policy) *Policy {
	c := clonePolicy(p)
	for i, j := 0, len(c.Keys)-1; i < j; i, j = i+1, j-1 {
		c.Keys[i], c.Keys[j] = c.Keys[j], c.Keys[i]
	}
	return c
}

func buildVectors(t testing.TB) *vectorFile {
	f := newFixtures(t)
	vf := &vectorFile{
		Comment: []string{
			"Conifer format test vectors (see SPEC.md). Generated by",
			"`go test ./format -run TestVectors -update`; do not edit by hand.",
			"Keys: seed = SHA-256(\"conifer/vectors/key/\" || decimal index), Ed25519 (RFC 8032).",
			"Entry indexes stand in for VRF outputs: SHA-256(\"index alice\"), SHA-256(\"index bob\").",
			"Tree roots are SHA-256(\"tree root N\") placeholders; the checkpoint is a real C2SP",
			"signed note over the RFC 6962 log of the encoded heads, by key 10 named after the realm.",
			"Each valid vector's fields concatenate to its encoding.",
		},
		ProfileOpening: hex.EncodeToString(f.opening[:]),
	}
	for _, i := range []int{0, 1, 2, 3, 4, 5, 6, registrarKey, notaryKeySeed} {
		id := KeyIDOf(testPub(i))
		vf.Keys = append(vf.Keys, keyVector{
			Name:   fmt.Sprintf("k%d", i),
			Seed:   hex.EncodeToString(testSeed(i)),
			Public: hex.EncodeToString(testPub(i)),
			KeyID:  hex.EncodeToString(id[:]),
		})
	}
	for _, nv := range f.values(t) {
		enc := mustMarshal(t, nv.value.(interface{ Marshal() ([]byte, error) }))
		m := model(t, nv.value)
		if !bytes.Equal(m.bytes(), enc) {
			t.Fatalf("%s/%s: model encoding differs from Marshal\nmodel   %x\nmarshal %x", nv.format, nv.name, m.bytes(), enc)
		}
		v := validVector{Format: nv.format, Name: nv.name, Encoding: hex.EncodeToString(enc),
			Hashes: vectorHashes(nv.format, enc, f.opening)}
		for _, s := range m {
			v.Fields = append(v.Fields, fieldVector{s.name, hex.EncodeToString(s.b)})
		}
		vf.Valid = append(vf.Valid, v)
	}
	vf.Invalid = f.invalidInputs(t)
	return vf
}

// specExamples are the vectors SPEC.md shows annotated, between
// "<!-- example FORMAT/NAME -->" and "<!-- end example -->" lines.
var specExamples = []string{
	"profile/alice", "policy/nested", "entry/update", "signed_entry/update",
	"registration/registrar", "registration/oidc", "log_record/update",
	"leaf_record/next", "epoch_head/epoch-1", "bundle/genesis", "bundle_chunk/epoch-1-part-1",
}

var exampleRE = regexp.MustCompile("(?s)<!-- example ([a-z_]+/[a-z0-9-]+) -->\n.*?<!-- end example -->")

func renderExample(v validVector) string {
	var s segs
	for _, fld := range v.Fields {
		b, _ := hex.DecodeString(fld.Hex)
		s = append(s, seg{fld.Field, b})
	}
	var hashes strings.Builder
	for _, k := range slices.Sorted(maps.Keys(v.Hashes)) {
		fmt.Fprintf(&hashes, "%s = %s\n", k, v.Hashes[k])
	}
	if hashes.Len() > 0 {
		hashes.WriteString("```\n")
		return "<!-- example " + v.Format + "/" + v.Name + " -->\n```\n" + s.annotate() + "```\nDerived values:\n```\n" + hashes.String() + "<!-- end example -->"
	}
	return "<!-- example " + v.Format + "/" + v.Name + " -->\n```\n" + s.annotate() + "```\n<!-- end example -->"
}

// TestVectors checks that the code reproduces testdata/vectors.json and the
// annotated examples in SPEC.md byte for byte (or rewrites both with
// -update).
func TestVectors(t *testing.T) {
	vf := buildVectors(t)
	out, err := json.MarshalIndent(vf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')

	byName := map[string]validVector{}
	for _, v := range vf.Valid {
		byName[v.Format+"/"+v.Name] = v
	}
	spec, specErr := os.ReadFile(specPath)
	newSpec := spec
	if specErr == nil {
		newSpec = exampleRE.ReplaceAllFunc(spec, func(m []byte) []byte {
			name := string(exampleRE.FindSubmatch(m)[1])
			v, ok := byName[name]
			if !ok {
				t.Errorf("SPEC.md shows unknown vector %s", name)
				return m
			}
			return []byte(renderExample(v))
		})
	}

	if *update {
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		if specErr == nil && !bytes.Equal(spec, newSpec) {
			if err := os.WriteFile(specPath, newSpec, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %s (%d valid, %d invalid vectors)", vectorsPath, len(vf.Valid), len(vf.Invalid))
		return
	}
	old, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (run: go test ./format -run TestVectors -update)", err)
	}
	if !bytes.Equal(old, out) {
		t.Errorf("%s is out of date with the code (run: go test ./format -run TestVectors -update)", vectorsPath)
	}
	if specErr != nil {
		t.Fatalf("couldn't read SPEC.md: %v", specErr)
	}
	if !bytes.Equal(spec, newSpec) {
		t.Errorf("SPEC.md examples are out of date (run: go test ./format -run TestVectors -update)")
	}
	for _, name := range specExamples {
		if !strings.Contains(string(spec), "<!-- example "+name+" -->") {
			t.Errorf("SPEC.md lacks the example %s", name)
		}
	}
}

// TestVectorFile checks the checked-in vectors against the parsers directly,
// independently of how they were generated: each valid encoding parses,
// re-encodes to itself, matches its fields and hashes; each invalid one
// fails with the recorded error.
func TestVectorFile(t *testing.T) {
	vf := readVectors(t)
	opening, err := hex.DecodeString(vf.ProfileOpening)
	if err != nil || len(opening) != OpeningSize {
		t.Fatalf("bad opening %q", vf.ProfileOpening)
	}
	for _, k := range vf.Keys {
		seed, _ := hex.DecodeString(k.Seed)
		want := sha256.Sum256([]byte("conifer/vectors/key/" + strings.TrimPrefix(k.Name, "k")))
		if !bytes.Equal(seed, want[:]) {
			t.Errorf("key %s: seed is not the documented derivation", k.Name)
		}
	}
	for _, v := range vf.Valid {
		enc, err := hex.DecodeString(v.Encoding)
		if err != nil {
			t.Fatal(err)
		}
		c, ok := codecs[v.Format]
		if !ok {
			t.Fatalf("unknown format %q", v.Format)
		}
		if c.checkCanonical(t, enc) == nil {
			_, err := c.parse(enc)
			t.Errorf("%s/%s: does not parse: %v", v.Format, v.Name, err)
			continue
		}
		var cat []byte
		for _, fld := range v.Fields {
			b, _ := hex.DecodeString(fld.Hex)
			cat = append(cat, b...)
		}
		if !bytes.Equal(cat, enc) {
			t.Errorf("%s/%s: fields do not concatenate to the encoding", v.Format, v.Name)
		}
		got := vectorHashes(v.Format, enc, [OpeningSize]byte(opening))
		if fmt.Sprint(got) != fmt.Sprint(v.Hashes) {
			t.Errorf("%s/%s: hashes %v, file says %v", v.Format, v.Name, got, v.Hashes)
		}
	}
	for _, v := range vf.Invalid {
		enc, _ := hex.DecodeString(v.Encoding)
		_, err := codecs[v.Format].parse(enc)
		if err == nil || err.Error() != v.Error {
			t.Errorf("%s/%s: error %v, want %q", v.Format, v.Name, err, v.Error)
		}
	}
}

func readVectors(t *testing.T) *vectorFile {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(b, &vf); err != nil {
		t.Fatal(err)
	}
	if len(vf.Valid) == 0 || len(vf.Invalid) == 0 {
		t.Fatal("empty vector file")
	}
	return &vf
}

// TestVectorBitFlips flips every bit of every valid vector: the result must
// fail to parse or be a different canonical value (a different hash where
// the format has one).
func TestVectorBitFlips(t *testing.T) {
	vf := readVectors(t)
	for _, v := range vf.Valid {
		enc, _ := hex.DecodeString(v.Encoding)
		c := codecs[v.Format]
		if testing.Short() && len(enc) > 2048 {
			continue
		}
		accepted := 0
		for bit := 0; bit < 8*len(enc); bit++ {
			b := bytes.Clone(enc)
			b[bit/8] ^= 1 << (bit % 8)
			if c.checkCanonical(t, b) == nil {
				continue
			}
			accepted++
			if c.hash != nil && c.hash(b) == c.hash(enc) {
				t.Fatalf("%s/%s: bit %d flipped parses to the same hash", v.Format, v.Name, bit)
			}
		}
		t.Logf("%s/%s: %d of %d flips still parse (as different values)", v.Format, v.Name, accepted, 8*len(enc))
	}
}

// TestDocExample checks the worked example in the package doc against the
// vectors: the entry's bytes, hash and OIDC nonce.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(doc), "//\t", "")
	for _, v := range readVectors(t).Valid {
		if v.Format != "entry" || v.Name != "registration" {
			continue
		}
		for _, want := range []string{v.Hashes["entry_hash"], v.Hashes["oidc_nonce"], "ce9688cb74f5444dc0448a8f20586d78\n841fec7845b1084fa20fb6e1796d6c4b"} {
			if !strings.Contains(text, want) {
				t.Errorf("doc.go example lacks %s", want)
			}
		}
		for _, f := range v.Fields {
			if len(f.Hex) <= 32 && !strings.Contains(f.Hex, "000000000000") && !strings.Contains(text, f.Hex) {
				t.Errorf("doc.go example lacks field %s = %s", f.Field, f.Hex)
			}
		}
		if !strings.Contains(v.Encoding, "ce9688cb74f5444dc0448a8f20586d78841fec7845b1084fa20fb6e1796d6c4b") {
			t.Error("the registration entry's commitment changed; update doc.go")
		}
		return
	}
	t.Fatal("no entry/registration vector")
}
