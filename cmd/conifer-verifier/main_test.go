package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/client/clienttest"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/verifier"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHelpAndUsage(t *testing.T) {
	var out, errb syncBuffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb); code != exitOK || !strings.Contains(errb.String(), "--subscription") {
		t.Fatalf("--help: %d, %q", code, errb.String())
	}
	for _, args := range [][]string{
		{},
		{"--realm", "r.json", "--data", "d", "--key", "k", "--name", "n"}, // no --feed
		{"--init-key", "--key", "k"},                                      // no --name
		{"--realm", "r", "--data", "d", "--key", "k", "--name", "n", "--feed", "https://f", "--subscription", "sub"},
		{"--realm", "r", "--data", "d", "--key", "k", "--name", "n", "--feed", "https://f", "--log-format", "xml"},
		{"--bogus"},
		{"extra"},
	} {
		var out, errb syncBuffer
		if code := run(context.Background(), args, &out, &errb); code != exitError {
			t.Errorf("%q: exit %d", args, code)
		}
	}
}

func TestInitKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "v.key")
	var out, errb syncBuffer
	if code := run(context.Background(), []string{"--init-key", "--key", path, "--name", "verifier.example/v1"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	k, err := loadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	name, alg, pubKey, err := checkpoint.ParseVerifierKey(strings.TrimSpace(out.String()))
	if err != nil || name != "verifier.example/v1" || alg != checkpoint.AlgCosignatureV1 || !pubKey.Equal(k.Public()) {
		t.Fatalf("printed %q: %v", out.String(), err)
	}
	// Never replaces a key.
	if code := run(context.Background(), []string{"--init-key", "--key", path, "--name", "verifier.example/v1"}, &out, &errb); code != exitError {
		t.Fatalf("second --init-key: exit %d", code)
	}
	if k2, _ := loadKey(path); !k2.Equal(k) {
		t.Fatal("key replaced")
	}
	// A key others can read is refused.
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := loadKey(path); err == nil {
		t.Fatal("loaded a group-readable key")
	}
	if code := run(context.Background(), []string{"--init-key", "--key", filepath.Join(dir, "x"), "--name", "has space"}, &out, &errb); code != exitError {
		t.Fatal("bad name accepted")
	}
}

func TestParseKey(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	good := formatKey(seed)
	k, err := parseKey(good)
	if err != nil || !bytes.Equal(k.Seed(), seed) {
		t.Fatal(err)
	}
	if _, err := parseKey(bytes.TrimSuffix(good, []byte("\n"))); err != nil {
		t.Fatal("no final newline refused")
	}
	for _, bad := range []string{
		"",
		"CONIFER-PUBLIC-KEY " + string(good[len(keyPrefix):]),
		string(good) + "\n",
		strings.Replace(string(good), "=", "", 1),
		keyPrefix + "AAAA\n",
		" " + string(good),
	} {
		if _, err := parseKey([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(formatKey(bytes.Repeat([]byte{1}, 32)))
	f.Add([]byte(keyPrefix))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := parseKey(b)
		if err != nil {
			return
		}
		enc := formatKey(k.Seed())
		if !bytes.Equal(enc, b) && !bytes.Equal(enc, append(bytes.Clone(b), '\n')) {
			t.Fatalf("encode(parse(%q)) = %q", b, enc)
		}
		if k2, err := parseKey(enc); err != nil || !k2.Equal(k) {
			t.Fatal("parse(encode(k)) != k")
		}
	})
}

func TestSubscriptionProject(t *testing.T) {
	if p, err := subscriptionProject("projects/p1/subscriptions/s"); err != nil || p != "p1" {
		t.Fatal(p, err)
	}
	for _, bad := range []string{"s", "projects//subscriptions/s", "projects/p/topics/t", "projects/p/subscriptions/", "projects/p/subscriptions/s/x"} {
		if _, err := subscriptionProject(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	for in, want := range map[string]string{"": "https://f.example", "off": ""} {
		if got := ratifyURL(&options{feed: "https://f.example/Feed", ratify: in}); got != want {
			t.Errorf("ratify %q = %q", in, got)
		}
	}
}

// tamper serves the honest server's API, but for epoch bad it serves a
// bundle whose checkpoint signature is corrupted.
type tamper struct {
	h   http.Handler
	mu  sync.Mutex
	bad int64 // -1: none
}

func (t *tamper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	bad := t.bad
	t.mu.Unlock()
	if r.URL.Path != "/Feed" || bad < 0 || r.URL.Query().Get("epoch") != strconv.FormatInt(bad, 10) {
		t.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	var fr api.FeedResponse
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &fr) != nil || fr.Parts != 1 {
		http.Error(w, "test: unexpected feed answer", 500)
		return
	}
	c, _ := format.ParseBundleChunk(fr.Chunk)
	b, _ := format.ParseBundle(c.Data)
	i := bytes.LastIndex(b.Checkpoint, []byte(" ")) + 5
	b.Checkpoint[i] ^= 'A' ^ 'B' // another base64 letter: a wrong signature
	enc, _ := b.Marshal()
	cs, _ := format.SplitBundle(enc, format.MaxChunkSize)
	fr.Chunk, _ = cs[0].Marshal()
	json.NewEncoder(w).Encode(&fr)
}

func TestFollow(t *testing.T) {
	seed := sha256.Sum256([]byte("conifer-verifier test"))
	keys, err := clienttest.NewKeys(bytes.NewReader(bytes.Repeat(seed[:], 10)), 1)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := clienttest.New(keys, clienttest.Options{ManualCosign: true})
	if err != nil {
		t.Fatal(err)
	}
	register := func(user string, k ed25519.PrivateKey) {
		t.Helper()
		idx, _ := srv.Index(user)
		e := &format.Entry{Realm: srv.Config().Realm, Index: idx, Version: 1,
			Policy: format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}}, Commitment: format.CommitProfile([16]byte{}, []byte{0})}
		eb, _ := e.Marshal()
		h := format.EntryHash(eb)
		se := format.SignedEntry{Entry: eb, Signatures: []format.Signature{format.SignEntry(k, h)}}
		seb, _ := se.Marshal()
		sig := format.SignRegistration(keys.Registrar, h)
		if _, err := srv.Submit(&api.UpdateRequest{UserID: user, SignedEntry: seb, Profile: []byte{0}, Opening: make([]byte, 16),
			RegistrarSignature: append(sig.KeyID[:], sig.Sig[:]...)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		register(fmt.Sprintf("u%d@example.com", i), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32)))
		if _, err := srv.CutEpoch(); err != nil {
			t.Fatal(err)
		}
	}
	tp := &tamper{h: srv, bad: -1}
	hs := httptest.NewServer(tp)
	defer hs.Close()

	dir := t.TempDir()
	realmFile := filepath.Join(dir, "realm.json")
	rb, _ := srv.Config().Marshal()
	if err := os.WriteFile(realmFile, rb, 0o644); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "v.key")
	if err := os.WriteFile(keyFile, formatKey(keys.Verifiers[0].Seed()), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	args := []string{"--realm", realmFile, "--data", data, "--key", keyFile, "--name", clienttest.VerifierName(0),
		"--feed", hs.URL, "--status-addr", "127.0.0.1:0", "--poll", "20ms", "--log-format", "json"}

	// Run 1: catch up, co-sign every epoch through Ratify, stop on
	// cancel with status 0.
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	code := make(chan int, 1)
	go func() { code <- run(ctx, args, &out, &errb) }()
	cfg := srv.Config()
	logV, _ := checkpoint.NewVerifier(cfg.LogKey)
	cv, _ := checkpoint.NewCosignatureVerifier(cfg.Verifiers[0])
	cosigned := func(n uint64) bool {
		_, err := checkpoint.Open(srv.Note(n), cfg.Realm, logV, []*checkpoint.CosignatureVerifier{cv}, 1)
		return err == nil
	}
	for n := uint64(0); n < srv.Epochs(); {
		if cosigned(n) {
			n++
			continue
		}
		wait(t)
	}
	// The status endpoint.
	addr := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(out.String(), "\n", 2)[0], "status: "))
	resp, err := http.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	var st verifier.Status
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != 200 || st.VerifiedEpochs != srv.Epochs() || !st.Signing || st.Realm != cfg.Realm {
		t.Fatalf("status %d: %+v", resp.StatusCode, st)
	}
	cancel()
	if c := <-code; c != exitOK {
		t.Fatalf("run 1: exit %d: %s", c, errb.String())
	}
	if !strings.Contains(errb.String(), `"severity":"INFO"`) {
		t.Fatalf("no JSON log with severity: %s", errb.String())
	}

	// Run 2: the keyserver publishes an epoch with a bad signature: exit
	// 2 and evidence.
	if _, err := srv.CutEpoch(); err != nil {
		t.Fatal(err)
	}
	tp.mu.Lock()
	tp.bad = int64(srv.Epochs() - 1)
	tp.mu.Unlock()
	errb = syncBuffer{}
	if c := run(context.Background(), args, &out, &errb); c != exitMisbehaviour {
		t.Fatalf("run 2: exit %d: %s", c, errb.String())
	}
	ev, _ := filepath.Glob(filepath.Join(data, verifier.EvidenceDir, "*.json"))
	if len(ev) != 1 || !strings.Contains(errb.String(), "log-signature") {
		t.Fatalf("evidence %v; stderr %s", ev, errb.String())
	}
	if cosigned(srv.Epochs() - 1) {
		t.Fatal("co-signed the bad epoch")
	}
	// Run 3: halted for good, even with an honest feed.
	tp.mu.Lock()
	tp.bad = -1
	tp.mu.Unlock()
	if c := run(context.Background(), args, &out, &errb); c != exitMisbehaviour {
		t.Fatalf("run 3: exit %d", c)
	}
}

func wait(t *testing.T) {
	t.Helper()
	select {
	case <-time.After(5 * time.Millisecond):
	case <-t.Context().Done():
		t.Fatal("test ended while waiting")
	}
}
