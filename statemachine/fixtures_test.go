package statemachine

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/tree"
)

// Test fixtures: real Ed25519 keys from fixed seeds, real format encodings.

const (
	testRealm  = "example.com"
	testIssuer = "https://accounts.example.com"
	// Registrar keys are key(registrarA) and key(registrarB).
	registrarA = 1000
	registrarB = 1001
)

var (
	keyMu    sync.Mutex
	keyCache = map[int]ed25519.PrivateKey{}
)

// key returns test key i: seed SHA-256("conifer/statemachine-test/key/<i>").
func key(i int) ed25519.PrivateKey {
	keyMu.Lock()
	defer keyMu.Unlock()
	if k, ok := keyCache[i]; ok {
		return k
	}
	seed := sha256.Sum256(fmt.Appendf(nil, "conifer/statemachine-test/key/%d", i))
	k := ed25519.NewKeyFromSeed(seed[:])
	keyCache[i] = k
	return k
}

func pub(i int) ed25519.PublicKey { return key(i).Public().(ed25519.PublicKey) }

func testRules() Rules {
	return Rules{
		Realm:       testRealm,
		Registrars:  []ed25519.PublicKey{pub(registrarA), pub(registrarB)},
		OIDCIssuers: []string{testIssuer},
	}
}

// indexOf returns the test index of user name.
func indexOf(name string) [32]byte {
	return sha256.Sum256([]byte("conifer/statemachine-test/index/" + name))
}

// pol returns a normalized threshold policy over test keys and subpolicies.
func pol(threshold int, keys []int, subs ...*format.Policy) *format.Policy {
	p := &format.Policy{Threshold: uint16(threshold), Subpolicies: subs}
	for _, k := range keys {
		p.Keys = append(p.Keys, pub(k))
	}
	p.Normalize()
	return p
}

// ent describes an entry to build.
type ent struct {
	realm     string
	index     [32]byte
	version   uint64
	prev      [32]byte
	policy    *format.Policy
	tombstone bool
	commit    byte // commitment = SHA-256(commit), for distinct entries
}

func (d ent) entry() *format.Entry {
	e := &format.Entry{Realm: d.realm, Index: d.index, Version: d.version, Prev: d.prev, Policy: *d.policy, Tombstone: d.tombstone}
	if e.Realm == "" {
		e.Realm = testRealm
	}
	if !d.tombstone {
		e.Commitment = sha256.Sum256([]byte{'c', d.commit})
	}
	return e
}

// signed returns the entry signed by the test keys signers, and its hash.
func signed(t testing.TB, e *format.Entry, signers ...int) (format.SignedEntry, [32]byte) {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatalf("couldn't encode entry: %v", err)
	}
	h := format.EntryHash(b)
	s := format.SignedEntry{Entry: b}
	for _, k := range signers {
		s.Signatures = append(s.Signatures, format.SignEntry(key(k), h))
	}
	format.SortSignatures(s.Signatures)
	return s, h
}

// encode returns the encoded log record.
func encode(t testing.TB, s format.SignedEntry, reg *format.Registration) []byte {
	t.Helper()
	l := format.LogRecord{SignedEntry: s, Registration: reg}
	b, err := l.Marshal()
	if err != nil {
		t.Fatalf("couldn't encode log record: %v", err)
	}
	return b
}

func byRegistrar(k int, h [32]byte) *format.Registration {
	return &format.Registration{Kind: format.RegistrationRegistrar, Registrar: format.SignRegistration(key(k), h)}
}

func byOIDC(issuer string) *format.Registration {
	return &format.Registration{Kind: format.RegistrationOIDC, Issuer: issuer}
}

// register returns a valid registration record for the entry d (version 1
// forced), signed by signers and registrar A, and the entry's hash.
func register(t testing.TB, d ent, signers ...int) ([]byte, [32]byte) {
	t.Helper()
	d.version, d.prev = 1, [32]byte{}
	s, h := signed(t, d.entry(), signers...)
	return encode(t, s, byRegistrar(registrarA, h)), h
}

// update returns an update record for entry d signed by signers.
func update(t testing.TB, d ent, signers ...int) ([]byte, [32]byte) {
	t.Helper()
	s, h := signed(t, d.entry(), signers...)
	return encode(t, s, nil), h
}

// memEntries is an Entries kept in memory: every applied record of every
// committed epoch, per index.
type memEntries struct {
	mu    sync.Mutex
	users map[[32]byte][]stored
	calls int
}

type stored struct {
	epoch uint64
	l     Latest
}

func newMemEntries() *memEntries { return &memEntries{users: map[[32]byte][]stored{}} }

func (m *memEntries) Latest(ctx context.Context, version uint64, indexes [][32]byte) (map[[32]byte]Latest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	out := map[[32]byte]Latest{}
	for _, idx := range indexes {
		rs := m.users[idx]
		for i := len(rs) - 1; i >= 0; i-- {
			if rs[i].epoch <= version {
				out[idx] = rs[i].l
				break
			}
		}
	}
	return out, nil
}

func (m *memEntries) commit(epoch uint64, applied []Applied) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range applied {
		m.users[a.Index] = append(m.users[a.Index], stored{epoch, Latest{LeafRecord: a.LeafRecord, SignedEntry: a.SignedEntry}})
	}
}

// env is a realm being replayed: a memory tree store and entries.
type env struct {
	t       testing.TB
	store   *tree.MemoryStore
	tree    *tree.Tree
	entries *memEntries
	rules   Rules
	epoch   uint64    // last committed
	root    tree.Hash // its head's tree root
}

func newEnv(t testing.TB) *env {
	s := tree.NewMemoryStore()
	return &env{t: t, store: s, tree: tree.New(s), entries: newMemEntries(), rules: testRules()}
}

// apply makes the next epoch from records without committing it.
func (v *env) apply(records ...[]byte) (*Output, error) {
	return Apply(context.Background(), v.tree, v.entries, Input{Rules: v.rules, Epoch: v.epoch + 1, Time: 1_700_000_000_000 + v.epoch, Records: records})
}

// run makes and commits the next epoch, checking the output's invariants.
func (v *env) run(records ...[]byte) *Output {
	v.t.Helper()
	out, err := v.apply(records...)
	if err != nil {
		v.t.Fatalf("Apply epoch %d: %v", v.epoch+1, err)
	}
	checkOutput(v.t, v.epoch+1, records, out)
	v.epoch++
	v.root = out.Head.TreeRoot
	if err := v.store.Commit(context.Background(), v.epoch, out.Head.TreeRoot); err != nil {
		v.t.Fatalf("couldn't commit tree version %d: %v", v.epoch, err)
	}
	v.entries.commit(v.epoch, out.Applied)
	return out
}

// checkOutput checks what every output must satisfy.
func checkOutput(t testing.TB, epoch uint64, records [][]byte, out *Output) {
	t.Helper()
	if out.Head.Epoch != epoch || out.Head.UpdateCount != uint64(len(records)) || out.Head.UpdatesRoot != format.UpdatesRoot(records) {
		t.Fatalf("head %+v does not count the epoch's %d records", out.Head, len(records))
	}
	hb, err := out.Head.Marshal()
	if err != nil || !bytes.Equal(hb, out.HeadBytes) {
		t.Fatalf("HeadBytes is not the encoded head (%v)", err)
	}
	seen := make([]int, len(records))
	last := -1
	for _, a := range out.Applied {
		if a.Position <= last {
			t.Fatalf("applied records out of order at %d", a.Position)
		}
		last = a.Position
		seen[a.Position]++
	}
	last = -1
	for _, r := range out.Rejected {
		if r.Position <= last {
			t.Fatalf("rejected records out of order at %d", r.Position)
		}
		last = r.Position
		seen[r.Position]++
		if r.Code.String() == fmt.Sprintf("code(%d)", uint8(r.Code)) || r.Reason == "" {
			t.Fatalf("rejection %+v has no known code or no reason", r)
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("record %d is in applied+rejected %d times", i, n)
		}
	}
}

// codes returns, per position, the rejection code or 0 if applied.
func codes(out *Output, n int) []RejectCode {
	c := make([]RejectCode, n)
	for _, r := range out.Rejected {
		c[r.Position] = r.Code
	}
	return c
}

// proveUser checks the user's tree proof at the env's committed epoch
// against the root in its head:
// inclusion of want (a leaf record hash), or absence if want is nil.
func (v *env) proveUser(idx [32]byte, want *[32]byte) {
	v.t.Helper()
	ctx := context.Background()
	root := v.root
	if stored, err := v.tree.Root(ctx, v.epoch); err != nil || stored != root {
		v.t.Fatalf("tree root at epoch %d is %v, head says %v (%v)", v.epoch, stored, root, err)
	}
	p, err := v.tree.Prove(ctx, v.epoch, tree.Key(idx))
	if err != nil {
		v.t.Fatal(err)
	}
	if want == nil {
		if err := tree.VerifyAbsence(root, tree.Key(idx), p); err != nil {
			v.t.Fatalf("absence of %x at epoch %d: %v", idx[:4], v.epoch, err)
		}
		return
	}
	if err := tree.VerifyInclusion(root, tree.Key(idx), tree.Hash(*want), p); err != nil {
		v.t.Fatalf("inclusion of %x at epoch %d: %v", idx[:4], v.epoch, err)
	}
}
