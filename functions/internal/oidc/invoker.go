package oidc

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
)

// GoogleIssuer is the issuer of Google-signed ID tokens, such as those
// Cloud Scheduler attaches to the requests it sends as a service account.
const GoogleIssuer = "https://accounts.google.com"

// Invoker checks that an HTTP request carries a Google-signed ID token of
// one service account: the epoch function's second check of its caller
// (Cloud Run's IAM check, which admits only the scheduler's account, is the
// first). The token's audience is the function's URL, which Cloud Run has
// already matched; Invoker checks the signature, issuer, expiry, that
// email_verified is true and that email is the configured account.
type Invoker struct {
	email  string
	issuer string
	client *http.Client
	now    func() time.Time

	mu       sync.Mutex
	verifier *gooidc.IDTokenVerifier
	lastTry  time.Time
	lastErr  error
}

// NewInvoker returns an Invoker for the service account email whose tokens
// come from issuer (GoogleIssuer in production).
func NewInvoker(email, issuer string, opts Options) *Invoker {
	inv := &Invoker{email: email, issuer: issuer, client: opts.HTTPClient, now: opts.Now}
	if inv.client == nil {
		inv.client = &http.Client{Timeout: 10 * time.Second}
	}
	if inv.now == nil {
		inv.now = time.Now
	}
	return inv
}

// Check verifies the request's "Authorization: Bearer <ID token>". A
// missing or bad token is an *Error (ErrRejected); an unreachable issuer
// wraps ErrUnavailable.
func (inv *Invoker) Check(ctx context.Context, r *http.Request) error {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return reject("format", "no bearer ID token in the Authorization header")
	}
	if len(raw) > MaxTokenBytes {
		return reject("format", "the token is more than %d bytes", MaxTokenBytes)
	}
	v, err := inv.discover(ctx)
	if err != nil {
		return err
	}
	tok, err := v.Verify(gooidc.ClientContext(ctx, inv.client), raw)
	if err != nil {
		if isFetchError(err) {
			return fmt.Errorf("%w: couldn't fetch %s keys: %v", ErrUnavailable, inv.issuer, err)
		}
		return reject("signature", "%s", redact(err))
	}
	var c claims
	if err := tok.Claims(&c); err != nil {
		return reject("format", "couldn't decode the claims: %v", err)
	}
	if string(c.EmailVerified) != "true" {
		return reject("email_verified", "email_verified is not true")
	}
	if c.Email != inv.email {
		return reject("email", "the caller is not the configured epoch invoker")
	}
	return nil
}

func (inv *Invoker) discover(ctx context.Context) (*gooidc.IDTokenVerifier, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.verifier != nil {
		return inv.verifier, nil
	}
	now := inv.now()
	if inv.lastErr != nil && now.Sub(inv.lastTry) < RetryDiscovery {
		return nil, fmt.Errorf("%w: discovery of %s failed recently: %v", ErrUnavailable, inv.issuer, inv.lastErr)
	}
	inv.lastTry = now
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, inv.client), inv.issuer)
	if err != nil {
		inv.lastErr = err
		return nil, fmt.Errorf("%w: couldn't discover %s: %v", ErrUnavailable, inv.issuer, err)
	}
	inv.lastErr = nil
	inv.verifier = p.Verifier(&gooidc.Config{SkipClientIDCheck: true, Now: inv.now})
	return inv.verifier, nil
}
