package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/client/clienttest"
	"github.com/conifer-kt/conifer/realm"
)

// stack is an honest in-memory keyserver behind HTTP, with the realm
// config and the registrar key written to files.
type stack struct {
	t         *testing.T
	keys      *clienttest.Keys
	srv       *clienttest.Server
	http      *httptest.Server
	realmFile string
	registrar string // registrar key file
}

const issuer = "http://127.0.0.1:5556"

// checkToken accepts unsigned test tokens header.payload.sig whose payload
// has iss, email and nonce (the real signature check is the update
// function's, not the CLI's).
func checkToken(tok, user, nonce string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct{ Iss, Email, Nonce string }
	if err := json.Unmarshal(b, &c); err != nil {
		return "", err
	}
	if c.Email != user || c.Nonce != nonce {
		return "", errors.New("email or nonce mismatch")
	}
	return c.Iss, nil
}

func testToken(email, nonce string) string {
	p, _ := json.Marshal(map[string]string{"iss": issuer, "email": email, "nonce": nonce})
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(p) + ".sig"
}

func newStack(t *testing.T, seed uint64, opts clienttest.Options) *stack {
	t.Helper()
	var s [32]byte
	s[0] = byte(seed)
	keys, err := clienttest.NewKeys(rand.NewChaCha8(s), 2)
	if err != nil {
		t.Fatal(err)
	}
	opts.Quorum = 1
	opts.OIDC = []realm.OIDCProvider{{Issuer: issuer, Audiences: []string{"app"}}}
	opts.CheckIDToken = checkToken
	srv, err := clienttest.New(keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{t: t, keys: keys, srv: srv, http: httptest.NewServer(srv)}
	t.Cleanup(st.http.Close)
	dir := t.TempDir()
	b, _ := srv.Config().Marshal()
	st.realmFile = filepath.Join(dir, "realm.json")
	if err := os.WriteFile(st.realmFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	st.registrar = filepath.Join(dir, "registrar.key")
	if err := os.WriteFile(st.registrar, FormatPrivateKey(keys.Registrar), 0o600); err != nil {
		t.Fatal(err)
	}
	return st
}

// device is one conifer configuration directory.
type device struct {
	t   *testing.T
	dir string
}

// newDevice runs conifer init for a new directory against st.
func (st *stack) newDevice() *device {
	st.t.Helper()
	d := &device{t: st.t, dir: filepath.Join(st.t.TempDir(), "conifer")}
	d.ok("init", "--realm", st.realmFile, "--server", st.http.URL)
	return d
}

// run runs conifer with --dir and returns the exit code and outputs.
func (d *device) run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"--dir", d.dir}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func (d *device) ok(args ...string) string {
	d.t.Helper()
	code, out, errs := d.run(args...)
	if code != 0 {
		d.t.Fatalf("conifer %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (d *device) code(want int, args ...string) (string, string) {
	d.t.Helper()
	code, out, errs := d.run(args...)
	if code != want {
		d.t.Fatalf("conifer %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
	}
	return out, errs
}

func (d *device) pubFile() string { return filepath.Join(d.dir, "keys", "device.pub") }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestInitRegisterLookup(t *testing.T) {
	st := newStack(t, 1, clienttest.Options{})
	d := st.newDevice()
	fi, err := os.Stat(filepath.Join(d.dir, "keys", "device.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("device key: %v %v", err, fi.Mode())
	}
	if fi, _ := os.Stat(d.dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", fi.Mode())
	}
	// init again keeps the key and the pinned realm.
	before, _ := os.ReadFile(filepath.Join(d.dir, "keys", "device.key"))
	d.ok("init")
	after, _ := os.ReadFile(filepath.Join(d.dir, "keys", "device.key"))
	if !bytes.Equal(before, after) {
		t.Error("init replaced the device key")
	}

	sshFile := filepath.Join(t.TempDir(), "id.pub")
	os.WriteFile(sshFile, []byte("ssh-ed25519 AAAA alice"), 0o644)
	out := d.ok("register", "alice@example.com", "--set-key", "pgp="+b64("alice-pgp"), "--set-key", "ssh=@"+sshFile, "--registrar-key", st.registrar)
	if !strings.Contains(out, "version 1") || !strings.Contains(out, b64("alice-pgp")) {
		t.Errorf("register output:\n%s", out)
	}
	out = d.ok("lookup", "alice@example.com")
	if !strings.Contains(out, b64("ssh-ed25519 AAAA alice")) || !strings.Contains(out, "policy  1(device)") {
		t.Errorf("lookup output:\n%s", out)
	}
	// Flags after the argument, and JSON.
	out = d.ok("lookup", "alice@example.com", "--json")
	var j lookupJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatal(err)
	}
	if !j.Present || j.Version != 1 || string(j.Keys["pgp"]) != "alice-pgp" || len(j.Cosigners) != 2 {
		t.Errorf("lookup --json: %+v", j)
	}
	_, errs := d.code(exitNotFound, "lookup", "bob@example.com")
	if !strings.Contains(errs, "not registered") {
		t.Errorf("absent user: %s", errs)
	}
	d.code(exitNotFound, "history", "bob@example.com")
	d.code(exitUsage, "register", "alice@example.com", "--registrar-key", st.registrar)
	out = d.ok("history", "alice@example.com")
	if !strings.Contains(out, "1 version(s)") || !strings.Contains(out, "signed by device") {
		t.Errorf("history:\n%s", out)
	}
	out = d.ok("checkpoint")
	if !strings.Contains(out, "co-signed  by 2 of 2 verifiers (quorum 1)") || !strings.Contains(out, clienttest.VerifierName(1)) {
		t.Errorf("checkpoint:\n%s", out)
	}
	out = d.ok("checkpoint", "--json")
	var cj map[string]any
	if err := json.Unmarshal([]byte(out), &cj); err != nil || cj["size"].(float64) != float64(st.srv.Epochs()) {
		t.Errorf("checkpoint --json: %v %v", err, cj)
	}
	// Another device sees the same keys, at a past epoch too.
	d2 := st.newDevice()
	if out := d2.ok("lookup", "alice@example.com"); !strings.Contains(out, b64("alice-pgp")) {
		t.Errorf("second device:\n%s", out)
	}
	d2.code(exitNotFound, "lookup", "--epoch", "0", "alice@example.com")
}

func TestUpdateCommands(t *testing.T) {
	st := newStack(t, 2, clienttest.Options{})
	d := st.newDevice()
	user := "alice@example.com"
	d.ok("register", user, "--set-key", "pgp="+b64("k1"), "--set-key", "ssh="+b64("s1"), "--registrar-key", st.registrar)
	out := d.ok("update", user, "--set-key", "pgp="+b64("k2"), "--remove-key", "ssh")
	if !strings.Contains(out, b64("k2")) || strings.Contains(out, "ssh") {
		t.Errorf("update:\n%s", out)
	}
	d.code(exitUsage, "update", user)
	d.code(exitUsage, "update", user, "--remove-key", "signal")
	d.code(exitUsage, "update", user, "--tombstone", "--set-key", "pgp="+b64("x"))
	d.code(exitNotFound, "update", "bob@example.com", "--set-key", "pgp="+b64("x"))

	// Rotation: the device key changes, the old one is retired.
	oldKey, _ := os.ReadFile(filepath.Join(d.dir, "keys", "device.key"))
	d.ok("update", user, "--rotate-device-key")
	newKey, _ := os.ReadFile(filepath.Join(d.dir, "keys", "device.key"))
	if bytes.Equal(oldKey, newKey) {
		t.Fatal("rotation kept the device key")
	}
	if _, err := os.Stat(filepath.Join(d.dir, "keys", "next.key")); !os.IsNotExist(err) {
		t.Error("next.key left after a completed rotation")
	}
	retired, _ := filepath.Glob(filepath.Join(d.dir, "keys", "retired", "*.key"))
	if len(retired) != 1 {
		t.Errorf("%d retired keys", len(retired))
	}
	// The new key is the one the policy holds, and it can sign.
	out = d.ok("update", user, "--set-key", "pgp="+b64("k3"))
	if !strings.Contains(out, "policy  1(device)") {
		t.Errorf("after rotation:\n%s", out)
	}

	// A recovery key in the policy: the recovery device can then update.
	rec := st.newDevice()
	d.ok("update", user, "--policy", "1(device, @"+rec.pubFile()+")")
	rec.ok("update", user, "--set-key", "pgp="+b64("from-recovery"))
	if out := d.ok("lookup", user); !strings.Contains(out, b64("from-recovery")) {
		t.Errorf("recovery update:\n%s", out)
	}
	// A policy this device cannot satisfy is refused locally.
	_, errs := rec.code(exitUsage, "update", user, "--policy", "2(device, @"+d.pubFile()+")")
	if !strings.Contains(errs, "cannot make this update") {
		t.Errorf("unsatisfiable update: %s", errs)
	}
	d.code(exitUsage, "update", user, "--policy", "3(device)")

	// Erase, then revive.
	d.ok("update", user, "--tombstone")
	_, errs = d.code(exitNotFound, "lookup", user)
	if !strings.Contains(errs, "erased") {
		t.Errorf("erased lookup: %s", errs)
	}
	d.ok("update", user, "--set-key", "pgp="+b64("revived"))
	if out := d.ok("lookup", user); !strings.Contains(out, b64("revived")) || strings.Contains(out, b64("from-recovery")) {
		t.Errorf("revived:\n%s", out)
	}
	if out := d.ok("history", user, "--json"); !strings.Contains(out, `"erased": true`) {
		t.Errorf("history --json:\n%s", out)
	}
	d.ok("monitor", user, "--once", "--known-version", "6") // v6 came from the recovery device
}

// TestInterruptedRotation: the rotation's update is sent but not waited
// for; the next command finishes the rotation once the policy shows it.
func TestInterruptedRotation(t *testing.T) {
	st := newStack(t, 3, clienttest.Options{})
	d := st.newDevice()
	user := "alice@example.com"
	d.ok("register", user, "--registrar-key", st.registrar)
	d.ok("update", user, "--rotate-device-key", "--no-wait")
	if _, err := os.Stat(filepath.Join(d.dir, "keys", "next.key")); err != nil {
		t.Fatal("no next.key while the rotation is pending")
	}
	if _, err := st.srv.CutEpoch(); err != nil {
		t.Fatal(err)
	}
	_, errs := d.code(0, "update", user, "--set-key", "pgp="+b64("k"))
	if !strings.Contains(errs, "finished an earlier device key rotation") {
		t.Errorf("rotation not settled: %s", errs)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "keys", "next.key")); !os.IsNotExist(err) {
		t.Error("next.key left")
	}
	d.ok("monitor", user, "--once")
}

func TestMonitor(t *testing.T) {
	st := newStack(t, 4, clienttest.Options{})
	a := st.newDevice()
	b := st.newDevice()
	user := "alice@example.com"
	a.ok("register", user, "--set-key", "pgp="+b64("k1"), "--policy", "1(device, @"+b.pubFile()+")", "--registrar-key", st.registrar)
	a.ok("update", user, "--set-key", "pgp="+b64("k2"))
	if out := a.ok("monitor", user, "--once"); !strings.Contains(out, "version 2, every version made by this device") {
		t.Errorf("monitor:\n%s", out)
	}
	// Another key in the policy changes the entry: device a notices.
	b.ok("update", user, "--set-key", "pgp="+b64("mallory"))
	_, errs := a.code(exitVerify, "monitor", user, "--once")
	if !strings.Contains(errs, "did not make: v3") {
		t.Errorf("monitor: %s", errs)
	}
	files, _ := filepath.Glob(filepath.Join(a.dir, "evidence", "*unexpected-change.json"))
	if len(files) != 1 {
		t.Fatalf("%d evidence files", len(files))
	}
	ev, _ := os.ReadFile(files[0])
	if !strings.Contains(string(ev), `"history"`) || !strings.Contains(string(ev), "own updates") {
		t.Errorf("evidence:\n%s", ev)
	}
	a.ok("monitor", user, "--once", "--known-version", "3")
	// A user this device never touched and nobody registered is fine.
	a.ok("monitor", "nobody@example.com", "--once")
}

func TestRegisterWithIDToken(t *testing.T) {
	st := newStack(t, 5, clienttest.Options{})
	d := st.newDevice()
	user := "alice@example.com"
	nonce := strings.TrimSpace(d.ok("register", user, "--print-nonce", "--set-key", "pgp="+b64("k1")))
	if len(nonce) != 43 {
		t.Fatalf("nonce %q", nonce)
	}
	// A token for another entry is caught before sending.
	_, errs := d.code(exitUsage, "register", user, "--id-token", testToken(user, "AAAA"))
	if !strings.Contains(errs, "--print-nonce") {
		t.Errorf("wrong nonce: %s", errs)
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte(testToken(user, nonce)+"\n"), 0o600)
	out := d.ok("register", user, "--id-token-file", tokFile)
	if !strings.Contains(out, b64("k1")) {
		t.Errorf("registered:\n%s", out)
	}
	// A token for another user is refused by the server.
	d.ok("register", "bob@example.com", "--print-nonce")
	n2, _ := d.code(0, "register", "bob@example.com", "--print-nonce")
	d.code(exitServer, "register", "bob@example.com", "--id-token", testToken("mallory@example.com", strings.TrimSpace(n2)))
}

func TestVerificationFailures(t *testing.T) {
	st := newStack(t, 6, clienttest.Options{})
	d := st.newDevice()
	user := "alice@example.com"
	d.ok("register", user, "--set-key", "pgp="+b64("k1"), "--registrar-key", st.registrar)

	// A server that swaps the profile.
	lie := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		st.srv.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if r.URL.Path == "/Lookup" {
			var p api.LookupProof
			json.Unmarshal(body, &p)
			p.Profile = append(p.Profile[:len(p.Profile)-1], 'X')
			body, _ = json.Marshal(&p)
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	defer lie.Close()
	_, errs := d.code(exitVerify, "--server", lie.URL, "lookup", user)
	if !strings.Contains(errs, "profile commitment") || !strings.Contains(errs, "evidence written to") {
		t.Errorf("tampered lookup: %s", errs)
	}
	files, _ := filepath.Glob(filepath.Join(d.dir, "evidence", "evidence-*-profile-commitment.json"))
	if len(files) != 1 {
		t.Errorf("%d evidence files", len(files))
	}

	// A fork: a server with the same keys and another history.
	other, err := clienttest.New(st.keys, clienttest.Options{Quorum: 1})
	if err != nil {
		t.Fatal(err)
	}
	oh := httptest.NewServer(other)
	defer oh.Close()
	_, errs = d.code(exitVerify, "--server", oh.URL, "lookup", user)
	if !strings.Contains(errs, "fork") && !strings.Contains(errs, "rollback") {
		t.Errorf("fork: %s", errs)
	}
}

func TestUsageAndServerErrors(t *testing.T) {
	st := newStack(t, 7, clienttest.Options{})
	d := st.newDevice()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, exitUsage},
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"--help"}, exitOK},
		{[]string{"help"}, exitOK},
		{[]string{"help", "lookup"}, exitOK},
		{[]string{"lookup", "--help"}, exitOK},
		{[]string{"lookup"}, exitUsage},
		{[]string{"lookup", "a", "b"}, exitUsage},
		{[]string{"lookup", "--no-such-flag", "a"}, exitUsage},
		{[]string{"register", "alice@example.com"}, exitUsage},
		{[]string{"register", "alice@example.com", "--set-key", "pgp=not base64", "--registrar-key", st.registrar}, exitUsage},
		{[]string{"register", "alice@example.com", "--policy", "1(nokey)", "--registrar-key", st.registrar}, exitUsage},
		{[]string{"init", "extra"}, exitUsage},
	} {
		if code, _, errs := d.run(tc.args...); code != tc.code {
			t.Errorf("conifer %v: exit %d, want %d (%s)", tc.args, code, tc.code, errs)
		}
	}
	// No realm pinned, no server.
	empty := &device{t: t, dir: t.TempDir()}
	empty.code(exitUsage, "lookup", "alice@example.com")
	empty.code(exitUsage, "init")
	// Re-pinning another realm needs --force.
	other := newStack(t, 8, clienttest.Options{})
	d.code(exitUsage, "init", "--realm", other.realmFile)
	d.ok("init", "--realm", other.realmFile, "--force", "--server", other.http.URL)
	// A server that is down.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	d.code(exitServer, "--server", down.URL, "lookup", "alice@example.com")
	// A server that answers 500.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write([]byte(`{"code":"internal","error":"boom"}`))
	}))
	defer broken.Close()
	_, errs := d.code(exitServer, "--server", broken.URL, "checkpoint")
	if !strings.Contains(errs, "boom") {
		t.Errorf("500: %s", errs)
	}
	// A key file readable by others is refused.
	loose := filepath.Join(t.TempDir(), "loose.key")
	os.WriteFile(loose, FormatPrivateKey(ed25519.NewKeyFromSeed(make([]byte, 32))), 0o644)
	d.code(exitUsage, "register", "alice@example.com", "--registrar-key", loose)
}
