package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/vrf"
)

// key returns the test key named label.
func key(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("conifer/e2e/" + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// keys are a test realm's private keys.
type keys struct {
	vrf       *vrf.PrivateKey
	registrar ed25519.PrivateKey
	cosigners []*checkpoint.Cosigner
}

func newKeys(t testing.TB, realmName string, verifiers int) *keys {
	seed := sha256.Sum256([]byte("conifer/e2e/vrf/" + realmName))
	vk, err := vrf.NewPrivateKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	k := &keys{vrf: vk, registrar: key(realmName + "/registrar")}
	for i := range verifiers {
		ks, err := checkpoint.NewKeySigner(key(fmt.Sprintf("%s/verifier/%d", realmName, i)))
		if err != nil {
			t.Fatal(err)
		}
		c, err := checkpoint.NewCosigner(fmt.Sprintf("verifier%d.example/v1", i), ks, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		k.cosigners = append(k.cosigners, c)
	}
	return k
}

// realmConfig returns the realm's public config.
func (k *keys) realmConfig(name, logKey string, quorum int, oidc []realm.OIDCProvider) *realm.Config {
	rc := &realm.Config{
		Realm: name, VRFPublicKey: k.vrf.Public().Bytes(), LogKey: logKey, Quorum: quorum,
		MinEpochInterval: realm.Duration{Duration: time.Millisecond},
		MaxEpochInterval: realm.Duration{Duration: time.Hour},
		MaxHeadAge:       realm.Duration{Duration: 2 * time.Hour},
		Registration: realm.Registration{
			Registrars: [][]byte{k.registrar.Public().(ed25519.PublicKey)},
			OIDC:       oidc,
		},
	}
	for _, c := range k.cosigners {
		rc.Verifiers = append(rc.Verifiers, c.VerifierKey())
	}
	return rc
}

// user is one identity and the keys of its versions.
type user struct {
	id    string
	index [32]byte
	keys  []ed25519.PrivateKey // keys[v-1] holds version v's policy
	prev  [32]byte
}

func newUser(rc *realm.Config, vk *vrf.PrivateKey, id string) *user {
	alpha, err := vrf.Input(rc.Realm, id)
	if err != nil {
		panic(err)
	}
	beta, _ := vk.Prove(alpha)
	return &user{id: id, index: vrf.Index(beta)}
}

// pending is a built update: the request and what the user becomes if it
// is applied.
type pending struct {
	req   *api.UpdateRequest
	hash  [32]byte
	key   ed25519.PrivateKey
	entry *format.Entry
}

// next builds the user's next version (policy 1-of-{a fresh key}, a
// profile with one "pgp" key), signed by the new key and the current one.
// A registration gets no authorisation: the caller adds one.
func (u *user) next(t testing.TB, realmName string, tombstone bool, signers ...ed25519.PrivateKey) *pending {
	t.Helper()
	v := uint64(len(u.keys) + 1)
	nk := key(fmt.Sprintf("%s/%s/%d", realmName, u.id, v))
	e := &format.Entry{Realm: realmName, Index: u.index, Version: v, Prev: u.prev,
		Policy: format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{nk.Public().(ed25519.PublicKey)}}, Tombstone: tombstone}
	req := &api.UpdateRequest{UserID: u.id}
	if !tombstone {
		p := &format.Profile{}
		if err := p.Set("pgp", fmt.Appendf(nil, "pgp key %d of %s", v, u.id)); err != nil {
			t.Fatal(err)
		}
		pb, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		opening := sha256.Sum256(fmt.Appendf(nil, "opening %s %d", u.id, v))
		e.Commitment = format.CommitProfile([16]byte(opening[:16]), pb)
		req.Profile, req.Opening = pb, opening[:16]
	}
	eb, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h := format.EntryHash(eb)
	if signers == nil {
		signers = []ed25519.PrivateKey{nk}
		if v > 1 {
			signers = append(signers, u.keys[v-2])
		}
	}
	var sigs []format.Signature
	for _, k := range signers {
		sigs = append(sigs, format.SignEntry(k, h))
	}
	format.SortSignatures(sigs)
	if req.SignedEntry, err = (&format.SignedEntry{Entry: eb, Signatures: sigs}).Marshal(); err != nil {
		t.Fatal(err)
	}
	return &pending{req: req, hash: h, key: nk, entry: e}
}

// withRegistrar adds a registrar signature by k.
func (p *pending) withRegistrar(k ed25519.PrivateKey) *pending {
	s := format.SignRegistration(k, p.hash)
	p.req.RegistrarSignature = append(s.KeyID[:], s.Sig[:]...)
	return p
}

// applied records that p went through.
func (u *user) applied(p *pending) {
	u.keys = append(u.keys, p.key)
	u.prev = p.hash
}

// httpClient talks JSON to a function base URL.
type httpClient struct {
	t    testing.TB
	base string
	hc   *http.Client
}

// result is an HTTP answer: status, body, and the api.Error if not 2xx.
type result struct {
	status int
	body   []byte
	err    *api.Error
	header http.Header
	fault  string // the call itself failed
}

func (c *httpClient) call(ctx context.Context, method, path string, body any) result {
	c.t.Helper()
	r := c.callNoFatal(ctx, method, path, body)
	if r.fault != "" {
		c.t.Fatal(r.fault)
	}
	return r
}

// callNoFatal is call for other goroutines: failures are in result.fault.
func (c *httpClient) callNoFatal(ctx context.Context, method, path string, body any) result {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return result{fault: err.Error()}
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return result{fault: err.Error()}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return result{fault: fmt.Sprintf("%s %s: %v", method, path, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{fault: err.Error()}
	}
	r := result{status: resp.StatusCode, body: b, header: resp.Header}
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusGatewayTimeout {
		var e api.Error
		if err := json.Unmarshal(b, &e); err != nil || e.Code == "" {
			r.fault = fmt.Sprintf("%s %s: %d with a body that is not an api.Error: %q", method, path, resp.StatusCode, b)
		}
		r.err = &e
	}
	return r
}

// ok calls and decodes a 200 answer strictly into out.
func (c *httpClient) ok(ctx context.Context, method, path string, body, out any) {
	c.t.Helper()
	r := c.call(ctx, method, path, body)
	if r.status != http.StatusOK {
		c.t.Fatalf("%s %s: %d %+v", method, path, r.status, r.err)
	}
	if out == nil {
		return
	}
	if b, ok := out.(*[]byte); ok {
		*b = r.body
		return
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
}

// fail calls and checks the answer is the error status/code.
func (c *httpClient) fail(ctx context.Context, method, path string, body any, status int, code string) *api.Error {
	c.t.Helper()
	r := c.call(ctx, method, path, body)
	if r.status != status || r.err == nil || r.err.Code != code {
		c.t.Fatalf("%s %s: %d %+v, want %d %s", method, path, r.status, r.err, status, code)
	}
	if (status == 429 || status == 503) && r.header.Get("Retry-After") == "" {
		c.t.Fatalf("%s %s: %d without Retry-After", method, path, status)
	}
	if strings.Contains(r.err.Message, "\x00") {
		c.t.Fatal("binary in an error message")
	}
	return r.err
}
