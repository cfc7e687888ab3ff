package realm

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func validJSON() string {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	k := base64.StdEncoding.EncodeToString(pub)
	return `{
  "realm": "example.com/conifer",
  "vrf_public_key": "` + k + `",
  "log_key": "example.com/conifer+00000000+AQ",
  "verifiers": ["v1+00000000+BA", "v2+00000000+BA"],
  "quorum": 1,
  "min_epoch_interval": "2s",
  "max_epoch_interval": "30s",
  "registration": {"registrars": ["` + k + `"], "oidc": [{"issuer": "http://127.0.0.1:5556", "audiences": ["app"]}]}
}`
}

func TestParseValidAndDefaults(t *testing.T) {
	c, err := Parse([]byte(validJSON()))
	if err != nil {
		t.Fatal(err)
	}
	if c.MinEpochInterval.Duration != 2*time.Second || c.MaxEpochInterval.Duration != 30*time.Second {
		t.Errorf("intervals = %v, %v", c.MinEpochInterval, c.MaxEpochInterval)
	}
	if c.MaxHeadAge.Duration != 300*time.Second {
		t.Errorf("default max head age = %v, want 5m", c.MaxHeadAge)
	}
	if _, ok := c.OIDCProvider("http://127.0.0.1:5556"); !ok {
		t.Error("OIDC provider not found")
	}
	// Marshal → Parse round trip.
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(b)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, b)
	}
	if c2.Realm != c.Realm || c2.MaxHeadAge != c.MaxHeadAge || c2.Quorum != c.Quorum {
		t.Errorf("round trip changed the config: %+v vs %+v", c2, c)
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct{ name, old, new, field string }{
		{"bad realm", `"example.com/conifer"`, `"exa mple"`, "realm"},
		{"empty realm", `"realm": "example.com/conifer"`, `"realm": ""`, "realm"},
		{"no log key", `"log_key": "example.com/conifer+00000000+AQ"`, `"log_key": ""`, "log_key"},
		{"quorum too big", `"quorum": 1`, `"quorum": 3`, "quorum"},
		{"negative quorum", `"quorum": 1`, `"quorum": -1`, "quorum"},
		{"duplicate verifier", `"v2+00000000+BA"`, `"v1+00000000+BA"`, "verifiers[1]"},
		{"max < min", `"max_epoch_interval": "30s"`, `"max_epoch_interval": "1s"`, "max_epoch_interval"},
		{"head age too small", `"quorum": 1,`, `"quorum": 1, "max_head_age": "10s",`, "max_head_age"},
		{"bad duration", `"2s"`, `"2 seconds"`, "invalid"},
		{"unknown field", `"quorum": 1,`, `"quorum": 1, "quorom": 2,`, "unknown field"},
		{"http issuer", `http://127.0.0.1:5556`, `http://accounts.example.com`, "issuer"},
		{"no audiences", `"audiences": ["app"]`, `"audiences": []`, "audiences"},
		{"no registration", `"registration": {"registrars"`, `"registration": {}, "x": {"registrars"`, "unknown field"},
		{"trailing data", `"app"]}]}
}`, `"app"]}]}
} {}`, "trailing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := validJSON()
			if !strings.Contains(in, tc.old) {
				t.Fatalf("test bug: %q not in input", tc.old)
			}
			_, err := Parse([]byte(strings.Replace(in, tc.old, tc.new, 1)))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

func TestRegistrationRequired(t *testing.T) {
	c, err := Parse([]byte(validJSON()))
	if err != nil {
		t.Fatal(err)
	}
	c.Registration = Registration{}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "registration") {
		t.Errorf("empty registration policy: err = %v", err)
	}
	c.Registration.Registrars = [][]byte{make([]byte, 32)} // y = 0: a point of order 4
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "small order") {
		t.Errorf("small-order registrar key: err = %v", err)
	}
	identity := make([]byte, 32)
	identity[0] = 1
	c.Registration.Registrars = [][]byte{identity}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "small order") {
		t.Errorf("identity registrar key: err = %v", err)
	}
	c.Registration.Registrars = [][]byte{make([]byte, 31)}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "registrars[0]") {
		t.Errorf("short registrar key: err = %v", err)
	}
}

func TestShortVRFKey(t *testing.T) {
	c, err := Parse([]byte(validJSON()))
	if err != nil {
		t.Fatal(err)
	}
	c.VRFPublicKey = c.VRFPublicKey[:31]
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "vrf_public_key") {
		t.Errorf("short VRF key: err = %v", err)
	}
}
