// Package realm defines the public configuration of a Conifer realm: the
// document clients pin out of band (shipped with the app, like a CA bundle)
// and the keyserver and verifiers load.
//
// The file is JSON. Every field is documented on Config; an example:
//
//	{
//	  "realm": "example.com/conifer",
//	  "vrf_public_key": "base64 of 32 bytes",
//	  "log_key": "example.com/conifer+1a2b3c4d+AQ...",
//	  "verifiers": ["verifier-1.example.net+5e6f7a8b+BA..."],
//	  "quorum": 1,
//	  "min_epoch_interval": "1s",
//	  "max_epoch_interval": "1m",
//	  "max_head_age": "10m",
//	  "registration": {
//	    "registrars": ["base64 of a 32-byte Ed25519 public key"],
//	    "oidc": [{"issuer": "https://accounts.example.com", "audiences": ["client-id"]}]
//	  }
//	}
//
// The realm config carries no secrets. The server's private settings (where
// its database, keys and topics live) are in the functions' own config.
package realm

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"filippo.io/edwards25519"
)

// Config is the public realm configuration.
type Config struct {
	// Realm names the realm. It is the C2SP checkpoint origin, part of every
	// entry (so entries cannot be replayed across realms) and of the VRF input.
	// 1..128 bytes of [A-Za-z0-9._/:-]. Required.
	Realm string `json:"realm"`
	// VRFPublicKey is the 32-byte ECVRF-EDWARDS25519-SHA512-TAI public key
	// that maps user ids to tree indexes. Required.
	VRFPublicKey []byte `json:"vrf_public_key"`
	// LogKey is the keyserver's C2SP signed-note verifier key (Ed25519,
	// "name+hash+base64"), whose signature every checkpoint must carry. Required.
	LogKey string `json:"log_key"`
	// Verifiers are the third-party verifiers' tlog-cosignature/v1 verifier
	// keys. Optional (a realm without verifiers offers no co-signing).
	Verifiers []string `json:"verifiers,omitempty"`
	// Quorum is how many distinct Verifiers must have co-signed a checkpoint
	// before a client accepts it. 0 ≤ Quorum ≤ len(Verifiers). Default 0;
	// 0 with verifiers configured is allowed but means clients trust the
	// keyserver alone for non-equivocation (unsafe; say so to your users).
	Quorum int `json:"quorum"`
	// MinEpochInterval is the shortest time between two epochs: an epoch is
	// cut once it has passed and updates are waiting. Default 1s.
	MinEpochInterval Duration `json:"min_epoch_interval"`
	// MaxEpochInterval is the longest time between two epochs: an epoch is
	// cut once it has passed even with no update waiting, so clients can
	// tell a fresh head from a withheld one. Default 1m; ≥ MinEpochInterval.
	MaxEpochInterval Duration `json:"max_epoch_interval"`
	// MaxHeadAge is the oldest epoch head a client accepts (measured from the
	// head's time to the client's clock). Default 10×MaxEpochInterval; must
	// exceed MaxEpochInterval (or clients would reject every honest answer).
	MaxHeadAge Duration `json:"max_head_age"`
	// Registration says who may create a new entry.
	Registration Registration `json:"registration"`
}

// Registration is the realm's registration policy: a new user's first entry
// must carry a signature by one of Registrars, or the keyserver must have
// verified an OpenID Connect ID token from one of OIDC for the user id.
// At least one of the two must be configured.
type Registration struct {
	// Registrars are Ed25519 public keys (32 bytes each) of app backends
	// allowed to register users.
	Registrars [][]byte `json:"registrars,omitempty"`
	// OIDC lists accepted OpenID Connect providers.
	OIDC []OIDCProvider `json:"oidc,omitempty"`
}

// OIDCProvider is an accepted OpenID Connect issuer.
type OIDCProvider struct {
	// Issuer is the issuer URL (https, or http only for loopback hosts in
	// the local stack). Discovery is at Issuer + "/.well-known/openid-configuration".
	Issuer string `json:"issuer"`
	// Audiences are the accepted client ids (the token's aud). At least one.
	Audiences []string `json:"audiences"`
}

// Duration is a time.Duration written as a Go duration string ("1m30s").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"1m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Defaults.
const (
	DefaultMinEpochInterval = time.Second
	DefaultMaxEpochInterval = time.Minute
	maxRealmLen             = 128
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid realm config")

// Load reads and validates a realm config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't read realm config: %w", err)
	}
	return Parse(b)
}

// Parse decodes a realm config strictly (unknown fields are an error),
// applies defaults and validates it.
func Parse(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Marshal encodes the config as indented JSON.
func (c *Config) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (c *Config) applyDefaults() {
	if c.MinEpochInterval.Duration == 0 {
		c.MinEpochInterval.Duration = DefaultMinEpochInterval
	}
	if c.MaxEpochInterval.Duration == 0 {
		c.MaxEpochInterval.Duration = DefaultMaxEpochInterval
	}
	if c.MaxHeadAge.Duration == 0 {
		c.MaxHeadAge.Duration = 10 * c.MaxEpochInterval.Duration
	}
}

// ValidRealmName reports whether s is a well-formed realm name.
func ValidRealmName(s string) bool {
	if len(s) == 0 || len(s) > maxRealmLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		case ch == '.' || ch == '_' || ch == '/' || ch == ':' || ch == '-':
		default:
			return false
		}
	}
	return true
}

// Validate checks the config's fields and their combinations. Key strings
// are checked for shape here; the packages that use them (checkpoint, vrf)
// parse them fully.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	if !ValidRealmName(c.Realm) {
		return bad("realm", "%q must be 1..%d bytes of [A-Za-z0-9._/:-]", c.Realm, maxRealmLen)
	}
	if len(c.VRFPublicKey) != 32 {
		return bad("vrf_public_key", "must be 32 bytes, got %d", len(c.VRFPublicKey))
	}
	if c.LogKey == "" {
		return bad("log_key", "required")
	}
	seen := map[string]bool{}
	for i, v := range c.Verifiers {
		if v == "" {
			return bad(fmt.Sprintf("verifiers[%d]", i), "empty key")
		}
		if seen[v] {
			return bad(fmt.Sprintf("verifiers[%d]", i), "duplicate verifier key")
		}
		seen[v] = true
	}
	if c.Quorum < 0 || c.Quorum > len(c.Verifiers) {
		return bad("quorum", "%d must be between 0 and the number of verifiers (%d)", c.Quorum, len(c.Verifiers))
	}
	if c.MinEpochInterval.Duration <= 0 {
		return bad("min_epoch_interval", "must be positive")
	}
	if c.MaxEpochInterval.Duration < c.MinEpochInterval.Duration {
		return bad("max_epoch_interval", "%v is shorter than min_epoch_interval %v", c.MaxEpochInterval, c.MinEpochInterval)
	}
	if c.MaxHeadAge.Duration <= c.MaxEpochInterval.Duration {
		return bad("max_head_age", "%v must exceed max_epoch_interval %v, or clients reject honest heads", c.MaxHeadAge, c.MaxEpochInterval)
	}
	r := c.Registration
	if len(r.Registrars) == 0 && len(r.OIDC) == 0 {
		return bad("registration", "needs at least one registrar key or OIDC provider, or nobody can register")
	}
	for i, k := range r.Registrars {
		field := fmt.Sprintf("registration.registrars[%d]", i)
		if len(k) != ed25519.PublicKeySize {
			return bad(field, "must be a 32-byte Ed25519 public key, got %d bytes", len(k))
		}
		// A key of small order would verify forged signatures on some
		// messages: anyone could register users.
		p, err := new(edwards25519.Point).SetBytes(k)
		if err != nil {
			return bad(field, "not a valid Ed25519 public key (not a curve point)")
		}
		if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
			return bad(field, "an Ed25519 public key of small order is not allowed")
		}
	}
	for i, p := range r.OIDC {
		field := fmt.Sprintf("registration.oidc[%d]", i)
		u, err := url.Parse(p.Issuer)
		if err != nil || u.Host == "" {
			return bad(field+".issuer", "%q is not an absolute URL", p.Issuer)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
			return bad(field+".issuer", "%q must use https (http only for loopback)", p.Issuer)
		}
		if len(p.Audiences) == 0 {
			return bad(field+".audiences", "at least one client id required")
		}
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// OIDCProvider returns the provider with the given issuer, if accepted.
func (c *Config) OIDCProvider(issuer string) (OIDCProvider, bool) {
	for _, p := range c.Registration.OIDC {
		if p.Issuer == issuer {
			return p, true
		}
	}
	return OIDCProvider{}, false
}
