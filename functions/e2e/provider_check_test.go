package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/oidc"
	"github.com/conifer-kt/conifer/realm"
)

// TestProviderTokens checks the real provider's tokens against package
// oidc alone (no emulators): the good token passes, and the three bad ones
// the end-to-end test sends fail the check they are meant to fail.
func TestProviderTokens(t *testing.T) {
	ctx := context.Background()
	p := startProvider(t,
		providerUser{"carol", "pw-carol", "carol@example.com", true},
		providerUser{"dave", "pw-dave", "dave@example.com", false})
	v := oidc.New(&realm.Config{Registration: realm.Registration{OIDC: []realm.OIDCProvider{
		{Issuer: p.issuer, Audiences: []string{appClient}},
	}}}, oidc.Options{})
	nonce := format.OIDCNonce(sha256.Sum256([]byte("entry")))
	cases := []struct {
		name, client, user, pw, userID, nonce, check string
	}{
		{"good", appClient, "carol", "pw-carol", "carol@example.com", nonce, ""},
		{"wrong nonce", appClient, "carol", "pw-carol", "carol@example.com", format.OIDCNonce([32]byte{1}), "nonce"},
		{"wrong audience", otherClient, "carol", "pw-carol", "carol@example.com", nonce, "audience"},
		{"unverified email", appClient, "dave", "pw-dave", "dave@example.com", nonce, "email_verified"},
		{"other user", appClient, "carol", "pw-carol", "dave@example.com", nonce, "email"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := p.idToken(ctx, c.client, c.user, c.pw, c.nonce)
			if err != nil {
				t.Fatal(err)
			}
			iss, err := v.Verify(ctx, tok, c.userID, nonce)
			if c.check == "" {
				if err != nil || iss != p.issuer {
					t.Fatalf("issuer %q, err %v", iss, err)
				}
				return
			}
			var e *oidc.Error
			if !errors.As(err, &e) || e.Check != c.check {
				t.Fatalf("err %v, want check %s", err, c.check)
			}
		})
	}
	if _, err := p.idToken(ctx, appClient, "carol", "wrong", nonce); err == nil {
		t.Fatal("a wrong password got a token")
	}
}
