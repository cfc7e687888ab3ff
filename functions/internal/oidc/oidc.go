// Package oidc checks the OpenID Connect ID tokens that authorise
// registrations: the update function accepts a new user whose first entry
// comes with an ID token, issued by one of the realm's providers, that says
// the provider verified the user id as the user's email address and that
// is bound to exactly that entry by its nonce.
//
// A token is accepted iff, in this order (the first failure is reported):
//
//  1. it is a compact JWS of at most MaxTokenBytes whose payload names an
//     issuer ("iss") that is exactly one of the realm's providers (no
//     network request is made for any other issuer, so a token cannot make
//     the keyserver fetch arbitrary URLs);
//  2. its signature verifies under the provider's published keys (OpenID
//     Connect Discovery at issuer + "/.well-known/openid-configuration",
//     then its jwks_uri; both cached, keys refreshed when an unknown key id
//     appears), with one of the algorithms the provider lists, and iss
//     equals the provider's issuer — all by github.com/coreos/go-oidc/v3;
//  3. it has not expired and its nbf (if any) has passed (go-oidc, with the
//     server's clock);
//  4. its audience ("aud") contains one of the provider's audiences from the
//     realm config, and if it has several audiences or an authorised party
//     ("azp"), azp is present and is one of those audiences (OpenID Connect
//     Core §3.1.3.7, steps 3–5);
//  5. "email_verified" is the JSON boolean true;
//  6. "email" equals the user id byte for byte (no case folding: user ids
//     are VRF inputs, and two spellings would be two users);
//  7. "nonce" equals format.OIDCNonce(entry hash) byte for byte, so the
//     token authorises this entry only, not any other entry for the same
//     email (coname did not bind tokens to entries; Conifer does).
//
// A token that fails a check is an *Error wrapping ErrRejected (HTTP 403);
// a provider that cannot be reached (discovery or key fetch failing) gives
// an error wrapping ErrUnavailable (HTTP 503), and discovery is retried no
// sooner than RetryDiscovery later. Errors never contain the token or its
// claims (which hold the user's email): only which check failed.
//
// The log keeps none of this: the registration record carries only the
// issuer (format.Registration of kind oidc), which verifiers check against
// the realm's issuers.
package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/conifer-kt/conifer/realm"
)

// MaxTokenBytes caps an ID token's length.
const MaxTokenBytes = 16 << 10

// RetryDiscovery is the shortest time between two discovery attempts for a
// provider whose discovery failed.
const RetryDiscovery = 5 * time.Second

// Sentinel errors.
var (
	// ErrRejected: the token does not authorise the registration.
	ErrRejected = errors.New("ID token rejected")
	// ErrUnavailable: the provider's discovery document or keys could not
	// be fetched; the token may be fine.
	ErrUnavailable = errors.New("OpenID provider unavailable")
)

// Error is a rejected token: which check failed, in words that contain no
// claim values.
type Error struct {
	// Check names the failed check: "format", "issuer", "signature",
	// "expiry", "audience", "email_verified", "email" or "nonce".
	Check  string
	Reason string
}

// Error returns "ID token rejected: <check>: <reason>".
func (e *Error) Error() string { return ErrRejected.Error() + ": " + e.Check + ": " + e.Reason }

// Unwrap returns ErrRejected.
func (e *Error) Unwrap() error { return ErrRejected }

func reject(check, format string, args ...any) *Error {
	return &Error{Check: check, Reason: fmt.Sprintf(format, args...)}
}

// Options configure a Verifier.
type Options struct {
	// HTTPClient fetches discovery documents and keys (default: a client
	// with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock for expiry checks (default time.Now).
	Now func() time.Time
}

// Verifier checks ID tokens against a realm's OpenID providers. It is safe
// for concurrent use; discovery happens on first use of each provider.
type Verifier struct {
	client    *http.Client
	now       func() time.Time
	providers map[string]*provider
}

type provider struct {
	conf realm.OIDCProvider

	mu       sync.Mutex
	verifier *gooidc.IDTokenVerifier
	lastTry  time.Time
	lastErr  error
}

// New returns a Verifier for the realm's providers (none: every token is
// rejected).
func New(c *realm.Config, opts Options) *Verifier {
	v := &Verifier{client: opts.HTTPClient, now: opts.Now, providers: map[string]*provider{}}
	if v.client == nil {
		v.client = &http.Client{Timeout: 10 * time.Second}
	}
	if v.now == nil {
		v.now = time.Now
	}
	for _, p := range c.Registration.OIDC {
		v.providers[p.Issuer] = &provider{conf: p}
	}
	return v
}

// claims are the ID token claims Conifer reads. EmailVerified is raw so
// that only the JSON literal true is accepted.
type claims struct {
	Email         string          `json:"email"`
	EmailVerified json.RawMessage `json:"email_verified"`
	Nonce         string          `json:"nonce"`
	AZP           *string         `json:"azp"`
}

// Verify checks rawToken as the package doc describes, for the registration
// of userID whose entry has the nonce format.OIDCNonce(entry hash), and
// returns the issuer that vouched for it.
func (v *Verifier) Verify(ctx context.Context, rawToken, userID, nonce string) (issuer string, err error) {
	iss, err := unverifiedIssuer(rawToken)
	if err != nil {
		return "", err
	}
	p, ok := v.providers[iss]
	if !ok {
		return "", reject("issuer", "the issuer is not one of the realm's OpenID providers")
	}
	verifier, err := v.discover(ctx, p)
	if err != nil {
		return "", err
	}
	tok, err := verifier.Verify(gooidc.ClientContext(ctx, v.client), rawToken)
	if err != nil {
		var expired *gooidc.TokenExpiredError
		switch {
		case errors.As(err, &expired):
			return "", reject("expiry", "the token expired at %s", expired.Expiry.UTC().Format(time.RFC3339))
		case ctx.Err() != nil:
			return "", fmt.Errorf("couldn't verify ID token: %w", ctx.Err())
		case isFetchError(err):
			return "", fmt.Errorf("%w: couldn't fetch the provider's keys: %v", ErrUnavailable, err)
		case strings.Contains(err.Error(), "before the nbf"):
			return "", reject("expiry", "the token is not valid yet (nbf)")
		}
		return "", reject("signature", "%s", redact(err))
	}
	var c claims
	if err := tok.Claims(&c); err != nil {
		return "", reject("format", "couldn't decode the claims: %v", err)
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(p.conf.Audiences, a) }) {
		return "", reject("audience", "no audience of the token is a client id the realm accepts for this issuer")
	}
	if len(tok.Audience) > 1 || c.AZP != nil {
		if c.AZP == nil {
			return "", reject("audience", "a token with several audiences must name its authorised party (azp)")
		}
		if !slices.Contains(p.conf.Audiences, *c.AZP) {
			return "", reject("audience", "the authorised party (azp) is not a client id the realm accepts")
		}
	}
	if string(c.EmailVerified) != "true" {
		return "", reject("email_verified", "the provider does not say the email address is verified (email_verified must be true)")
	}
	if c.Email != userID {
		return "", reject("email", "the token's email is not the user id")
	}
	if c.Nonce != nonce {
		return "", reject("nonce", "the token's nonce is not format.OIDCNonce of this entry's hash")
	}
	return p.conf.Issuer, nil
}

// discover returns the provider's token verifier, fetching its discovery
// document on first use.
func (v *Verifier) discover(ctx context.Context, p *provider) (*gooidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.verifier != nil {
		return p.verifier, nil
	}
	now := v.now()
	if p.lastErr != nil && now.Sub(p.lastTry) < RetryDiscovery {
		return nil, fmt.Errorf("%w: discovery of %s failed %v ago: %v", ErrUnavailable, p.conf.Issuer, now.Sub(p.lastTry).Round(time.Millisecond), p.lastErr)
	}
	p.lastTry = now
	gp, err := gooidc.NewProvider(gooidc.ClientContext(ctx, v.client), p.conf.Issuer)
	if err != nil {
		p.lastErr = err
		return nil, fmt.Errorf("%w: couldn't discover %s: %v", ErrUnavailable, p.conf.Issuer, err)
	}
	p.lastErr = nil
	// The audience is checked by Verify against every accepted client id.
	p.verifier = gp.Verifier(&gooidc.Config{SkipClientIDCheck: true, Now: v.now})
	return p.verifier, nil
}

// unverifiedIssuer reads "iss" from a compact JWS without checking it: only
// to choose the provider whose keys then check everything.
func unverifiedIssuer(raw string) (string, error) {
	if len(raw) > MaxTokenBytes {
		return "", reject("format", "the token is %d bytes, more than %d", len(raw), MaxTokenBytes)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", reject("format", "not a compact JWS (three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", reject("format", "the payload is not base64url")
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", reject("format", "the payload is not a JSON object with a string iss")
	}
	if c.Iss == "" {
		return "", reject("issuer", "the token has no issuer")
	}
	return c.Iss, nil
}

// isFetchError reports whether go-oidc failed to fetch the key set (as
// opposed to finding the token bad).
func isFetchError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "fetching keys") || strings.Contains(s, "get keys failed")
}

// redact keeps go-oidc's error text but drops anything after a colon that
// could quote claim values (its issuer and audience messages quote them).
func redact(err error) string {
	s := err.Error()
	if i := strings.Index(s, "expected"); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
