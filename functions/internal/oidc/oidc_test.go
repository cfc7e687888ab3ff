package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
)

// issuer is a real OpenID provider as far as a relying party can tell:
// discovery document and JWKS over HTTP, ES256-signed JWTs. Tests mint
// tokens with any claims.
type issuer struct {
	t    *testing.T
	srv  *httptest.Server
	key  *ecdsa.PrivateKey
	kid  string
	down atomic.Bool // answer 503 to everything
	hits atomic.Int64
}

// deterministicKey derives a P-256 key from a label (tests need no
// randomness for keys).
func deterministicKey(label string) *ecdsa.PrivateKey {
	h := sha256.Sum256([]byte(label))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:])
	if err != nil {
		panic(err)
	}
	return k
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{t: t, key: deterministicKey("issuer-key"), kid: "k1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                is.srv.URL,
			"authorization_endpoint":                is.srv.URL + "/auth",
			"token_endpoint":                        is.srv.URL + "/token",
			"jwks_uri":                              is.srv.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
			Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "ES256", Use: "sig",
		}}})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// mint signs claims with key (the issuer's unless another is given).
func (is *issuer) mint(claims map[string]any, key *ecdsa.PrivateKey, kid string) string {
	is.t.Helper()
	if key == nil {
		key, kid = is.key, is.kid
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		is.t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		is.t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		is.t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		is.t.Fatal(err)
	}
	return s
}

var (
	testNow   = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	entryHash = sha256.Sum256([]byte("entry"))
	nonce     = format.OIDCNonce(entryHash)
)

const userID = "alice@example.com"

func (is *issuer) claims() map[string]any {
	return map[string]any{
		"iss":            is.srv.URL,
		"sub":            "user-1",
		"aud":            "conifer-app",
		"exp":            testNow.Add(time.Hour).Unix(),
		"iat":            testNow.Add(-time.Minute).Unix(),
		"email":          userID,
		"email_verified": true,
		"nonce":          nonce,
	}
}

func (is *issuer) realm() *realm.Config {
	return &realm.Config{Realm: "example.com", Registration: realm.Registration{OIDC: []realm.OIDCProvider{
		{Issuer: is.srv.URL, Audiences: []string{"conifer-app", "conifer-web"}},
	}}}
}

func newVerifier(is *issuer, now *time.Time) *Verifier {
	return New(is.realm(), Options{Now: func() time.Time { return *now }})
}

func TestVerify(t *testing.T) {
	is := newIssuer(t)
	now := testNow
	v := newVerifier(is, &now)
	ctx := context.Background()
	other := deterministicKey("other-key")

	type tc struct {
		name   string
		edit   func(c map[string]any)
		token  func() string
		userID string
		check  string // "" = accepted
	}
	cases := []tc{
		{name: "valid"},
		{name: "two audiences with azp", edit: func(c map[string]any) {
			c["aud"] = []string{"conifer-app", "other"}
			c["azp"] = "conifer-app"
		}},
		{name: "second accepted audience", edit: func(c map[string]any) { c["aud"] = "conifer-web" }},
		{name: "unknown issuer", edit: func(c map[string]any) { c["iss"] = "https://evil.example" }, check: "issuer"},
		{name: "no issuer", edit: func(c map[string]any) { delete(c, "iss") }, check: "issuer"},
		{name: "wrong audience", edit: func(c map[string]any) { c["aud"] = "other-app" }, check: "audience"},
		{name: "two audiences no azp", edit: func(c map[string]any) { c["aud"] = []string{"conifer-app", "other"} }, check: "audience"},
		{name: "azp not accepted", edit: func(c map[string]any) { c["azp"] = "other" }, check: "audience"},
		{name: "email not verified", edit: func(c map[string]any) { c["email_verified"] = false }, check: "email_verified"},
		{name: "email_verified missing", edit: func(c map[string]any) { delete(c, "email_verified") }, check: "email_verified"},
		{name: "email_verified string", edit: func(c map[string]any) { c["email_verified"] = "true" }, check: "email_verified"},
		{name: "email_verified number", edit: func(c map[string]any) { c["email_verified"] = 1 }, check: "email_verified"},
		{name: "other email", edit: func(c map[string]any) { c["email"] = "bob@example.com" }, check: "email"},
		{name: "email case differs", edit: func(c map[string]any) { c["email"] = "Alice@example.com" }, check: "email"},
		{name: "no email", edit: func(c map[string]any) { delete(c, "email") }, check: "email"},
		{name: "wrong nonce", edit: func(c map[string]any) { c["nonce"] = format.OIDCNonce(sha256.Sum256([]byte("other entry"))) }, check: "nonce"},
		{name: "no nonce", edit: func(c map[string]any) { delete(c, "nonce") }, check: "nonce"},
		{name: "expired", edit: func(c map[string]any) { c["exp"] = testNow.Add(-time.Second).Unix() }, check: "expiry"},
		{name: "not yet valid", edit: func(c map[string]any) { c["nbf"] = testNow.Add(time.Hour).Unix() }, check: "expiry"},
		{name: "other key same kid", token: func() string { return is.mint(is.claims(), other, is.kid) }, check: "signature"},
		{name: "other key unknown kid", token: func() string { return is.mint(is.claims(), other, "k2") }, check: "signature"},
		{name: "user id differs", userID: "bob@example.com", check: "email"},
		{name: "not a JWS", token: func() string { return "abc" }, check: "format"},
		{name: "payload not base64", token: func() string { return "a.%%%.c" }, check: "format"},
		{name: "payload not JSON", token: func() string { return "a." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".c" }, check: "format"},
		{name: "too long", token: func() string { return strings.Repeat("a", MaxTokenBytes+1) }, check: "format"},
		{name: "alg none", token: func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
			p, _ := json.Marshal(is.claims())
			return h + "." + base64.RawURLEncoding.EncodeToString(p) + "."
		}, check: "signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tok string
			if c.token != nil {
				tok = c.token()
			} else {
				cl := is.claims()
				if c.edit != nil {
					c.edit(cl)
				}
				tok = is.mint(cl, nil, "")
			}
			uid := userID
			if c.userID != "" {
				uid = c.userID
			}
			iss, err := v.Verify(ctx, tok, uid, nonce)
			if c.check == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if iss != is.srv.URL {
					t.Fatalf("issuer %q, want %q", iss, is.srv.URL)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrRejected) {
				t.Fatalf("err = %v, want a rejection (%s)", err, c.check)
			}
			if e.Check != c.check {
				t.Fatalf("check %q (%v), want %q", e.Check, err, c.check)
			}
			if strings.Contains(err.Error(), userID) || strings.Contains(err.Error(), tok) {
				t.Fatalf("error leaks the user id or token: %v", err)
			}
		})
	}
}

// TestBitFlips: flipping any bit of a valid token's payload or signature
// must make it fail.
func TestBitFlips(t *testing.T) {
	is := newIssuer(t)
	now := testNow
	v := newVerifier(is, &now)
	tok := is.mint(is.claims(), nil, "")
	if _, err := v.Verify(context.Background(), tok, userID, nonce); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	for p := 1; p <= 2; p++ {
		raw, err := base64.RawURLEncoding.DecodeString(parts[p])
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(raw)*8; i += 7 {
			mod := append([]byte(nil), raw...)
			mod[i/8] ^= 1 << (i % 8)
			q := append([]string(nil), parts...)
			q[p] = base64.RawURLEncoding.EncodeToString(mod)
			if _, err := v.Verify(context.Background(), strings.Join(q, "."), userID, nonce); err == nil {
				t.Fatalf("part %d bit %d flipped: accepted", p, i)
			}
		}
	}
}

func TestUnavailable(t *testing.T) {
	is := newIssuer(t)
	now := testNow
	v := newVerifier(is, &now)
	tok := is.mint(is.claims(), nil, "")
	is.down.Store(true)
	_, err := v.Verify(context.Background(), tok, userID, nonce)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRejected) {
		t.Fatalf("provider down: %v, want ErrUnavailable", err)
	}
	// Within RetryDiscovery, no new request reaches the provider.
	hits := is.hits.Load()
	is.down.Store(false)
	if _, err := v.Verify(context.Background(), tok, userID, nonce); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("retry too soon: %v", err)
	}
	if is.hits.Load() != hits {
		t.Fatal("discovery retried before RetryDiscovery")
	}
	now = now.Add(RetryDiscovery)
	if _, err := v.Verify(context.Background(), tok, userID, nonce); err != nil {
		t.Fatalf("after RetryDiscovery: %v", err)
	}
	// Discovery is cached from now on.
	hits = is.hits.Load()
	if _, err := v.Verify(context.Background(), tok, userID, nonce); err != nil {
		t.Fatal(err)
	}
	if is.hits.Load() != hits {
		t.Fatal("cached discovery and keys fetched again")
	}
}

func TestNoProviders(t *testing.T) {
	is := newIssuer(t)
	v := New(&realm.Config{Realm: "r"}, Options{})
	_, err := v.Verify(context.Background(), is.mint(is.claims(), nil, ""), userID, nonce)
	var e *Error
	if !errors.As(err, &e) || e.Check != "issuer" {
		t.Fatalf("%v", err)
	}
	if is.hits.Load() != 0 {
		t.Fatal("an issuer not in the realm was contacted")
	}
}

func TestInvoker(t *testing.T) {
	is := newIssuer(t)
	now := testNow
	const sa = "epoch-invoker@p.iam.gserviceaccount.com"
	inv := NewInvoker(sa, is.srv.URL, Options{Now: func() time.Time { return now }})
	req := func(tok string) *http.Request {
		r := httptest.NewRequest("POST", "/Epoch", nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		return r
	}
	good := is.claims()
	good["email"] = sa
	good["aud"] = "https://epoch.example.run.app"
	if err := inv.Check(context.Background(), req(is.mint(good, nil, ""))); err != nil {
		t.Fatalf("good token: %v", err)
	}
	for name, edit := range map[string]func(map[string]any){
		"other account": func(c map[string]any) { c["email"] = "someone@p.iam.gserviceaccount.com" },
		"unverified":    func(c map[string]any) { c["email_verified"] = false },
		"expired":       func(c map[string]any) { c["exp"] = testNow.Add(-time.Hour).Unix() },
		"other issuer":  func(c map[string]any) { c["iss"] = "https://accounts.example" },
	} {
		c := is.claims()
		c["email"] = sa
		edit(c)
		if err := inv.Check(context.Background(), req(is.mint(c, nil, ""))); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: %v, want rejection", name, err)
		}
	}
	if err := inv.Check(context.Background(), req("")); !errors.Is(err, ErrRejected) {
		t.Errorf("no token: %v", err)
	}
}

// FuzzUnverifiedIssuer: the pre-parse never panics, and accepts only
// three-part tokens whose payload decodes to an object with that issuer.
func FuzzUnverifiedIssuer(f *testing.F) {
	f.Add("a.eyJpc3MiOiJodHRwczovL3guZXhhbXBsZSJ9.c")
	f.Add("..")
	f.Add("a.e30.c")
	f.Add("a.bnVsbA.c")
	f.Fuzz(func(t *testing.T, s string) {
		iss, err := unverifiedIssuer(s)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error not a rejection: %v", err)
			}
			return
		}
		parts := strings.Split(s, ".")
		if len(parts) != 3 || iss == "" {
			t.Fatalf("accepted %q", s)
		}
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c struct{ Iss string }
		if json.Unmarshal(b, &c) != nil || c.Iss != iss {
			t.Fatalf("issuer %q not the payload's", iss)
		}
	})
}
