package handlers

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/emulators/spanneremu"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/config"
	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/infra"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/vrf"
)

func TestMain(m *testing.M) { spanneremu.Main(m) }

func testKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("handlers-test/" + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// fixture is a Server over a fresh emulator database, served by httptest.
type fixture struct {
	t         *testing.T
	srv       *Server
	ts        *httptest.Server
	store     *spanstore.Store
	realm     *realm.Config
	vrf       *vrf.PrivateKey
	registrar ed25519.PrivateKey
}

func newFixture(t *testing.T, limits config.Limits) *fixture {
	t.Helper()
	seed := sha256.Sum256([]byte("handlers-test/vrf"))
	vk, err := vrf.NewPrivateKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	logSigner, err := checkpoint.NewKeySigner(testKey("log"))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := checkpoint.NewLogSigner("example.com/conifer", logSigner)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := checkpoint.NewKeySigner(testKey("verifier"))
	if err != nil {
		t.Fatal(err)
	}
	cos, err := checkpoint.NewCosigner("verifier.example/v1", cs, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	reg := testKey("registrar")
	rc := &realm.Config{
		Realm: "example.com/conifer", VRFPublicKey: vk.Public().Bytes(), LogKey: ls.VerifierKey(),
		Verifiers: []string{cos.VerifierKey()}, Quorum: 1,
		MinEpochInterval: realm.Duration{Duration: time.Millisecond}, MaxEpochInterval: realm.Duration{Duration: time.Hour},
		MaxHeadAge:   realm.Duration{Duration: 2 * time.Hour},
		Registration: realm.Registration{Registrars: [][]byte{reg.Public().(ed25519.PublicKey)}},
	}
	if err := rc.Validate(); err != nil {
		t.Fatal(err)
	}
	db := spanneremu.NewTestDatabase(t, infra.SchemaDDL())
	emu := spanneremu.ForTest(t)
	st, err := spanstore.Open(context.Background(), spanstore.Options{
		Database: db, ClientOptions: emu.ClientOptions(), ClientConfig: emu.ClientConfig(), Emulator: true, Realm: rc,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	srv, err := New(Options{Store: st, Realm: rc, VRF: vk, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &fixture{t: t, srv: srv, ts: ts, store: st, realm: rc, vrf: vk, registrar: reg}
}

// user builds a user's entries.
type user struct {
	id    string
	index [32]byte
	keys  []ed25519.PrivateKey // keys[v-1] is the key of version v's policy
	prev  [32]byte
}

func (f *fixture) user(id string) *user {
	alpha, _ := vrf.Input(f.realm.Realm, id)
	beta, _ := f.vrf.Prove(alpha)
	return &user{id: id, index: vrf.Index(beta)}
}

// next builds version len(u.keys)+1 with a fresh key, signed by the
// previous version's key (if any) and the new one, and returns the request
// (not yet applied to u: call u.commit on success).
func (f *fixture) next(u *user, tombstone bool, signers ...ed25519.PrivateKey) (*api.UpdateRequest, [32]byte, ed25519.PrivateKey) {
	f.t.Helper()
	v := uint64(len(u.keys) + 1)
	key := testKey(u.id + "/" + string(rune('0'+v)))
	profile := &format.Profile{}
	if err := profile.Set("pgp", []byte("key of "+u.id)); err != nil {
		f.t.Fatal(err)
	}
	pb, _ := profile.Marshal()
	opening := [format.OpeningSize]byte{byte(v)}
	e := &format.Entry{Realm: f.realm.Realm, Index: u.index, Version: v, Prev: u.prev,
		Policy: format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}}}
	req := &api.UpdateRequest{UserID: u.id}
	if tombstone {
		e.Tombstone = true
	} else {
		e.Commitment = format.CommitProfile(opening, pb)
		req.Profile, req.Opening = pb, opening[:]
	}
	eb, err := e.Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	h := format.EntryHash(eb)
	if signers == nil {
		signers = []ed25519.PrivateKey{key}
		if v > 1 {
			signers = append(signers, u.keys[v-2])
		}
	}
	var sigs []format.Signature
	for _, k := range signers {
		sigs = append(sigs, format.SignEntry(k, h))
	}
	format.SortSignatures(sigs)
	se, err := (&format.SignedEntry{Entry: eb, Signatures: sigs}).Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	req.SignedEntry = se
	if v == 1 {
		s := format.SignRegistration(f.registrar, h)
		req.RegistrarSignature = append(s.KeyID[:], s.Sig[:]...)
	}
	return req, h, key
}

func (u *user) commit(h [32]byte, key ed25519.PrivateKey) {
	u.keys = append(u.keys, key)
	u.prev = h
}

// do sends a request and decodes the answer into out (if 2xx) or an
// api.Error.
func (f *fixture) do(method, path string, body any, out any) (int, *api.Error, http.Header) {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, f.ts.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 {
		if out != nil {
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(out); err != nil {
				f.t.Fatalf("%s %s: %v in %s", method, path, err, b)
			}
		}
		return resp.StatusCode, nil, resp.Header
	}
	var e api.Error
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" {
		f.t.Fatalf("%s %s: %d with a body that is not an api.Error: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, &e, resp.Header
}

func (f *fixture) wantError(method, path string, body any, status int, code string) *api.Error {
	f.t.Helper()
	got, e, _ := f.do(method, path, body, nil)
	if got != status || e == nil || e.Code != code {
		f.t.Fatalf("%s %s: %d %+v, want %d %s", method, path, got, e, status, code)
	}
	return e
}

func TestUpdatePath(t *testing.T) {
	f := newFixture(t, config.Limits{})
	alice := f.user("alice@example.com")

	// Registration, then its replay, then an update.
	req, h, k := f.next(alice, false)
	var resp api.UpdateResponse
	if st, e, _ := f.do("POST", "/Update", req, &resp); st != 200 {
		t.Fatalf("register: %d %+v", st, e)
	}
	if !bytes.Equal(resp.Receipt.Index, alice.index[:]) || resp.Receipt.Version != 1 || len(resp.Receipt.Seq) != 16 || resp.Proof != nil {
		t.Fatalf("receipt %+v", resp.Receipt)
	}
	logTime, err := time.Parse(time.RFC3339Nano, resp.Receipt.LogTime)
	if err != nil {
		t.Fatal(err)
	}
	deadline, _ := time.Parse(time.RFC3339Nano, resp.Receipt.EpochDeadline)
	if deadline.Sub(logTime) != time.Hour {
		t.Fatalf("deadline %v after log time", deadline.Sub(logTime))
	}
	f.wantError("POST", "/Update", req, 409, CodeAlreadyRegistered)
	alice.commit(h, k)

	req2, h2, k2 := f.next(alice, false)
	if st, e, _ := f.do("POST", "/Update", req2, &resp); st != 200 || resp.Receipt.Version != 2 {
		t.Fatalf("update: %d %+v", st, e)
	}
	f.wantError("POST", "/Update", req2, 409, CodeStaleVersion)
	alice.commit(h2, k2)

	// Signed by a key the policy does not name: 403.
	req3, _, k3 := f.next(alice, false, testKey("mallory"))
	_ = k3
	f.wantError("POST", "/Update", req3, 403, CodeQuorum)
	// Signed by the old key only (not the new one): 403.
	req3, _, _ = f.next(alice, false, alice.keys[1])
	f.wantError("POST", "/Update", req3, 403, CodeQuorum)
	// A wrong prev: 409.
	saved := alice.prev
	alice.prev = sha256.Sum256([]byte("not the previous entry"))
	req3, _, _ = f.next(alice, false)
	f.wantError("POST", "/Update", req3, 409, CodeWrongPrev)
	alice.prev = saved
	// A version gap: 409.
	alice.keys = append(alice.keys, testKey("gap"))
	req3, _, _ = f.next(alice, false, testKey("alice@example.com/4"), alice.keys[1])
	f.wantError("POST", "/Update", req3, 409, CodeVersionGap)
	alice.keys = alice.keys[:2]

	// Registration by a key that is no registrar: 403.
	bob := f.user("bob@example.com")
	breq, bh, _ := f.next(bob, false)
	bad := format.SignRegistration(testKey("not a registrar"), bh)
	breq.RegistrarSignature = append(bad.KeyID[:], bad.Sig[:]...)
	f.wantError("POST", "/Update", breq, 403, CodeRegistration)
	breq.RegistrarSignature = nil
	f.wantError("POST", "/Update", breq, 403, CodeRegistration)
	breq.IDToken = "a.b.c"
	f.wantError("POST", "/Update", breq, 403, CodeIDToken) // the realm takes no ID tokens
	// An update (version 2) of a user that never registered: 409.
	carol := f.user("carol@example.com")
	carol.keys = []ed25519.PrivateKey{testKey("c1")}
	carol.prev = sha256.Sum256([]byte("x"))
	creq, _, _ := f.next(carol, false)
	f.wantError("POST", "/Update", creq, 409, CodeNotRegistered)

	// Tombstone: no profile allowed, then accepted.
	treq, th, tk := f.next(alice, true)
	bad2 := *treq
	bad2.Profile = []byte{0}
	f.wantError("POST", "/Update", &bad2, 400, CodeMalformed)
	if st, e, _ := f.do("POST", "/Update", treq, &resp); st != 200 {
		t.Fatalf("tombstone: %d %+v", st, e)
	}
	alice.commit(th, tk)
}

func TestUpdateMalformed(t *testing.T) {
	l := config.DefaultLimits()
	l.UpdateBurst = 100
	f := newFixture(t, l)
	dave := f.user("dave@example.com")
	good, _, _ := f.next(dave, false)
	edit := func(fn func(r *api.UpdateRequest)) *api.UpdateRequest {
		r := *good
		fn(&r)
		return &r
	}
	f.wantError("POST", "/Update", []byte(`{"user_id":"x","bogus":1}`), 400, CodeMalformed)
	f.wantError("POST", "/Update", []byte(`{"user_id":"x"} {}`), 400, CodeMalformed)
	f.wantError("POST", "/Update", []byte(`not json`), 400, CodeMalformed)
	f.wantError("POST", "/Update", bytes.Repeat([]byte(" "), api.MaxRequestBytes+1), 413, CodeTooLarge)
	f.wantError("GET", "/Update", nil, 405, CodeMethod)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.UserID = "" }), 400, CodeMalformed)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.UserID = "a\x00b" }), 400, CodeMalformed)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.UserID = strings.Repeat("a", 1025) }), 400, CodeMalformed)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.UserID = "eve@example.com" }), 400, CodeWrongIndex)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.SignedEntry = r.SignedEntry[1:] }), 400, CodeMalformed)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.SignedEntry = append(r.SignedEntry, 0) }), 400, CodeMalformed)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.Opening = r.Opening[:15] }), 400, CodeMalformed)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.Opening = make([]byte, 16) }), 400, CodeCommitment)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.Profile = []byte{9} }), 400, CodeMalformed)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.IDToken = "x.y.z" }), 400, CodeMalformed)
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.RegistrarSignature = r.RegistrarSignature[1:] }), 400, CodeMalformed)
	q := 5
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.Quorum = &q }), 400, CodeMalformed)

	// An entry of another realm (for the same index): 400.
	_, e, _ := format.ParseSignedEntry(good.SignedEntry)
	e.Realm = "other.example"
	eb, _ := e.Marshal()
	se, _ := (&format.SignedEntry{Entry: eb, Signatures: []format.Signature{format.SignEntry(testKey("x"), format.EntryHash(eb))}}).Marshal()
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) { r.SignedEntry = se }), 400, CodeWrongRealm)

	// A bit flip in a signature: 403 (quorum), never accepted.
	for _, i := range []int{len(good.SignedEntry) - 1, len(good.SignedEntry) - 40} {
		f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) {
			r.SignedEntry = bytes.Clone(r.SignedEntry)
			r.SignedEntry[i] ^= 1
		}), 403, CodeQuorum)
	}
	// The registrar signature with a bit flipped: 403.
	f.wantError("POST", "/Update", edit(func(r *api.UpdateRequest) {
		r.RegistrarSignature = bytes.Clone(r.RegistrarSignature)
		r.RegistrarSignature[20] ^= 4
	}), 403, CodeRegistration)
	// After all that, the good request still goes through.
	if st, er, _ := f.do("POST", "/Update", good, nil); st != 200 {
		t.Fatalf("%d %+v", st, er)
	}
}

func TestReadersBeforeGenesis(t *testing.T) {
	f := newFixture(t, config.Limits{})
	f.wantError("GET", "/Lookup?user=alice@example.com", nil, 503, CodeNotCosigned)
	f.wantError("GET", "/Lookup?user=alice@example.com&epoch=0", nil, 404, CodeNotFound)
	f.wantError("GET", "/Lookup?user=alice@example.com&epoch=00", nil, 400, CodeMalformed)
	f.wantError("GET", "/Lookup?user=a&bogus=1", nil, 400, CodeMalformed)
	f.wantError("GET", "/Lookup?user=a&quorum=2", nil, 400, CodeMalformed)
	f.wantError("GET", "/Lookup", nil, 400, CodeMalformed)
	f.wantError("POST", "/Lookup?user=a", nil, 405, CodeMethod)
	f.wantError("GET", "/History?user=a", nil, 503, CodeNotCosigned)
	f.wantError("GET", "/Checkpoint", nil, 404, CodeNotFound)
	f.wantError("GET", "/Checkpoint?epoch=0", nil, 404, CodeNotFound)
	f.wantError("GET", "/Checkpoint?from=0&to=1", nil, 404, CodeNotFound)
	f.wantError("GET", "/Checkpoint?from=2&to=1", nil, 400, CodeMalformed)
	f.wantError("GET", "/Checkpoint?epoch=1&from=0", nil, 400, CodeMalformed)
	f.wantError("GET", "/Checkpoint?realm=2", nil, 400, CodeMalformed)
	f.wantError("GET", "/Feed?epoch=0", nil, 404, CodeNotFound)
	f.wantError("GET", "/Feed", nil, 400, CodeMalformed)
	f.wantError("GET", "/Nope", nil, 404, CodeNotFound)
	f.wantError("POST", "/Ratify", &api.RatifyRequest{Epoch: 0, Signature: "— verifier.example/v1 AAAAAA=="}, 403, CodeUnknownVerifier)
	f.wantError("POST", "/Ratify", &api.RatifyRequest{Epoch: 0, Signature: "nonsense"}, 400, CodeMalformed)

	// The realm document is served as it was configured.
	resp, err := http.Get(f.ts.URL + "/Checkpoint?realm=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got, err := realm.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Realm != f.realm.Realm || got.LogKey != f.realm.LogKey || !bytes.Equal(got.VRFPublicKey, f.realm.VRFPublicKey) {
		t.Fatalf("realm document %s", b)
	}
}

func TestLimits(t *testing.T) {
	l := config.DefaultLimits()
	l.UpdateBurst, l.UpdateRate = 2, 0.001
	l.LookupBurst, l.LookupRate = 3, 0.001
	f := newFixture(t, l)
	erin := f.user("erin@example.com")
	req, _, _ := f.next(erin, false)
	req.Opening = nil // refused (400) after the limit is taken
	f.wantError("POST", "/Update", req, 400, CodeMalformed)
	f.wantError("POST", "/Update", req, 400, CodeMalformed)
	e := f.wantError("POST", "/Update", req, 429, CodeRateLimited)
	if e.RetryAfterSeconds < 900 {
		t.Fatalf("retry after %d s at 0.001/s", e.RetryAfterSeconds)
	}
	// Another user is not limited by erin's bucket.
	frank := f.user("frank@example.com")
	freq, _, _ := f.next(frank, false)
	if st, er, _ := f.do("POST", "/Update", freq, nil); st != 200 {
		t.Fatalf("%d %+v", st, er)
	}
	// Readers: three per caller, then 429 with Retry-After.
	for range 3 {
		f.wantError("GET", "/Checkpoint", nil, 404, CodeNotFound)
	}
	_, _, hdr := f.do("GET", "/Checkpoint", nil, nil)
	if hdr.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	f.wantError("GET", "/Lookup?user=x", nil, 429, CodeRateLimited)
}

// TestOverload fills the concurrency cap with requests that block inside
// the handler and checks the next one is 503 with Retry-After.
func TestOverload(t *testing.T) {
	l := config.DefaultLimits()
	l.MaxConcurrent = 2
	f := newFixture(t, l)
	var (
		started = make(chan struct{}, 2)
		unblock = make(chan struct{})
		wg      sync.WaitGroup
	)
	block := func(c *call) error {
		started <- struct{}{}
		<-unblock
		return nil
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.srv.serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil), "Block", "GET", false, block)
		}()
	}
	<-started
	<-started
	w := httptest.NewRecorder()
	f.srv.Checkpoint(w, httptest.NewRequest("GET", "/Checkpoint", nil))
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), CodeOverloaded) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	close(unblock)
	wg.Wait()
	w = httptest.NewRecorder()
	f.srv.Checkpoint(w, httptest.NewRequest("GET", "/Checkpoint", nil))
	if w.Code != 404 {
		t.Fatalf("after the slots are free: %d", w.Code)
	}
}

func TestPanicIs500(t *testing.T) {
	f := newFixture(t, config.Limits{})
	w := httptest.NewRecorder()
	f.srv.serve(w, httptest.NewRequest("GET", "/x", nil), "Boom", "GET", false, func(*call) error { panic("boom") })
	if w.Code != 500 || !strings.Contains(w.Body.String(), CodeInternal) || strings.Contains(w.Body.String(), "boom") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// The slot was given back.
	for range config.DefaultMaxConcurrent + 1 {
		w = httptest.NewRecorder()
		f.srv.Checkpoint(w, httptest.NewRequest("GET", "/Checkpoint?realm=1", nil))
		if w.Code != 200 {
			t.Fatalf("%d", w.Code)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	f := newFixture(t, config.Limits{})
	other, _ := vrf.NewPrivateKey(make([]byte, 32))
	if _, err := New(Options{Store: f.store, Realm: f.realm, VRF: other}); err == nil {
		t.Fatal("a VRF key that is not the realm's was accepted")
	}
	if _, err := New(Options{Realm: f.realm}); err == nil {
		t.Fatal("no store accepted")
	}
	l := config.DefaultLimits()
	l.FeedChunkBytes = format.MaxChunkSize + 1
	if _, err := New(Options{Store: f.store, Realm: f.realm, Limits: l}); err == nil {
		t.Fatal("oversized chunk accepted")
	}
	bad := *f.realm
	bad.LogKey = "nonsense"
	if _, err := New(Options{Store: f.store, Realm: &bad}); err == nil {
		t.Fatal("bad log key accepted")
	}
}
