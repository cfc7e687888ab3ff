package format

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestProfileModel drives Set, Remove and Get at random and compares with a
// plain map; after every step the profile must be canonical and round-trip.
func TestProfileModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := &Profile{}
	m := map[string][]byte{}
	apps := []string{"pgp", "ssh", "signal", "age", "a", "z9", "x.y", "x-y", "x_y", "0"}
	for step := 0; step < 2000; step++ {
		app := apps[rng.IntN(len(apps))]
		switch rng.IntN(3) {
		case 0, 1:
			key := bytes.Repeat([]byte{byte(step)}, 1+rng.IntN(40))
			if err := p.Set(app, key); err != nil {
				t.Fatal(err)
			}
			m[app] = key
			key[0] ^= 0xff // Set must have copied it
			m[app] = bytes.Clone(key)
			m[app][0] ^= 0xff
		case 2:
			_, had := m[app]
			if got := p.Remove(app); got != had {
				t.Fatalf("Remove(%q) = %v, want %v", app, got, had)
			}
			delete(m, app)
		}
		for _, a := range apps {
			got, ok := p.Get(a)
			want, wok := m[a]
			if ok != wok || !bytes.Equal(got, want) {
				t.Fatalf("step %d: Get(%q) = %x %v, want %x %v", step, a, got, ok, want, wok)
			}
		}
		if len(p.Keys) != len(m) {
			t.Fatalf("%d keys, model has %d", len(p.Keys), len(m))
		}
		b := mustMarshal(t, p)
		q, err := ParseProfile(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustMarshal(t, q), b) {
			t.Fatal("profile does not round-trip")
		}
	}
}

func TestProfileLimits(t *testing.T) {
	p := &Profile{}
	for i := 0; i < MaxProfileApps; i++ {
		if err := p.Set(fmt.Sprintf("app%02d", i), []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	err := p.Set("one-more", []byte{1})
	wantField(t, err, ErrTooLarge, "profile.app_count", "already 64 apps")
	if err := p.Set("app00", []byte{2}); err != nil {
		t.Fatalf("replacing at the cap: %v", err)
	}
	over := &Profile{Keys: slices.Clone(p.Keys)}
	over.Keys = append(over.Keys, AppKey{App: "zzz", Key: []byte{1}})
	_, err = ParseProfile(modelProfile(over).bytes())
	wantField(t, err, ErrTooLarge, "profile.app_count", "65 apps")

	// Size cap: two 8 KiB keys do not fit in 16 KiB with their headers.
	big := &Profile{}
	if err := big.Set("a", make([]byte, MaxAppKeyLen)); err != nil {
		t.Fatal(err)
	}
	err = big.Set("b", make([]byte, MaxAppKeyLen))
	wantField(t, err, ErrTooLarge, "profile", "more than 16384")
	if len(big.Keys) != 1 {
		t.Fatal("failed Set changed the profile")
	}
	// The largest that fits is exactly MaxProfileSize.
	rest := MaxProfileSize - (1 + 1 + 1 + 2 + MaxAppKeyLen) - (1 + 1 + 2)
	if err := big.Set("b", make([]byte, rest)); err != nil {
		t.Fatal(err)
	}
	b := mustMarshal(t, big)
	if len(b) != MaxProfileSize {
		t.Fatalf("%d bytes", len(b))
	}
	if _, err := ParseProfile(b); err != nil {
		t.Fatal(err)
	}
	big.Keys[1].Key = append(big.Keys[1].Key, 0)
	_, err = ParseProfile(modelProfile(big).bytes())
	wantField(t, err, ErrTooLarge, "profile", "more than 16384")

	tests := []struct {
		app, reason string
		key         []byte
	}{
		{"", "empty app id", []byte{1}},
		{strings.Repeat("a", 65), "65 bytes", []byte{1}},
		{"Pgp", "byte 0x50", []byte{1}},
		{"p g", "byte 0x20", []byte{1}},
		{"pgp", "empty key", nil},
		{"pgp", "8193 bytes", make([]byte, 8193)},
	}
	for _, tt := range tests {
		err := (&Profile{}).Set(tt.app, tt.key)
		if err == nil || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("Set(%q, %d bytes): %v, want %q", tt.app, len(tt.key), err, tt.reason)
		}
		bad := &Profile{Keys: []AppKey{{App: tt.app, Key: tt.key}}}
		if _, err := ParseProfile(modelProfile(bad).bytes()); err == nil || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("parse of app %q: %v, want %q", tt.app, err, tt.reason)
		}
	}
	dup := &Profile{Keys: []AppKey{{"pgp", []byte{1}}, {"pgp", []byte{2}}}}
	_, err = ParseProfile(modelProfile(dup).bytes())
	wantField(t, err, ErrNotCanonical, "profile.keys[1].app", "strictly increasing")
	// Every app id byte: only [a-z0-9._-] is allowed.
	for c := 0; c < 256; c++ {
		err := checkAppID(string([]byte{'a', byte(c)}))
		allowed := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
		if (err == nil) != allowed {
			t.Errorf("app byte 0x%02x: %v", c, err)
		}
	}
}
