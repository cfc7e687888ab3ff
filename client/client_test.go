package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/client"
	"github.com/conifer-kt/conifer/client/clienttest"
	"github.com/conifer-kt/conifer/format"
	"golang.org/x/mod/sumdb/note"
)

func TestClientEndpoints(t *testing.T) {
	e := newEnv(t, envOpts{verifiers: 2, quorum: 1, seed: 11, server: clienttest.Options{ChunkSize: 300}})
	ctx := context.Background()
	r := e.register("alice@example.com", profileOf(t, "pgp", "k1"))
	e.register("bob@example.com", profileOf(t, "pgp", "kb"))
	e.change("alice@example.com", client.Change{Profile: profileOf(t, "pgp", "k2")}, e.device)

	got, err := e.c.Lookup(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := got.Key("pgp"); string(k) != "k2" {
		t.Errorf("lookup: key %q", k)
	}
	old, err := e.c.LookupAt(ctx, "alice@example.com", r.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := old.Key("pgp"); string(k) != "k1" {
		t.Errorf("lookup at epoch %d: key %q", r.Epoch, k)
	}
	absent, err := e.c.Lookup(ctx, "nobody@example.com")
	if err != nil || absent.Present {
		t.Fatalf("absent user: %v %+v", err, absent)
	}
	hist, err := e.c.History(ctx, "alice@example.com")
	if err != nil || len(hist.Versions) != 2 {
		t.Fatalf("history: %v", err)
	}
	if _, err := e.c.History(ctx, "nobody@example.com"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("history of an absent user: %v", err)
	}
	cp, err := e.c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != e.srv.Epochs() || len(cp.Cosigners) != 2 {
		t.Errorf("checkpoint size %d (server %d), %d cosigners", cp.Size, e.srv.Epochs(), len(cp.Cosigners))
	}
	for _, size := range []uint64{0, cp.Size, r.Epoch + 1} {
		h, err := e.c.Head(ctx, r.Epoch, size)
		if err != nil {
			t.Fatalf("head %d in size %d: %v", r.Epoch, size, err)
		}
		if h.Head.Epoch != r.Epoch || h.Head.TreeRoot != r.Head.TreeRoot {
			t.Errorf("head %d: %+v", r.Epoch, h.Head)
		}
	}
	if err := e.c.Consistency(ctx, r.Checkpoint, cp); err != nil {
		t.Fatal(err)
	}
	b, err := e.c.Feed(ctx, r.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Records) != 1 {
		t.Errorf("bundle of epoch %d has %d records", r.Epoch, len(b.Records))
	}
	if ch, err := e.c.FeedChunk(ctx, r.Epoch, 0); err != nil || ch.Parts < 2 {
		t.Errorf("feed chunk: %v (want several parts with a small chunk size)", err)
	}
	sr, err := e.c.ServerRealm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := sr.Marshal()
	want, _ := e.cfg.Marshal()
	if !bytes.Equal(a, want) {
		t.Error("server realm differs")
	}
	if rem, err := e.c.Remembered(); err != nil || rem.Size != cp.Size {
		t.Errorf("remembered: %v", err)
	}
}

// TestClientStateAcrossRuns checks that a FileState carries the newest
// checkpoint to a new client, which then accepts only consistent ones.
func TestClientStateAcrossRuns(t *testing.T) {
	e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 12})
	path := filepath.Join(t.TempDir(), "checkpoint.note")
	c1 := e.newClient(client.WithState(&client.FileState{Path: path}))
	e.register("alice@example.com", profileOf(t, "pgp", "k1"))
	if _, err := c1.Lookup(context.Background(), "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v", fi.Mode())
	}
	saved, _ := os.ReadFile(path)
	e.change("alice@example.com", client.Change{Profile: profileOf(t, "pgp", "k2")}, e.device)
	c2 := e.newClient(client.WithState(&client.FileState{Path: path}))
	if _, err := c2.Lookup(context.Background(), "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	now, _ := os.ReadFile(path)
	if bytes.Equal(saved, now) {
		t.Error("the newer checkpoint was not remembered")
	}
	// A corrupt state is an error, not a silent reset.
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c3 := e.newClient(client.WithState(&client.FileState{Path: path}))
	if _, err := c3.Lookup(context.Background(), "alice@example.com"); err == nil || !strings.Contains(err.Error(), "client state") {
		t.Errorf("corrupt state: %v", err)
	}
}

// twin returns a second honest server with the same keys and clock as e's
// (so it signs valid checkpoints of the same realm) but its own history.
func twin(t *testing.T, e *env) (*clienttest.Server, *httptest.Server) {
	t.Helper()
	s, err := clienttest.New(e.keys, clienttest.Options{Quorum: e.cfg.Quorum, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := httptest.NewServer(s)
	t.Cleanup(h.Close)
	return s, h
}

// registerOn registers user on server s directly.
func registerOn(t *testing.T, e *env, s *clienttest.Server, user string) {
	t.Helper()
	idx, _ := s.Index(user)
	pol, _ := client.KeyPolicy(1, pub(e.device))
	prof, _ := profileOf(t, "pgp", user).Marshal()
	opening := [16]byte{5}
	en := &format.Entry{Realm: e.cfg.Realm, Index: idx, Version: 1, Policy: *pol, Commitment: format.CommitProfile(opening, prof)}
	se := signedEntry(t, en, e.device)
	parsed, _, _ := format.ParseSignedEntry(se)
	rs := format.SignRegistration(e.keys.Registrar, format.EntryHash(parsed.Entry))
	if _, err := s.Submit(&api.UpdateRequest{
		UserID: user, SignedEntry: se, Profile: prof, Opening: opening[:],
		RegistrarSignature: append(rs.KeyID[:], rs.Sig[:]...), Wait: true,
	}); err != nil {
		t.Fatal(err)
	}
}

func clientFor(t *testing.T, e *env, url string, st client.State, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithClock(e.clock.Now), client.WithState(st)}, opts...)
	c, err := client.New(e.cfg, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientFork(t *testing.T) {
	ctx := context.Background()
	t.Run("same size", func(t *testing.T) {
		e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 13})
		other, oh := twin(t, e)
		registerOn(t, e, e.srv, "alice@example.com")
		registerOn(t, e, other, "mallory@example.com")
		st := &client.MemoryState{}
		dir := t.TempDir()
		if _, err := clientFor(t, e, e.http.URL, st).Lookup(ctx, "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		_, err := clientFor(t, e, oh.URL, st, client.WithEvidenceDir(dir)).Lookup(ctx, "alice@example.com")
		checkErr(t, err, client.ErrFork)
		var ce *client.Error
		errors.As(err, &ce)
		if len(ce.Evidence.Checkpoints) != 2 || ce.EvidenceFile == "" {
			t.Fatalf("fork evidence: %+v", ce.Evidence)
		}
		b, err := os.ReadFile(ce.EvidenceFile)
		if err != nil {
			t.Fatal(err)
		}
		var ev client.Evidence
		if err := jsonStrict(b, &ev); err != nil || ev.Check != client.ErrFork.Error() || len(ev.Checkpoints) != 2 {
			t.Fatalf("evidence file: %v %+v", err, ev)
		}
		if fi, _ := os.Stat(ce.EvidenceFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("evidence file mode %v", fi.Mode())
		}
	})
	t.Run("larger and inconsistent", func(t *testing.T) {
		e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 14})
		other, oh := twin(t, e)
		registerOn(t, e, e.srv, "alice@example.com")
		registerOn(t, e, other, "mallory@example.com")
		registerOn(t, e, other, "alice@example.com")
		st := &client.MemoryState{}
		if _, err := clientFor(t, e, e.http.URL, st).Lookup(ctx, "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		_, err := clientFor(t, e, oh.URL, st).Lookup(ctx, "alice@example.com")
		checkErr(t, err, client.ErrFork)
		var ce *client.Error
		errors.As(err, &ce)
		if len(ce.Evidence.ConsistencyProof) == 0 || ce.Evidence.ConsistencyFrom != 2 || ce.Evidence.ConsistencyTo != 3 {
			t.Errorf("fork evidence lacks the proof: %+v", ce.Evidence)
		}
	})
}

// proxy wraps a handler, letting a test rewrite answers.
type proxy struct {
	next    http.Handler
	rewrite func(r *http.Request, status int, body []byte) (int, []byte)
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	p.next.ServeHTTP(rec, r)
	status, body := rec.Code, rec.Body.Bytes()
	if p.rewrite != nil {
		status, body = p.rewrite(r, status, body)
	}
	w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
	w.WriteHeader(status)
	w.Write(body)
}

func TestClientRollback(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 15})
	registerOn(t, e, e.srv, "alice@example.com")
	registerOn(t, e, e.srv, "bob@example.com")
	st := &client.MemoryState{}
	if _, err := clientFor(t, e, e.http.URL, st).Lookup(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	// An older answer from the same log is fine: the server proves it a
	// prefix of the remembered checkpoint, which stays remembered.
	var oldProof []byte
	p := &proxy{next: e.srv, rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
		if r.URL.Path == "/Lookup" {
			return 200, oldProof
		}
		return status, body
	}}
	ph := httptest.NewServer(p)
	defer ph.Close()
	lp, err := e.srv.LookupAt("alice@example.com", 1)
	if err != nil {
		t.Fatal(err)
	}
	oldProof, _ = json.Marshal(lp)
	c := clientFor(t, e, ph.URL, st)
	if _, err := c.Lookup(ctx, "alice@example.com"); err != nil {
		t.Fatalf("older consistent answer: %v", err)
	}
	if rem, _ := c.Remembered(); rem.Size != 3 {
		t.Errorf("remembered size %d after an older answer, want 3", rem.Size)
	}

	// A server with another history that is behind: it cannot prove its
	// checkpoint a prefix of the remembered one.
	other, oh := twin(t, e)
	registerOn(t, e, other, "alice@example.com")
	_, err = clientFor(t, e, oh.URL, st).Lookup(ctx, "alice@example.com")
	checkErr(t, err, client.ErrRollback)

	// The same, with a server that answers the consistency request with a
	// made-up proof.
	lie := &proxy{next: other, rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
		if r.URL.Query().Has("from") {
			b, _ := json.Marshal(&api.ConsistencyResponse{From: 2, To: 3, Proof: [][]byte{make([]byte, 32)}})
			return 200, b
		}
		return status, body
	}}
	lh := httptest.NewServer(lie)
	defer lh.Close()
	_, err = clientFor(t, e, lh.URL, st).Lookup(ctx, "alice@example.com")
	checkErr(t, err, client.ErrRollback)

	// A 5xx answer to the consistency request is not evidence.
	down := &proxy{next: e.srv, rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
		if r.URL.Path == "/Lookup" {
			return 200, oldProof
		}
		if r.URL.Query().Has("from") {
			return 503, []byte(`{"code":"overloaded","error":"try later","retry_after_seconds":2}`)
		}
		return status, body
	}}
	dh := httptest.NewServer(down)
	defer dh.Close()
	_, err = clientFor(t, e, dh.URL, st).Lookup(ctx, "alice@example.com")
	var se *client.ServerError
	if !errors.As(err, &se) || se.Status != 503 || se.RetryAfter != 2*time.Second || errors.Is(err, client.ErrVerification) {
		t.Errorf("503 on consistency: %v", err)
	}
}

func TestClientUpdateFlows(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 16})
	user := "alice@example.com"
	cur, err := e.c.Lookup(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := client.KeyPolicy(1, pub(e.device))
	u, err := client.Prepare(cur, client.Change{Policy: pol, Profile: profileOf(t, "pgp", "k1")}, e.rand)
	if err != nil {
		t.Fatal(err)
	}
	// Refused locally before anything is sent.
	if err := u.Check(); !errors.Is(err, format.ErrQuorumNotMet) {
		t.Errorf("unsigned update: %v", err)
	}
	if n := u.Sign(e.keys.Registrar); n != 0 {
		t.Error("a key outside the policies signed")
	}
	u.Sign(e.device)
	if err := u.Check(); !errors.Is(err, format.ErrRegistrationNotAuthorized) {
		t.Errorf("registration without authorisation: %v", err)
	}
	// The server refuses a registration signed by a key that is not a
	// registrar.
	u.SignRegistrar(e.device)
	if _, err := e.c.Submit(ctx, user, u, true); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("bad registrar: %v", err)
	}
	u.SignRegistrar(e.keys.Registrar)
	res, err := e.c.Submit(ctx, user, u, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lookup.Version() != 1 || res.Lookup.EntryHash != u.EntryHash() || res.Receipt.Version != 1 {
		t.Fatalf("registration result: %+v", res)
	}
	// A second registration is stale.
	if _, err := e.c.Submit(ctx, user, u, true); !errors.Is(err, client.ErrStaleVersion) {
		t.Errorf("repeated registration: %v", err)
	}

	// Two updates prepared from the same state: the second is stale.
	a, _ := client.Prepare(res.Lookup, client.Change{Profile: profileOf(t, "pgp", "a")}, e.rand)
	b, _ := client.Prepare(res.Lookup, client.Change{Profile: profileOf(t, "pgp", "b")}, e.rand)
	a.Sign(e.device)
	b.Sign(e.device)
	if _, err := e.c.Submit(ctx, user, a, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Submit(ctx, user, b, false); !errors.Is(err, client.ErrStaleVersion) {
		t.Errorf("racing update: %v", err)
	}
	if _, err := e.srv.CutEpoch(); err != nil {
		t.Fatal(err)
	}

	// Key rotation: the old key alone cannot install a policy it does not
	// hold the new key of.
	next, _ := client.GenerateKey(e.rand)
	cur, _ = e.c.Lookup(ctx, user)
	rot, err := client.RotateKey(&cur.Entry.Policy, pub(e.device), pub(next))
	if err != nil {
		t.Fatal(err)
	}
	u, _ = client.Prepare(cur, client.Change{Policy: rot}, e.rand)
	u.Sign(e.device)
	if err := u.Check(); !errors.Is(err, format.ErrQuorumNotMet) || !strings.Contains(err.Error(), "new policy") {
		t.Errorf("rotation signed by the old key only: %v", err)
	}
	u.Sign(next)
	res, err = e.c.Submit(ctx, user, u, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Lookup.Entry.Policy.Key(format.KeyIDOf(pub(next))); !ok || res.Lookup.Version() != 3 {
		t.Fatal("rotation not applied")
	}
	if k, _ := res.Lookup.Key("pgp"); string(k) != "a" {
		t.Errorf("rotation changed the profile: %q", k)
	}
	if _, err := client.RotateKey(&res.Lookup.Entry.Policy, pub(e.device), pub(next)); err == nil {
		t.Error("rotating a key not in the policy succeeded")
	}

	// Tombstone, then revival.
	u, _ = client.Prepare(res.Lookup, client.Change{Tombstone: true}, e.rand)
	u.Sign(e.device) // no longer in any policy: skipped
	if err := u.Check(); err == nil {
		t.Error("tombstone signed by a retired key accepted")
	}
	u.Sign(next)
	res, err = e.c.Submit(ctx, user, u, true)
	if err != nil || !res.Lookup.Tombstone() {
		t.Fatalf("tombstone: %v", err)
	}
	if _, err := client.Prepare(res.Lookup, client.Change{Tombstone: true, Profile: &format.Profile{}}, e.rand); err == nil {
		t.Error("tombstone with a profile prepared")
	}
	u, _ = client.Prepare(res.Lookup, client.Change{}, e.rand)
	u.Sign(next)
	res, err = e.c.Submit(ctx, user, u, true)
	if err != nil || res.Lookup.Tombstone() || res.Lookup.Profile == nil || len(res.Lookup.Profile.Keys) != 0 {
		t.Fatalf("revival: %v", err)
	}

	// Waiting with manual epochs: 504 with the receipt.
	m := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 17, server: clienttest.Options{ManualEpochs: true}})
	cur, _ = m.c.Lookup(ctx, user)
	mpol, _ := client.KeyPolicy(1, pub(m.device))
	u, _ = client.Prepare(cur, client.Change{Policy: mpol}, m.rand)
	u.Sign(m.device)
	u.SignRegistrar(m.keys.Registrar)
	_, err = m.c.Submit(ctx, user, u, true)
	var se *client.ServerError
	if !errors.Is(err, client.ErrWaitTimeout) || !errors.As(err, &se) || se.Receipt == nil || se.Receipt.Version != 1 {
		t.Fatalf("wait timeout: %v", err)
	}
}

// TestClientUpdateNotApplied: a server that answers a waited update with a
// (valid) lookup that does not show it.
func TestClientUpdateNotApplied(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 18})
	user := "alice@example.com"
	e.register(user, profileOf(t, "pgp", "k1"))
	stale, _ := e.srv.Lookup(user, 1)
	p := &proxy{next: e.srv, rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
		if r.URL.Path != "/Update" || status != 200 {
			return status, body
		}
		var resp api.UpdateResponse
		json.Unmarshal(body, &resp)
		resp.Proof = stale
		b, _ := json.Marshal(&resp)
		return 200, b
	}}
	ph := httptest.NewServer(p)
	defer ph.Close()
	c := clientFor(t, e, ph.URL, &client.MemoryState{})
	cur, _ := c.Lookup(ctx, user)
	u, _ := client.Prepare(cur, client.Change{Profile: profileOf(t, "pgp", "k2")}, e.rand)
	u.Sign(e.device)
	if _, err := c.Submit(ctx, user, u, true); !errors.Is(err, client.ErrUpdateNotApplied) || errors.Is(err, client.ErrVerification) {
		t.Fatalf("stale proof for a waited update: %v", err)
	}
}

// TestClientBadAnswers covers answers that are not even well-formed.
func TestClientBadAnswers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 19})
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"unknown field", 200, `{"realm":"x","surprise":1}`},
		{"trailing data", 200, `{"realm":"x"} {}`},
		{"not JSON", 200, `<html>`},
		{"error document", 500, `{"code":"internal","error":"boom"}`},
		{"error without document", 502, `bad gateway`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer h.Close()
			_, err := clientFor(t, e, h.URL, &client.MemoryState{}).Lookup(ctx, "alice@example.com")
			var se *client.ServerError
			if !errors.As(err, &se) || errors.Is(err, client.ErrVerification) {
				t.Fatalf("%v", err)
			}
		})
	}
	// Refused configurations.
	for _, u := range []string{"ftp://x", "http://", "http://x/?a=b", "::"} {
		if _, err := client.New(e.cfg, u); err == nil {
			t.Errorf("server URL %q accepted", u)
		}
	}
	if _, err := client.New(e.cfg, "http://x", client.WithQuorum(0)); err == nil {
		t.Error("lowered quorum accepted")
	}
	// A quorum above what the server has: the server has no such epoch.
	e2 := newEnv(t, envOpts{verifiers: 2, quorum: 1, seed: 20, server: clienttest.Options{ManualCosign: true}})
	e2.srv.Cosign(0, 0)
	c := e2.newClient(client.WithQuorum(2))
	if _, err := c.Lookup(ctx, "alice@example.com"); !errors.As(err, new(*client.ServerError)) {
		t.Errorf("lookup demanding an unmet quorum: %v", err)
	}
	if _, err := c.Checkpoint(ctx); !errors.Is(err, client.ErrVerifierQuorum) {
		t.Errorf("checkpoint below the demanded quorum: %v", err)
	}
	if _, err := e2.c.Checkpoint(ctx); err != nil {
		t.Errorf("checkpoint at the realm's quorum: %v", err)
	}
}

// TestServerRatify checks the honest server's /Ratify: with manual
// co-signing, a lookup demanding the quorum waits for a verifier's
// co-signature line, sent as a verifier would.
func TestServerRatify(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{verifiers: 2, quorum: 1, seed: 21, server: clienttest.Options{ManualCosign: true}})
	if _, err := e.c.Lookup(ctx, "alice@example.com"); !errors.As(err, new(*client.ServerError)) {
		t.Fatalf("lookup before any co-signature: %v", err)
	}
	vs, _ := checkpoint.NewKeySigner(e.keys.Verifiers[1])
	cs, _ := checkpoint.NewCosigner(clienttest.VerifierName(1), vs, e.clock.Now)
	n, err := note.Open(e.srv.Note(0), note.VerifierList(mustVerifier(t, e.cfg.LogKey)))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, cs)
	if err != nil {
		t.Fatal(err)
	}
	line := string(signed[len(n.Text)+1:])
	body, _ := json.Marshal(&api.RatifyRequest{Epoch: 0, Signature: line})
	resp, err := e.http.Client().Post(e.http.URL+"/Ratify", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var rr api.RatifyResponse
	json.NewDecoder(resp.Body).Decode(&rr)
	resp.Body.Close()
	if resp.StatusCode != 200 || rr.Cosigners != 1 {
		t.Fatalf("ratify: %d %+v", resp.StatusCode, rr)
	}
	res, err := e.c.Lookup(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Checkpoint.Cosigners) != 1 || res.Checkpoint.Cosigners[0].Name != clienttest.VerifierName(1) {
		t.Errorf("cosigners %+v", res.Checkpoint.Cosigners)
	}
	// A forged line is refused.
	body, _ = json.Marshal(&api.RatifyRequest{Epoch: 0, Signature: flipSigLine(t, line, 20)})
	resp, err = e.http.Client().Post(e.http.URL+"/Ratify", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("forged ratify: status %d", resp.StatusCode)
	}
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestClientConcurrent runs lookups from many goroutines on one client
// while epochs are cut (run with -race).
func TestClientConcurrent(t *testing.T) {
	e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 22})
	e.register("alice@example.com", profileOf(t, "pgp", "k"))
	c := e.newClient(client.WithState(&client.FileState{Path: filepath.Join(t.TempDir(), "state")}))
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			for range 5 {
				if _, err := c.Lookup(context.Background(), "alice@example.com"); err != nil {
					errs <- err
					return
				}
				if i == 0 {
					if _, err := e.srv.CutEpoch(); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	rem, err := c.Remembered()
	if err != nil || rem.Size < 3 {
		t.Fatalf("remembered %v %v", rem, err)
	}
}
