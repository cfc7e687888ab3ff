package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/client"
	"github.com/conifer-kt/conifer/client/clienttest"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/vrf"
	"golang.org/x/mod/sumdb/note"
)

// testRand is a deterministic random source for keys and openings.
func testRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.BigEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an honest server behind HTTP with a client and a user device.
type env struct {
	t      testing.TB
	keys   *clienttest.Keys
	srv    *clienttest.Server
	http   *httptest.Server
	cfg    *realm.Config
	clock  *clock
	rand   *rand.ChaCha8
	device ed25519.PrivateKey
	c      *client.Client
}

type envOpts struct {
	verifiers, quorum int
	server            clienttest.Options
	client            []client.Option
	seed              uint64
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), rand: testRand(o.seed)}
	var err error
	e.keys, err = clienttest.NewKeys(e.rand, o.verifiers)
	if err != nil {
		t.Fatal(err)
	}
	so := o.server
	so.Quorum = o.quorum
	if so.Now == nil {
		so.Now = e.clock.Now
	}
	e.srv, err = clienttest.New(e.keys, so)
	if err != nil {
		t.Fatal(err)
	}
	e.http = httptest.NewServer(e.srv)
	t.Cleanup(e.http.Close)
	e.cfg = e.srv.Config()
	e.device, err = client.GenerateKey(e.rand)
	if err != nil {
		t.Fatal(err)
	}
	e.c = e.newClient(o.client...)
	return e
}

func (e *env) newClient(opts ...client.Option) *client.Client {
	e.t.Helper()
	opts = append([]client.Option{client.WithClock(e.clock.Now), client.WithHTTPClient(e.http.Client())}, opts...)
	c, err := client.New(e.cfg, e.http.URL, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func profileOf(t testing.TB, kv ...string) *format.Profile {
	t.Helper()
	p := &format.Profile{}
	for i := 0; i < len(kv); i += 2 {
		if err := p.Set(kv[i], []byte(kv[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// register registers user with a 1-of-{device} policy and the given
// profile through the registrar, waiting for the epoch.
func (e *env) register(user string, profile *format.Profile) *client.Result {
	e.t.Helper()
	cur, err := e.c.Lookup(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	pol, err := client.KeyPolicy(1, pub(e.device))
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := client.Prepare(cur, client.Change{Policy: pol, Profile: profile}, e.rand)
	if err != nil {
		e.t.Fatal(err)
	}
	u.Sign(e.device)
	u.SignRegistrar(e.keys.Registrar)
	res, err := e.c.Submit(context.Background(), user, u, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Lookup
}

// change applies ch to user's entry, signed by keys, waiting for the epoch.
func (e *env) change(user string, ch client.Change, keys ...ed25519.PrivateKey) *client.Result {
	e.t.Helper()
	cur, err := e.c.Lookup(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := client.Prepare(cur, ch, e.rand)
	if err != nil {
		e.t.Fatal(err)
	}
	u.Sign(keys...)
	res, err := e.c.Submit(context.Background(), user, u, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Lookup
}

// jsonStrict decodes b into v, refusing unknown fields.
func jsonStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// cloneProof deep-copies a lookup proof.
func cloneProof(p *api.LookupProof) *api.LookupProof {
	q := *p
	q.Checkpoint = slices.Clone(p.Checkpoint)
	q.Head = slices.Clone(p.Head)
	q.HeadProof = nil
	for _, h := range p.HeadProof {
		q.HeadProof = append(q.HeadProof, slices.Clone(h))
	}
	q.VRFProof = slices.Clone(p.VRFProof)
	q.Index = slices.Clone(p.Index)
	q.TreeProof = slices.Clone(p.TreeProof)
	q.LeafRecord = slices.Clone(p.LeafRecord)
	q.SignedEntry = slices.Clone(p.SignedEntry)
	q.Profile = slices.Clone(p.Profile)
	q.Opening = slices.Clone(p.Opening)
	return &q
}

// forger is a malicious keyserver with colluding verifiers: it holds every
// secret of the realm and signs whatever tree and heads it is told to, so
// tests can reach the checks that only catch a lying keyserver.
type forger struct {
	t    *testing.T
	keys *clienttest.Keys
	cfg  *realm.Config
	now  time.Time
}

// forgery describes one forged answer.
type forgery struct {
	userID string
	// leaves are put into the tree (index → leaf record bytes).
	leaves map[[32]byte][]byte
	// leaf, signedEntry, profile, opening go into the answer as they are.
	leaf, signedEntry, profile, opening []byte
	// mutateHead changes the head of the forged epoch 1 before signing.
	mutateHead func(h *format.EpochHead)
	// headBytes, if set, replaces the encoded head entirely.
	headBytes []byte
	// epoch is the forged epoch (default 1); epochs before it are empty.
	epoch uint64
}

// forge builds a log of empty epochs 0..f.epoch-1 and the forged epoch
// f.epoch (default 1), signed by the keyserver and co-signed by every
// verifier, and the answer for f.userID at the forged epoch.
func (fg *forger) forge(f forgery) *api.LookupProof {
	t := fg.t
	t.Helper()
	ctx := context.Background()
	store := tree.NewMemoryStore()
	tr := tree.New(store)
	var cs []tree.Change
	for k, v := range f.leaves {
		cs = append(cs, tree.Change{Key: tree.Key(k), Value: tree.Hash(format.LeafRecordHash(v))})
	}
	root, err := tr.Update(ctx, 0, cs)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Commit(ctx, 1, root); err != nil {
		t.Fatal(err)
	}
	sk, err := vrf.NewPrivateKey(fg.keys.VRFSeed)
	if err != nil {
		t.Fatal(err)
	}
	alpha, err := vrf.Input(fg.cfg.Realm, f.userID)
	if err != nil {
		t.Fatal(err)
	}
	beta, vproof := sk.Prove(alpha)
	index := vrf.Index(beta)
	tp, err := tr.Prove(ctx, 1, tree.Key(index))
	if err != nil {
		t.Fatal(err)
	}

	n := f.epoch
	if n == 0 {
		n = 1
	}
	log := checkpoint.NewMemoryLog()
	for i := range n {
		empty := &format.EpochHead{Realm: fg.cfg.Realm, Epoch: i, Time: uint64(fg.now.UnixMilli()), TreeRoot: tree.Empty, UpdatesRoot: format.UpdatesRoot(nil)}
		g, err := empty.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := log.Append(checkpoint.LeafHash(g)); err != nil {
			t.Fatal(err)
		}
	}
	head := &format.EpochHead{Realm: fg.cfg.Realm, Epoch: n, Time: uint64(fg.now.UnixMilli()), TreeRoot: root, UpdatesRoot: format.UpdatesRoot(nil)}
	if f.mutateHead != nil {
		f.mutateHead(head)
	}
	hb := f.headBytes
	if hb == nil {
		if hb, err = head.Marshal(); err != nil {
			t.Fatal(err)
		}
	}
	logRoot, err := log.Append(checkpoint.LeafHash(hb))
	if err != nil {
		t.Fatal(err)
	}
	hp, err := checkpoint.InclusionProof(n, n+1, log)
	if err != nil {
		t.Fatal(err)
	}
	signed := fg.sign(checkpoint.Checkpoint{Origin: fg.cfg.Realm, Size: n + 1, Hash: logRoot}, len(fg.keys.Verifiers))
	p := &api.LookupProof{
		Realm: fg.cfg.Realm, UserID: f.userID, Epoch: n,
		Checkpoint: signed, CheckpointSize: n + 1,
		Head: hb, VRFProof: vproof[:], Index: index[:], TreeProof: tp.Marshal(),
		LeafRecord: f.leaf, SignedEntry: f.signedEntry, Profile: f.profile, Opening: f.opening,
	}
	for _, h := range hp {
		p.HeadProof = append(p.HeadProof, slices.Clone(h[:]))
	}
	return p
}

// sign signs c with the keyserver key and the first n verifiers.
func (fg *forger) sign(c checkpoint.Checkpoint, n int) []byte {
	t := fg.t
	t.Helper()
	ks, err := checkpoint.NewKeySigner(fg.keys.Log)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := checkpoint.NewLogSigner(fg.cfg.Realm, ks)
	if err != nil {
		t.Fatal(err)
	}
	signers := []note.Signer{ls}
	for i := range n {
		vs, err := checkpoint.NewKeySigner(fg.keys.Verifiers[i])
		if err != nil {
			t.Fatal(err)
		}
		cs, err := checkpoint.NewCosigner(clienttest.VerifierName(i), vs, func() time.Time { return fg.now })
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, cs)
	}
	text, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := note.Sign(&note.Note{Text: string(text)}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// signedEntry builds and signs an entry.
func signedEntry(t *testing.T, e *format.Entry, keys ...ed25519.PrivateKey) []byte {
	t.Helper()
	eb, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h := format.EntryHash(eb)
	var sigs []format.Signature
	for _, k := range keys {
		sigs = append(sigs, format.SignEntry(k, h))
	}
	format.SortSignatures(sigs)
	b, err := (&format.SignedEntry{Entry: eb, Signatures: sigs}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func leafRecord(t *testing.T, l *format.LeafRecord) []byte {
	t.Helper()
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
