package client_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/client"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/vrf"
	"golang.org/x/mod/sumdb/note"
)

// fixture is a realm with three verifiers (quorum 2) where alice is
// registered and updated twice, bob never registered, and carol registered
// then erased; with the honest answers for each at the newest epoch.
type fixture struct {
	*env
	pinned            *client.Pinned
	alice, bob, carol *api.LookupProof
	aliceV1           *api.LookupProof // alice at the epoch of her registration
	aliceKeyEpoch     uint64
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	e := newEnv(t, envOpts{verifiers: 3, quorum: 2, seed: 1})
	f := &fixture{env: e}
	r1 := e.register("alice@example.com", profileOf(t, "pgp", "alice-pgp-1"))
	f.aliceKeyEpoch = r1.Epoch
	e.register("carol@example.com", profileOf(t, "ssh", "carol-ssh"))
	e.change("alice@example.com", client.Change{Profile: profileOf(t, "pgp", "alice-pgp-2", "ssh", "alice-ssh")}, e.device)
	e.change("carol@example.com", client.Change{Tombstone: true}, e.device)
	e.change("alice@example.com", client.Change{Profile: profileOf(t, "pgp", "alice-pgp-3")}, e.device)
	var err error
	if f.pinned, err = client.NewPinned(e.cfg, 2); err != nil {
		t.Fatal(err)
	}
	get := func(user string) *api.LookupProof {
		p, err := e.srv.Lookup(user, 2)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	f.alice, f.bob, f.carol = get("alice@example.com"), get("bob@example.com"), get("carol@example.com")
	if f.aliceV1, err = e.srv.LookupAt("alice@example.com", r1.Epoch); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) verify(user string, p *api.LookupProof) (*client.Result, error) {
	return f.pinned.VerifyLookup(user, p, f.clock.Now())
}

// checkErr fails unless err is a *client.Error for want (with evidence
// holding the answer) — or nil if want is nil.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("rejected: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	if !errors.Is(err, client.ErrVerification) {
		t.Errorf("error %v does not wrap ErrVerification", err)
	}
	var e *client.Error
	if !errors.As(err, &e) || e.Evidence == nil {
		t.Fatalf("error %v carries no evidence", err)
	}
}

func TestVerifyLookupHonest(t *testing.T) {
	f := newFixture(t)
	r, err := f.verify("alice@example.com", f.alice)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Present || r.Tombstone() || r.Version() != 3 || r.Epoch != f.alice.Epoch {
		t.Errorf("alice: present %v tombstone %v version %d epoch %d", r.Present, r.Tombstone(), r.Version(), r.Epoch)
	}
	if k, _ := r.Key("pgp"); string(k) != "alice-pgp-3" {
		t.Errorf("alice's pgp key = %q", k)
	}
	if _, ok := r.Key("ssh"); ok {
		t.Error("alice's removed ssh key is still there")
	}
	if len(r.Checkpoint.Cosigners) != 3 || r.Checkpoint.Size != f.alice.Epoch+1 {
		t.Errorf("checkpoint: %d cosigners, size %d", len(r.Checkpoint.Cosigners), r.Checkpoint.Size)
	}
	if want, _ := f.srv.Index("alice@example.com"); r.Index != want {
		t.Error("wrong index")
	}

	r, err = f.verify("bob@example.com", f.bob)
	if err != nil {
		t.Fatal(err)
	}
	if r.Present || r.Version() != 0 || r.Profile != nil || r.Entry != nil {
		t.Errorf("bob: %+v", r)
	}

	r, err = f.verify("carol@example.com", f.carol)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Present || !r.Tombstone() || r.Profile != nil || r.Version() != 2 {
		t.Errorf("carol: present %v tombstone %v version %d", r.Present, r.Tombstone(), r.Version())
	}

	// The package function with the realm's own quorum agrees.
	if _, err := client.VerifyLookup(f.cfg, "alice@example.com", f.alice, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// A historical answer verifies at its epoch, whatever its age.
	f.clock.Advance(24 * time.Hour)
	r, err = f.pinned.VerifyLookupAt("alice@example.com", f.aliceKeyEpoch, f.aliceV1)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := r.Key("pgp"); string(k) != "alice-pgp-1" || r.Version() != 1 {
		t.Errorf("alice at epoch %d: version %d key %q", f.aliceKeyEpoch, r.Version(), k)
	}
	_, err = f.pinned.VerifyLookupAt("alice@example.com", f.aliceKeyEpoch+1, f.aliceV1)
	checkErr(t, err, client.ErrHead)
	_, err = f.verify("alice@example.com", f.alice)
	checkErr(t, err, client.ErrHeadTooOld)
}

// sameResult fails unless two results say the same about the user.
func sameResult(t *testing.T, a, b *client.Result) {
	t.Helper()
	if a.Present != b.Present || a.Epoch != b.Epoch || a.Index != b.Index || a.EntryHash != b.EntryHash ||
		a.LeafRecordHash != b.LeafRecordHash || a.Checkpoint.Hash != b.Checkpoint.Hash {
		t.Fatalf("results differ:\n%+v\n%+v", a, b)
	}
	var pa, pb []byte
	if a.Profile != nil {
		pa, _ = a.Profile.Marshal()
	}
	if b.Profile != nil {
		pb, _ = b.Profile.Marshal()
	}
	if !bytes.Equal(pa, pb) {
		t.Fatal("profiles differ")
	}
}

// outcome is what a mutated answer must lead to: one of errs, or (if
// accept) acceptance with the same result as the honest answer.
type outcome struct {
	errs   []error
	accept bool
}

func one(err error) outcome { return outcome{errs: []error{err}} }

// byteFields are the answer's byte fields, with the outcome of a mutation
// of each as a function of the mutated answer (a simple model of the
// checks).
func byteFields(head *format.EpochHead, honest *api.LookupProof) []struct {
	name string
	get  func(p *api.LookupProof) *[]byte
	want func(p *api.LookupProof, pos int) outcome
} {
	type field = struct {
		name string
		get  func(p *api.LookupProof) *[]byte
		want func(p *api.LookupProof, pos int) outcome
	}
	fields := []field{
		{"checkpoint", func(p *api.LookupProof) *[]byte { return &p.Checkpoint }, func(p *api.LookupProof, pos int) outcome {
			// The text and the keyserver's signature line are covered by
			// the keyserver's signature; a co-signature line may become a
			// signature by an unknown key, which is ignored (the other two
			// still make the quorum).
			firstSig := bytes.Index(honest.Checkpoint, []byte("\n\n")) + 2
			cosigs := firstSig + bytes.IndexByte(honest.Checkpoint[firstSig:], '\n') + 1
			if pos < cosigs {
				return one(client.ErrCheckpointSignature)
			}
			return outcome{errs: []error{client.ErrCosignature, client.ErrCheckpointSignature}, accept: true}
		}},
		{"head", func(p *api.LookupProof) *[]byte { return &p.Head }, func(*api.LookupProof, int) outcome { return one(client.ErrHeadInclusion) }},
		{"vrf_proof", func(p *api.LookupProof) *[]byte { return &p.VRFProof }, func(*api.LookupProof, int) outcome { return one(client.ErrVRF) }},
		{"index", func(p *api.LookupProof) *[]byte { return &p.Index }, func(*api.LookupProof, int) outcome { return one(client.ErrVRF) }},
		{"tree_proof", func(p *api.LookupProof) *[]byte { return &p.TreeProof }, func(*api.LookupProof, int) outcome { return one(client.ErrTreeProof) }},
		{"leaf_record", func(p *api.LookupProof) *[]byte { return &p.LeafRecord }, func(p *api.LookupProof, _ int) outcome {
			if len(p.LeafRecord) == 0 {
				return one(client.ErrTreeProof) // an absence claim against an inclusion proof
			}
			l, err := format.ParseLeafRecord(p.LeafRecord)
			if err != nil || l.Epoch > head.Epoch {
				return one(client.ErrLeafRecord)
			}
			return one(client.ErrTreeProof)
		}},
		{"signed_entry", func(p *api.LookupProof) *[]byte { return &p.SignedEntry }, func(p *api.LookupProof, _ int) outcome {
			se, _, err := format.ParseSignedEntry(p.SignedEntry)
			if err != nil {
				return one(client.ErrEntry)
			}
			orig, _, _ := format.ParseSignedEntry(honest.SignedEntry)
			if bytes.Equal(se.Entry, orig.Entry) {
				// Only the signatures changed: a lookup does not check
				// them and the result carries none.
				return outcome{accept: true}
			}
			return one(client.ErrEntry)
		}},
		{"profile", func(p *api.LookupProof) *[]byte { return &p.Profile }, func(*api.LookupProof, int) outcome { return one(client.ErrProfileCommitment) }},
		{"opening", func(p *api.LookupProof) *[]byte { return &p.Opening }, func(*api.LookupProof, int) outcome { return one(client.ErrProfileCommitment) }},
	}
	for i := range honest.HeadProof {
		fields = append(fields, field{fmt.Sprintf("head_proof[%d]", i), func(p *api.LookupProof) *[]byte { return &p.HeadProof[i] },
			func(*api.LookupProof, int) outcome { return one(client.ErrHeadInclusion) }})
	}
	return fields
}

func checkOutcome(t *testing.T, what string, res *client.Result, err error, want outcome, honest *client.Result) {
	t.Helper()
	if err == nil {
		if !want.accept {
			t.Fatalf("%s: accepted, want one of %v", what, want.errs)
		}
		sameResult(t, res, honest)
		return
	}
	for _, w := range want.errs {
		if errors.Is(err, w) {
			var e *client.Error
			if !errors.As(err, &e) || e.Evidence == nil || e.Evidence.Lookup == nil {
				t.Fatalf("%s: %v carries no evidence", what, err)
			}
			return
		}
	}
	t.Fatalf("%s: error %v, want one of %v (accept: %v)", what, err, want.errs, want.accept)
}

// TestVerifyLookupBitFlips flips bits in every byte field of honest answers
// (every bit of alice's answer; one bit per byte in -short mode and for
// the others) and checks each flip leads to the modelled error, or to the
// same verified result where the bits are not covered by anything the
// result depends on.
func TestVerifyLookupBitFlips(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		user  string
		proof *api.LookupProof
		all   bool
	}{
		{"alice@example.com", f.alice, !testing.Short()},
		{"bob@example.com", f.bob, false},
		{"carol@example.com", f.carol, false},
	} {
		t.Run(strings.Split(tc.user, "@")[0], func(t *testing.T) {
			honest, err := f.verify(tc.user, tc.proof)
			if err != nil {
				t.Fatal(err)
			}
			flips := 0
			for _, fd := range byteFields(honest.Head, tc.proof) {
				orig := *fd.get(tc.proof)
				for pos := range orig {
					bitsToFlip := []int{pos % 8}
					if tc.all {
						bitsToFlip = []int{0, 1, 2, 3, 4, 5, 6, 7}
					}
					for _, bit := range bitsToFlip {
						p := cloneProof(tc.proof)
						(*fd.get(p))[pos] ^= 1 << bit
						res, err := f.verify(tc.user, p)
						checkOutcome(t, fmt.Sprintf("%s byte %d bit %d", fd.name, pos, bit), res, err, fd.want(p, pos), honest)
						flips++
					}
				}
				// Truncated and extended fields.
				if len(orig) > 0 {
					p := cloneProof(tc.proof)
					*fd.get(p) = orig[:len(orig)-1]
					res, err := f.verify(tc.user, p)
					checkOutcome(t, fd.name+" truncated", res, err, fd.want(p, len(orig)-1), honest)
				}
				p := cloneProof(tc.proof)
				*fd.get(p) = append(slices.Clone(orig), 0)
				res, err := f.verify(tc.user, p)
				want := fd.want(p, len(orig))
				if len(orig) == 0 {
					// A byte where the honest answer has none.
					want = map[string]outcome{
						"leaf_record":  one(client.ErrLeafRecord),
						"signed_entry": one(client.ErrEntry),
						"profile":      one(client.ErrProfileCommitment),
						"opening":      one(client.ErrProfileCommitment),
					}[fd.name]
				}
				checkOutcome(t, fd.name+" extended", res, err, want, honest)
			}
			t.Logf("%d bit flips", flips)
		})
	}
}

// cosigLines returns the note's text, keyserver line and co-signature lines.
func splitNote(t *testing.T, n []byte) (text string, logLine string, cosigs []string) {
	t.Helper()
	i := bytes.Index(n, []byte("\n\n"))
	text = string(n[:i+1])
	lines := strings.SplitAfter(string(n[i+2:]), "\n")
	lines = lines[:len(lines)-1]
	return text, lines[0], lines[1:]
}

func joinNote(text, logLine string, cosigs ...string) []byte {
	return []byte(text + "\n" + logLine + strings.Join(cosigs, ""))
}

// rawSigner is a note.Signer over a raw Ed25519 key, which (unlike
// checkpoint.LogSigner) signs anything: a compromised keyserver key.
type rawSigner struct {
	name string
	key  ed25519.PrivateKey
}

func (s rawSigner) Name() string { return s.name }
func (s rawSigner) KeyHash() uint32 {
	return checkpoint.KeyHash(s.name, checkpoint.AlgEd25519, s.key.Public().(ed25519.PublicKey))
}
func (s rawSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// flipSigLine flips a bit of the signature bytes of a note signature line
// (after the key ID, so the line still names the same key).
func flipSigLine(t *testing.T, line string, at int) string {
	t.Helper()
	sp := strings.LastIndexByte(line, ' ')
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(line[sp+1:], "\n"))
	if err != nil {
		t.Fatal(err)
	}
	raw[at] ^= 1
	return line[:sp+1] + base64.StdEncoding.EncodeToString(raw) + "\n"
}

func TestVerifyLookupTampered(t *testing.T) {
	f := newFixture(t)
	realmName := f.cfg.Realm
	text, logLine, cosigs := splitNote(t, f.alice.Checkpoint)
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	prev, err := f.srv.LookupAt("alice@example.com", f.alice.Epoch-1)
	if err != nil {
		t.Fatal(err)
	}
	_, _, prevCosigs := splitNote(t, prev.Checkpoint)
	otherProfile, _ := profileOf(t, "pgp", "mallory-pgp").Marshal()

	// A cosigner not in the realm config, with a valid signature.
	strangerSigner, _ := checkpoint.NewKeySigner(otherKey)
	stranger, _ := checkpoint.NewCosigner("stranger.example/v1", strangerSigner, f.clock.Now)
	strangerNote, err := note.Sign(&note.Note{Text: text}, stranger)
	if err != nil {
		t.Fatal(err)
	}
	_, strangerLine, _ := splitNote(t, strangerNote)
	signWith := func(s note.Signer, txt string) []byte {
		b, err := note.Sign(&note.Note{Text: txt}, s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	otherVRF, _ := vrf.NewPrivateKey(bytes.Repeat([]byte{9}, 32))
	alpha, _ := vrf.Input(realmName, "alice@example.com")
	otherBeta, otherVRFProof := otherVRF.Prove(alpha)
	otherIndex := vrf.Index(otherBeta)

	cases := []struct {
		name   string
		user   string
		base   *api.LookupProof
		mutate func(p *api.LookupProof)
		clock  time.Duration
		want   error
	}{
		{"honest", "alice@example.com", f.alice, func(*api.LookupProof) {}, 0, nil},
		{"wrong realm", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Realm = "other.example/conifer" }, 0, client.ErrWrongRealm},
		{"wrong user", "mallory@example.com", f.alice, func(*api.LookupProof) {}, 0, client.ErrWrongUser},
		{"relabelled answer of another user", "mallory@example.com", f.alice, func(p *api.LookupProof) { p.UserID = "mallory@example.com" }, 0, client.ErrVRF},
		{"checkpoint signed by another key", "alice@example.com", f.alice, func(p *api.LookupProof) {
			_, _, cs := splitNote(t, p.Checkpoint)
			_, l, _ := splitNote(t, signWith(rawSigner{realmName, otherKey}, text))
			p.Checkpoint = joinNote(text, l, cs...)
		}, 0, client.ErrCheckpointSignature},
		{"forged keyserver signature", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = joinNote(text, flipSigLine(t, logLine, 10), cosigs...)
		}, 0, client.ErrCheckpointSignature},
		{"no keyserver signature", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = []byte(text + "\n" + strings.Join(cosigs, ""))
		}, 0, client.ErrCheckpointSignature},
		{"checkpoint of another origin signed by the keyserver key", "alice@example.com", f.alice, func(p *api.LookupProof) {
			other := strings.Replace(text, realmName, "other.example/conifer", 1)
			p.Checkpoint = signWith(rawSigner{realmName, f.keys.Log}, other)
		}, 0, client.ErrWrongRealm},
		{"checkpoint with an extension line", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = signWith(rawSigner{realmName, f.keys.Log}, text+"extension\n")
		}, 0, client.ErrCheckpointSignature},
		{"missing co-signatures", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = joinNote(text, logLine, cosigs[0])
		}, 0, client.ErrVerifierQuorum},
		{"forged co-signature", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = joinNote(text, logLine, cosigs[0], flipSigLine(t, cosigs[1], 20), cosigs[2])
		}, 0, client.ErrCosignature},
		{"forged co-signature timestamp", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = joinNote(text, logLine, flipSigLine(t, cosigs[0], 11), cosigs[1], cosigs[2])
		}, 0, client.ErrCosignature},
		{"co-signature of another checkpoint", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = joinNote(text, logLine, prevCosigs[0], cosigs[1])
		}, 0, client.ErrCosignature},
		{"co-signatures by an unpinned verifier", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = joinNote(text, logLine, cosigs[0], strangerLine)
		}, 0, client.ErrVerifierQuorum},
		{"duplicate co-signature", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = joinNote(text, logLine, cosigs[0], cosigs[0])
		}, 0, client.ErrCheckpointSignature},
		{"unpinned co-signature beside a quorum", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.Checkpoint = joinNote(text, logLine, cosigs[0], cosigs[1], strangerLine)
		}, 0, nil},
		{"checkpoint size", "alice@example.com", f.alice, func(p *api.LookupProof) { p.CheckpointSize++ }, 0, client.ErrHeadInclusion},
		{"epoch beyond the checkpoint", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Epoch = p.CheckpointSize }, 0, client.ErrHeadInclusion},
		{"epoch off by one", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Epoch-- }, 0, client.ErrHeadInclusion},
		{"head proof missing", "alice@example.com", f.alice, func(p *api.LookupProof) { p.HeadProof = p.HeadProof[1:] }, 0, client.ErrHeadInclusion},
		{"head proof hash too short", "alice@example.com", f.alice, func(p *api.LookupProof) { p.HeadProof[0] = p.HeadProof[0][:31] }, 0, client.ErrHeadInclusion},
		{"older head with its own proof", "alice@example.com", f.alice, func(p *api.LookupProof) {
			hr, err := f.srv.Head(p.Epoch-1, p.CheckpointSize)
			if err != nil {
				t.Fatal(err)
			}
			p.Epoch, p.Head, p.HeadProof = hr.Epoch, hr.Head, hr.Proof
		}, 0, client.ErrLeafRecord},
		{"older head with its own proof and an older leaf record", "alice@example.com", f.alice, func(p *api.LookupProof) {
			hr, err := f.srv.Head(f.aliceV1.Epoch, p.CheckpointSize)
			if err != nil {
				t.Fatal(err)
			}
			p.Epoch, p.Head, p.HeadProof = hr.Epoch, hr.Head, hr.Proof
			p.LeafRecord = f.aliceV1.LeafRecord
			p.TreeProof = f.aliceV1.TreeProof // a proof against the older root
			p.SignedEntry, p.Profile, p.Opening = f.aliceV1.SignedEntry, f.aliceV1.Profile, f.aliceV1.Opening
		}, 0, nil}, // an old answer bound to a newer checkpoint is true (and fresh enough here)
		{"older head with the newer tree proof", "alice@example.com", f.alice, func(p *api.LookupProof) {
			hr, err := f.srv.Head(f.aliceV1.Epoch, p.CheckpointSize)
			if err != nil {
				t.Fatal(err)
			}
			p.Epoch, p.Head, p.HeadProof = hr.Epoch, hr.Head, hr.Proof
			p.LeafRecord = f.aliceV1.LeafRecord
		}, 0, client.ErrTreeProof},
		{"stale head", "alice@example.com", f.alice, nil, f.cfg.MaxHeadAge.Duration + time.Millisecond, client.ErrHeadTooOld},
		{"oldest fresh head", "alice@example.com", f.alice, nil, f.cfg.MaxHeadAge.Duration, nil},
		{"head from the future", "alice@example.com", f.alice, nil, -client.MaxClockSkew - time.Millisecond, client.ErrHeadInFuture},
		{"head at the skew limit", "alice@example.com", f.alice, nil, -client.MaxClockSkew, nil},
		{"VRF proof of another user", "alice@example.com", f.alice, func(p *api.LookupProof) { p.VRFProof = f.bob.VRFProof }, 0, client.ErrVRF},
		{"index of another user", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Index = f.bob.Index }, 0, client.ErrVRF},
		{"VRF proof and index under another VRF key", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.VRFProof, p.Index = otherVRFProof[:], otherIndex[:]
		}, 0, client.ErrVRF},
		{"VRF proof truncated", "alice@example.com", f.alice, func(p *api.LookupProof) { p.VRFProof = p.VRFProof[:79] }, 0, client.ErrVRF},
		{"index truncated", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Index = p.Index[:31] }, 0, client.ErrVRF},
		{"tree proof of another index", "alice@example.com", f.alice, func(p *api.LookupProof) { p.TreeProof = f.carol.TreeProof }, 0, client.ErrTreeProof},
		{"tree proof missing", "alice@example.com", f.alice, func(p *api.LookupProof) { p.TreeProof = nil }, 0, client.ErrTreeProof},
		{"absence claimed for a present user", "alice@example.com", f.alice, func(p *api.LookupProof) {
			p.LeafRecord, p.SignedEntry, p.Profile, p.Opening = nil, nil, nil, nil
		}, 0, client.ErrTreeProof},
		{"presence claimed for an absent user", "bob@example.com", f.bob, func(p *api.LookupProof) {
			p.LeafRecord, p.SignedEntry, p.Profile, p.Opening = f.alice.LeafRecord, f.alice.SignedEntry, f.alice.Profile, f.alice.Opening
		}, 0, client.ErrTreeProof},
		{"leaf record of an older version", "alice@example.com", f.alice, func(p *api.LookupProof) { p.LeafRecord = f.aliceV1.LeafRecord }, 0, client.ErrTreeProof},
		{"leaf record of another user", "alice@example.com", f.alice, func(p *api.LookupProof) { p.LeafRecord = f.carol.LeafRecord }, 0, client.ErrTreeProof},
		{"leaf record malformed", "alice@example.com", f.alice, func(p *api.LookupProof) { p.LeafRecord = p.LeafRecord[:71] }, 0, client.ErrLeafRecord},
		{"signed entry missing", "alice@example.com", f.alice, func(p *api.LookupProof) { p.SignedEntry = nil }, 0, client.ErrEntry},
		{"signed entry of an older version", "alice@example.com", f.alice, func(p *api.LookupProof) { p.SignedEntry = f.aliceV1.SignedEntry }, 0, client.ErrEntry},
		{"signed entry of another user", "alice@example.com", f.alice, func(p *api.LookupProof) { p.SignedEntry = f.carol.SignedEntry }, 0, client.ErrEntry},
		{"signed entry for an absent user", "bob@example.com", f.bob, func(p *api.LookupProof) { p.SignedEntry = f.alice.SignedEntry }, 0, client.ErrEntry},
		{"profile for an absent user", "bob@example.com", f.bob, func(p *api.LookupProof) { p.Profile, p.Opening = f.alice.Profile, f.alice.Opening }, 0, client.ErrProfileCommitment},
		{"opening alone for an absent user", "bob@example.com", f.bob, func(p *api.LookupProof) { p.Opening = f.alice.Opening }, 0, client.ErrProfileCommitment},
		{"another profile", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Profile = otherProfile }, 0, client.ErrProfileCommitment},
		{"older profile and opening", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Profile, p.Opening = f.aliceV1.Profile, f.aliceV1.Opening }, 0, client.ErrProfileCommitment},
		{"another opening", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Opening = f.aliceV1.Opening }, 0, client.ErrProfileCommitment},
		{"opening missing", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Opening = nil }, 0, client.ErrProfileCommitment},
		{"profile missing", "alice@example.com", f.alice, func(p *api.LookupProof) { p.Profile = nil }, 0, client.ErrProfileCommitment},
		{"profile for a tombstone", "carol@example.com", f.carol, func(p *api.LookupProof) { p.Profile, p.Opening = f.alice.Profile, f.alice.Opening }, 0, client.ErrProfileCommitment},
		{"swapped answers", "carol@example.com", f.alice, func(*api.LookupProof) {}, 0, client.ErrWrongUser},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := cloneProof(tc.base)
			if tc.mutate != nil {
				tc.mutate(p)
			}
			head, err := format.ParseEpochHead(tc.base.Head)
			if err != nil {
				t.Fatal(err)
			}
			now := time.UnixMilli(int64(head.Time)).Add(tc.clock)
			_, err = f.pinned.VerifyLookup(tc.user, p, now)
			checkErr(t, err, tc.want)
		})
	}
}

// TestVerifyLookupForged covers the checks that only a lying keyserver
// (signing a tree and heads of its choice, with colluding verifiers) can
// reach: the forger signs everything validly, so each answer fails only
// on what is wrong in it.
func TestVerifyLookupForged(t *testing.T) {
	f := newFixture(t)
	fg := &forger{t: t, keys: f.keys, cfg: f.cfg, now: f.clock.Now()}
	alice := "alice@example.com"
	ai, _ := f.srv.Index(alice)
	bi, _ := f.srv.Index("bob@example.com")
	pol, _ := client.KeyPolicy(1, pub(f.device))
	opening := [16]byte{1, 2, 3}
	prof, _ := profileOf(t, "pgp", "forged").Marshal()

	// present builds a forged answer for alice whose entry is e, whose
	// leaf record has epoch leafEpoch, and with the given profile bytes.
	present := func(e *format.Entry, leafEpoch uint64, profile []byte, mut func(*forgery)) *api.LookupProof {
		se := signedEntry(t, e, f.device)
		parsed, _, err := format.ParseSignedEntry(se)
		if err != nil {
			t.Fatal(err)
		}
		leaf := leafRecord(t, &format.LeafRecord{EntryHash: format.EntryHash(parsed.Entry), Epoch: leafEpoch})
		fy := forgery{
			userID: alice, leaves: map[[32]byte][]byte{ai: leaf, bi: leafRecord(t, &format.LeafRecord{Epoch: 1})},
			leaf: leaf, signedEntry: se,
		}
		if !e.Tombstone {
			fy.profile, fy.opening = profile, opening[:]
		}
		if mut != nil {
			mut(&fy)
		}
		return fg.forge(fy)
	}
	entry := func(mut func(e *format.Entry)) *format.Entry {
		e := &format.Entry{Realm: f.cfg.Realm, Index: ai, Version: 1, Policy: *pol, Commitment: format.CommitProfile(opening, prof)}
		if mut != nil {
			mut(e)
		}
		return e
	}
	bad := []byte{0xff}
	cases := []struct {
		name  string
		proof *api.LookupProof
		want  error
	}{
		{"consistent forgery", present(entry(nil), 1, prof, nil), nil},
		{"absent in a forged tree", fg.forge(forgery{userID: alice, leaves: map[[32]byte][]byte{bi: leafRecord(t, &format.LeafRecord{Epoch: 1})}}), nil},
		{"head of another realm", present(entry(nil), 1, prof, func(fy *forgery) {
			fy.mutateHead = func(h *format.EpochHead) { h.Realm = "other.example" }
		}), client.ErrHead},
		{"head of another epoch", present(entry(nil), 1, prof, func(fy *forgery) {
			fy.mutateHead = func(h *format.EpochHead) { h.Epoch = 5 }
		}), client.ErrHead},
		{"malformed head", present(entry(nil), 1, prof, func(fy *forgery) { fy.headBytes = []byte("not a head") }), client.ErrHead},
		{"head time beyond int64", present(entry(nil), 1, prof, func(fy *forgery) {
			fy.mutateHead = func(h *format.EpochHead) { h.Time = 1 << 63 }
		}), client.ErrHeadInFuture},
		{"leaf record after the head", present(entry(nil), 2, prof, nil), client.ErrLeafRecord},
		{"entry of another index", present(entry(func(e *format.Entry) { e.Index = bi }), 1, prof, nil), client.ErrEntry},
		{"entry of another realm", present(entry(func(e *format.Entry) { e.Realm = "other.example" }), 1, prof, nil), client.ErrEntry},
		{"commitment to a malformed profile", present(entry(func(e *format.Entry) { e.Commitment = format.CommitProfile(opening, bad) }), 1, bad, nil), client.ErrProfileCommitment},
		{"tombstone", present(entry(func(e *format.Entry) { e.Tombstone, e.Commitment = true, [32]byte{} }), 1, nil, nil), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.pinned.VerifyLookup(alice, tc.proof, f.clock.Now())
			checkErr(t, err, tc.want)
		})
	}
}

func TestNewPinnedRefuses(t *testing.T) {
	e := newEnv(t, envOpts{verifiers: 2, quorum: 1})
	if _, err := client.NewPinned(e.cfg, 0); err == nil {
		t.Error("quorum below the realm's accepted")
	}
	if _, err := client.NewPinned(e.cfg, 3); err == nil {
		t.Error("quorum above the number of verifiers accepted")
	}
	if _, err := client.NewPinned(e.cfg, 2); err != nil {
		t.Errorf("raised quorum refused: %v", err)
	}
	bad := *e.cfg
	bad.LogKey = bad.Verifiers[0] // a cosignature key as the log key
	if _, err := client.NewPinned(&bad, 1); err == nil {
		t.Error("cosignature key as the log key accepted")
	}
	bad = *e.cfg
	bad.Verifiers = []string{e.cfg.Verifiers[0], e.cfg.LogKey}
	if _, err := client.NewPinned(&bad, 1); err == nil {
		t.Error("log key as a verifier accepted")
	}
	bad = *e.cfg
	bad.VRFPublicKey = make([]byte, 32) // a small-order point
	if _, err := client.NewPinned(&bad, 1); err == nil {
		t.Error("small-order VRF key accepted")
	}
	// One public key under two verifier names would count twice.
	vs, _ := checkpoint.NewKeySigner(e.keys.Verifiers[0])
	twin, _ := checkpoint.NewCosigner("twin.example/v1", vs, time.Now)
	bad = *e.cfg
	bad.Verifiers = []string{e.cfg.Verifiers[0], twin.VerifierKey()}
	if _, err := client.NewPinned(&bad, 1); err == nil {
		t.Error("shared verifier public key accepted")
	}
}

// TestVerifyLookupModel runs a pseudo-random sequence of registrations,
// updates and erasures and checks, after each, that every user's honest
// answer verifies and agrees with a plain map of what was done (a
// randomized comparison with a simple model).
func TestVerifyLookupModel(t *testing.T) {
	e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 42})
	p, err := client.NewPinned(e.cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	model := map[string]string{} // user → pgp key ("" = tombstone)
	r := testRand(7)
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	steps := 40
	if testing.Short() {
		steps = 15
	}
	for step := range steps {
		user := users[r.Uint64()%uint64(len(users))]
		key := fmt.Sprintf("key-%d", step)
		cur, err := e.c.Lookup(t.Context(), user)
		if err != nil {
			t.Fatal(err)
		}
		switch v, ok := model[user]; {
		case !ok:
			e.register(user, profileOf(t, "pgp", key))
			model[user] = key
		case v != "" && r.Uint64()%4 == 0:
			e.change(user, client.Change{Tombstone: true}, e.device)
			model[user] = ""
		default:
			_ = cur
			e.change(user, client.Change{Profile: profileOf(t, "pgp", key)}, e.device)
			model[user] = key
		}
		// Every user, registered or not, verifies against the model.
		for _, u := range users {
			proof, err := e.srv.Lookup(u, 1)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.VerifyLookup(u, proof, e.clock.Now())
			if err != nil {
				t.Fatalf("step %d, %s: %v", step, u, err)
			}
			want, ok := model[u]
			got, _ := res.Key("pgp")
			if res.Present != ok || string(got) != want || res.Tombstone() != (ok && want == "") {
				t.Fatalf("step %d, %s: present %v key %q tombstone %v; model %v %q", step, u, res.Present, got, res.Tombstone(), ok, want)
			}
		}
		e.clock.Advance(time.Second)
	}
}

// TestEvidenceJSON checks that evidence survives a JSON round trip.
func TestEvidenceJSON(t *testing.T) {
	f := newFixture(t)
	p := cloneProof(f.alice)
	p.Profile = nil
	_, err := f.verify("alice@example.com", p)
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	b, err := e.Evidence.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var back client.Evidence
	if err := jsonStrict(b, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Lookup.Checkpoint, f.alice.Checkpoint) || back.Lookup.UserID != "alice@example.com" {
		t.Error("evidence lost the answer")
	}
	b2, _ := back.Marshal()
	if !bytes.Equal(b, b2) {
		t.Error("evidence does not round-trip")
	}
}
