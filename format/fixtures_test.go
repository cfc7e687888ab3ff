package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// testSeed returns the seed of test key i: SHA-256("conifer/vectors/key/" || i).
func testSeed(i int) []byte {
	h := sha256.Sum256([]byte("conifer/vectors/key/" + strconv.Itoa(i)))
	return h[:]
}

// testKey returns deterministic test key i.
func testKey(i int) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(testSeed(i)) }

func testPub(i int) ed25519.PublicKey { return testKey(i).Public().(ed25519.PublicKey) }

// fixedBytes returns SHA-256(label): a deterministic stand-in value.
func fixedBytes(label string) [32]byte { return sha256.Sum256([]byte(label)) }

// mustPolicy builds a policy from the given members, normalizes and checks
// it. Members are key numbers (int) or *Policy.
func mustPolicy(t testing.TB, threshold uint16, members ...any) *Policy {
	t.Helper()
	p := &Policy{Threshold: threshold}
	for _, m := range members {
		switch m := m.(type) {
		case int:
			p.Keys = append(p.Keys, testPub(m))
		case *Policy:
			p.Subpolicies = append(p.Subpolicies, m)
		default:
			t.Fatalf("bad member %T", m)
		}
	}
	p.Normalize()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func subPolicy(threshold uint16, keys ...int) *Policy {
	p := &Policy{Threshold: threshold}
	for _, k := range keys {
		p.Keys = append(p.Keys, testPub(k))
	}
	p.Normalize()
	return p
}

func mustMarshal(t testing.TB, m interface{ Marshal() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtures is a small, deterministic history of one realm: two users, an
// update, a tombstone, two epochs. Vectors and tests share it.
type fixtures struct {
	opening       [OpeningSize]byte
	profileEmpty  *Profile
	profileAlice  *Profile
	policyOne     *Policy // 1 of {k0}
	policyNested  *Policy // 2 of {k1, 1 of {k2, k3}}
	policyAll     *Policy // 3 of {k4, k5, k6}
	entryReg      *Entry  // alice v1, registrar
	entryUpdate   *Entry  // alice v2
	entryTomb     *Entry  // alice v3, tombstone
	entryBob      *Entry  // bob v1, OIDC
	signedReg     *SignedEntry
	signedUpdate  *SignedEntry
	signedTomb    *SignedEntry
	signedBob     *SignedEntry
	regRegistrar  *Registration
	regOIDC       *Registration
	recReg        *LogRecord
	recUpdate     *LogRecord
	recTomb       *LogRecord
	recBob        *LogRecord
	leafFirst     *LeafRecord
	leafNext      *LeafRecord
	headGenesis   *EpochHead
	headOne       *EpochHead
	headTwo       *EpochHead
	bundleGenesis *Bundle
	bundleOne     *Bundle
	bundleTwo     *Bundle
}

const (
	fixtureRealm  = "example.com"
	registrarKey  = 9
	notaryKeySeed = 10
)

func newFixtures(t testing.TB) *fixtures {
	t.Helper()
	f := &fixtures{}
	for i := range f.opening {
		f.opening[i] = byte(i)
	}
	f.profileEmpty = &Profile{}
	f.profileAlice = &Profile{}
	if err := f.profileAlice.Set("ssh", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice")); err != nil {
		t.Fatal(err)
	}
	if err := f.profileAlice.Set("pgp", []byte{0x98, 0x33, 0x04, 0x65, 0x01}); err != nil {
		t.Fatal(err)
	}
	f.policyOne = mustPolicy(t, 1, 0)
	f.policyNested = mustPolicy(t, 2, 1, subPolicy(1, 2, 3))
	f.policyAll = mustPolicy(t, 3, 4, 5, 6)

	alice := fixedBytes("index alice")
	bob := fixedBytes("index bob")
	profAlice := mustMarshal(t, f.profileAlice)
	profEmpty := mustMarshal(t, f.profileEmpty)

	f.entryReg = &Entry{Realm: fixtureRealm, Index: alice, Version: 1, Policy: *f.policyOne,
		Commitment: CommitProfile(f.opening, profEmpty)}
	regBytes := mustMarshal(t, f.entryReg)
	f.entryUpdate = &Entry{Realm: fixtureRealm, Index: alice, Version: 2, Prev: EntryHash(regBytes),
		Policy: *f.policyNested, Commitment: CommitProfile(f.opening, profAlice)}
	updBytes := mustMarshal(t, f.entryUpdate)
	f.entryTomb = &Entry{Realm: fixtureRealm, Index: alice, Version: 3, Prev: EntryHash(updBytes),
		Policy: *f.policyNested, Tombstone: true}
	tombBytes := mustMarshal(t, f.entryTomb)
	f.entryBob = &Entry{Realm: fixtureRealm, Index: bob, Version: 1, Policy: *f.policyAll,
		Commitment: CommitProfile(f.opening, profAlice)}
	bobBytes := mustMarshal(t, f.entryBob)

	sign := func(entry []byte, keys ...int) *SignedEntry {
		s := &SignedEntry{Entry: entry}
		for _, k := range keys {
			s.Signatures = append(s.Signatures, SignEntry(testKey(k), EntryHash(entry)))
		}
		SortSignatures(s.Signatures)
		return s
	}
	f.signedReg = sign(regBytes, 0)
	f.signedUpdate = sign(updBytes, 0, 1, 3) // old policy: k0; new: k1 + k3
	f.signedTomb = sign(tombBytes, 1, 2)
	f.signedBob = sign(bobBytes, 4, 5, 6)

	f.regRegistrar = &Registration{Kind: RegistrationRegistrar, Registrar: SignRegistration(testKey(registrarKey), EntryHash(regBytes))}
	f.regOIDC = &Registration{Kind: RegistrationOIDC, Issuer: "https://accounts.google.com"}

	f.recReg = &LogRecord{SignedEntry: *f.signedReg, Registration: f.regRegistrar}
	f.recUpdate = &LogRecord{SignedEntry: *f.signedUpdate}
	f.recTomb = &LogRecord{SignedEntry: *f.signedTomb}
	f.recBob = &LogRecord{SignedEntry: *f.signedBob, Registration: f.regOIDC}

	f.leafFirst = &LeafRecord{EntryHash: EntryHash(regBytes), Epoch: 1}
	f.leafNext = &LeafRecord{EntryHash: EntryHash(tombBytes), Epoch: 2, Prev: LeafRecordHash(mustMarshal(t, f.leafFirst))}

	recs1 := [][]byte{mustMarshal(t, f.recReg), mustMarshal(t, f.recBob)}
	recs2 := [][]byte{mustMarshal(t, f.recUpdate), mustMarshal(t, f.recTomb)}
	f.headGenesis = &EpochHead{Realm: fixtureRealm, Epoch: 0, Time: 1767225600000,
		TreeRoot: fixedBytes("tree root 0"), UpdatesRoot: UpdatesRoot(nil)}
	f.headOne = &EpochHead{Realm: fixtureRealm, Epoch: 1, Time: 1767225660000,
		TreeRoot: fixedBytes("tree root 1"), UpdateCount: 2, UpdatesRoot: UpdatesRoot(recs1)}
	f.headTwo = &EpochHead{Realm: fixtureRealm, Epoch: 2, Time: 1767225720000,
		TreeRoot: fixedBytes("tree root 2"), UpdateCount: 2, UpdatesRoot: UpdatesRoot(recs2)}
	heads := [][]byte{mustMarshal(t, f.headGenesis), mustMarshal(t, f.headOne), mustMarshal(t, f.headTwo)}
	f.bundleGenesis = &Bundle{Head: heads[0], Checkpoint: testCheckpoint(t, heads[:1])}
	f.bundleOne = &Bundle{Head: heads[1], Checkpoint: testCheckpoint(t, heads[:2]), Records: recs1}
	f.bundleTwo = &Bundle{Head: heads[2], Checkpoint: testCheckpoint(t, heads[:3]), Records: recs2}
	return f
}

// testCheckpoint returns a C2SP signed note over the epoch log of the given
// heads, signed by a deterministic key named after the realm.
func testCheckpoint(t testing.TB, heads [][]byte) []byte {
	t.Helper()
	skey, _, err := note.GenerateKey(bytes.NewReader(testSeed(notaryKeySeed)), fixtureRealm)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	root := rfc6962Root(heads)
	text := fixtureRealm + "\n" + strconv.Itoa(len(heads)) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// rfc6962Root is a plain recursive RFC 6962 Merkle tree hash (section 2.1):
// the model UpdatesRoot is compared against.
func rfc6962Root(leaves [][]byte) [32]byte {
	h := rfc6962.DefaultHasher
	var rec func([][]byte) []byte
	rec = func(l [][]byte) []byte {
		switch len(l) {
		case 0:
			return h.EmptyRoot()
		case 1:
			return h.HashLeaf(l[0])
		}
		k := 1
		for k*2 < len(l) {
			k *= 2
		}
		return h.HashChildren(rec(l[:k]), rec(l[k:]))
	}
	var out [32]byte
	copy(out[:], rec(leaves))
	return out
}

// wantField checks that err is a *Error of the given kind whose message
// contains field and reason.
func wantField(t testing.TB, err error, kind error, field, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s: %s", field, reason)
	}
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %q is %T, not *Error", err, err)
	}
	if fe.Field != field {
		t.Errorf("error %q: field %q, want %q", err, fe.Field, field)
	}
	if !strings.Contains(fe.Reason, reason) {
		t.Errorf("error %q: reason does not contain %q", err, reason)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("error %q: not %v", err, kind)
	}
}
