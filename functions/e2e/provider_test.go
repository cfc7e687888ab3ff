package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	zstorage "github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
	"golang.org/x/text/language"
)

// provider is a real OpenID provider on localhost: zitadel/oidc's op
// package with the in-memory storage and login UI of its example server.
// Tokens are obtained through the authorization-code flow, as a browser
// and a relying party would: authorize → login form → callback → code →
// token endpoint.
type provider struct {
	srv    *httptest.Server
	issuer string
}

// Clients registered at the provider. appClient is the realm's audience;
// otherClient is a client the realm does not accept.
const (
	appClient    = "conifer-app"
	otherClient  = "other-app"
	clientSecret = "secret"
	redirectURI  = "http://127.0.0.1:1/callback" // never visited: the flow stops at the redirect
)

// providerUser is an account at the provider.
type providerUser struct {
	username, password, email string
	verified                  bool
}

// userStore implements the example storage's UserStore with our accounts.
type userStore map[string]*zstorage.User

func (u userStore) GetUserByID(id string) *zstorage.User { return u[id] }
func (u userStore) GetUserByUsername(name string) *zstorage.User {
	for _, x := range u {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (u userStore) ExampleClientID() string { return zstorage.ServiceUserID }

// claimsInIDToken makes the example storage's clients put the userinfo
// claims (email, email_verified) into the ID token itself, which is where a
// relying party that gets no userinfo reads them.
type claimsInIDToken struct{ *zstorage.Storage }

type assertingClient struct{ op.Client }

func (assertingClient) IDTokenUserinfoClaimsAssertion() bool { return true }

func (s claimsInIDToken) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return assertingClient{c}, nil
}

func startProvider(t testing.TB, users ...providerUser) *provider {
	t.Helper()
	store := userStore{}
	for i, u := range users {
		id := fmt.Sprintf("id%d", i)
		store[id] = &zstorage.User{
			ID: id, Username: u.username, Password: u.password, FirstName: "Test", LastName: u.username,
			Email: u.email, EmailVerified: u.verified, PreferredLanguage: language.English,
		}
	}
	clients := map[string]*zstorage.Client{
		appClient:   zstorage.WebClient(appClient, clientSecret, redirectURI),
		otherClient: zstorage.WebClient(otherClient, clientSecret, redirectURI),
	}
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	srv.Config.Handler = exampleop.SetupServer(issuer, claimsInIDToken{zstorage.NewStorageWithClients(store, clients)}, nil, false)
	srv.Start()
	t.Cleanup(srv.Close)
	return &provider{srv: srv, issuer: issuer}
}

// idToken logs username in through the authorization-code flow for client
// and returns the ID token the token endpoint issues, carrying nonce.
func (p *provider) idToken(ctx context.Context, client, username, password, nonce string) (string, error) {
	rp, err := gooidc.NewProvider(ctx, p.issuer)
	if err != nil {
		return "", fmt.Errorf("couldn't discover the provider: %w", err)
	}
	conf := oauth2.Config{
		ClientID: client, ClientSecret: clientSecret, Endpoint: rp.Endpoint(),
		RedirectURL: redirectURI, Scopes: []string{gooidc.ScopeOpenID, "email"},
	}
	// The "browser": follows redirects within the provider, stops at the
	// relying party's redirect URI.
	browser := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURI) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	const state = "state-1"
	resp, err := browser.Get(conf.AuthCodeURL(state, gooidc.Nonce(nonce)))
	if err != nil {
		return "", fmt.Errorf("couldn't start authorization: %w", err)
	}
	resp.Body.Close()
	authReq := resp.Request.URL.Query().Get("authRequestID")
	if resp.StatusCode != http.StatusOK || authReq == "" {
		return "", fmt.Errorf("authorization did not reach the login page (%s, %s)", resp.Status, resp.Request.URL)
	}
	resp, err = browser.PostForm(p.issuer+"/login/username", url.Values{
		"id": {authReq}, "username": {username}, "password": {password},
	})
	if err != nil {
		return "", fmt.Errorf("couldn't log in: %w", err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || resp.StatusCode != http.StatusFound {
		return "", fmt.Errorf("login did not redirect to the relying party (%s)", resp.Status)
	}
	if loc.Query().Get("state") != state {
		return "", errors.New("state not returned")
	}
	code := loc.Query().Get("code")
	if code == "" {
		return "", fmt.Errorf("no code in the redirect: %s", loc.RawQuery)
	}
	tok, err := conf.Exchange(ctx, code)
	if err != nil {
		return "", fmt.Errorf("couldn't exchange the code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return "", errors.New("no id_token in the token response")
	}
	return raw, nil
}
