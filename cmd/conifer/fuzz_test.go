package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/format"
)

func testKey(i byte) ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{i}, 32)).Public().(ed25519.PublicKey)
}

func TestPolicyExpr(t *testing.T) {
	k := func(i byte) string { return base64.StdEncoding.EncodeToString(testKey(i)) }
	dev := testKey(9)
	res := func(m string) (ed25519.PublicKey, error) {
		if m == "device" {
			return dev, nil
		}
		return nil, errors.New("no files here")
	}
	for _, tc := range []struct {
		in, err string
		keys    int
	}{
		{"1(device)", "", 1},
		{" 2 ( device , " + k(1) + " ) ", "", 2},
		{"1(" + k(1) + ",2(" + k(2) + "," + k(3) + "))", "", 3},
		{"2(1(" + k(1) + "),1(" + k(2) + "))", "", 2},
		{"0(device)", "threshold", 0},
		{"01(device)", "threshold", 0},
		{"65536(device)", "range", 0},
		{"2(device)", "threshold", 0},
		{"1(device,device)", "", 0},
		{"1(device", "unclosed", 0},
		{"1(device))", "after the policy", 0},
		{"1()", "want a key", 0},
		{"1(@x)", "no files here", 0},
		{"1(" + k(1)[:43] + ")", "canonical base64", 0},
		{"1(1(1(1(1(device)))))", "deeper", 0},
		{"device", "threshold", 0},
	} {
		p, err := ParsePolicy(tc.in, res)
		if tc.err != "" || tc.keys == 0 {
			if err == nil {
				t.Errorf("%q: accepted", tc.in)
			} else if !errors.Is(err, errPolicyExpr) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if len(p.KeyIDs()) != tc.keys {
			t.Errorf("%q: %d keys", tc.in, len(p.KeyIDs()))
		}
		// The canonical form parses to the same policy and is a fixed point.
		s := FormatPolicy(p, nil)
		q, err := ParsePolicy(s, nil)
		if err != nil {
			t.Fatalf("%q → %q: %v", tc.in, s, err)
		}
		if FormatPolicy(q, nil) != s {
			t.Errorf("%q: not a fixed point", s)
		}
		if named := FormatPolicy(p, map[format.KeyID]string{format.KeyIDOf(dev): "device"}); strings.Contains(tc.in, "device") && !strings.Contains(named, "device") {
			t.Errorf("%q: named form %q", tc.in, named)
		}
	}
}

// FuzzPolicyExpr checks that every accepted expression has a canonical
// form that parses to the same policy (format(parse(format(parse(s)))) ==
// format(parse(s))) and that the policy's binary encoding round-trips.
func FuzzPolicyExpr(f *testing.F) {
	k := func(i byte) string { return base64.StdEncoding.EncodeToString(testKey(i)) }
	for _, s := range []string{
		"1(" + k(1) + ")",
		"2(" + k(1) + "," + k(2) + ")",
		"1(" + k(1) + ",2(" + k(2) + "," + k(3) + ",1(" + k(4) + ")))",
		" 1 ( " + k(5) + " ) ",
		"3(" + k(1) + ")",
		"1(device)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s, nil)
		if err != nil {
			if !errors.Is(err, errPolicyExpr) {
				t.Fatalf("error %v does not wrap errPolicyExpr", err)
			}
			return
		}
		c := FormatPolicy(p, nil)
		q, err := ParsePolicy(c, nil)
		if err != nil {
			t.Fatalf("canonical form %q rejected: %v", c, err)
		}
		if FormatPolicy(q, nil) != c {
			t.Fatalf("canonical form %q is not a fixed point", c)
		}
		a, err1 := p.Marshal()
		b, err2 := q.Marshal()
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("policies differ: %v %v", err1, err2)
		}
		back, err := format.ParsePolicy(a)
		if err != nil || FormatPolicy(back, nil) != c {
			t.Fatalf("binary round trip: %v", err)
		}
	})
}

func TestKeyFiles(t *testing.T) {
	k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	pub := k.Public().(ed25519.PublicKey)
	for _, in := range [][]byte{
		FormatPrivateKey(k),
		bytes.TrimSuffix(FormatPrivateKey(k), []byte("\n")),
		[]byte(base64.StdEncoding.EncodeToString(k.Seed()) + "\n"),
		[]byte(base64.StdEncoding.EncodeToString(k)),
	} {
		got, err := ParsePrivateKey(in)
		if err != nil || !got.Equal(k) {
			t.Errorf("%q: %v", in, err)
		}
	}
	bad := append([]byte(nil), k...)
	bad[40] ^= 1
	for _, in := range [][]byte{
		FormatPublicKey(pub),
		[]byte(privatePrefix + base64.StdEncoding.EncodeToString(k) + "\n"), // typed, 64 bytes
		[]byte(base64.StdEncoding.EncodeToString(bad)),                      // public half mismatch
		[]byte(privatePrefix + base64.RawStdEncoding.EncodeToString(k.Seed())),
		append(FormatPrivateKey(k), '\n'),
		[]byte(" " + string(FormatPrivateKey(k))),
		[]byte(""),
	} {
		if _, err := ParsePrivateKey(in); !errors.Is(err, errKeyFile) {
			t.Errorf("private %q: %v", in, err)
		}
	}
	if got, err := ParsePublicKey(FormatPublicKey(pub)); err != nil || !got.Equal(pub) {
		t.Errorf("public: %v", err)
	}
	if _, err := ParsePublicKey(FormatPrivateKey(k)); !errors.Is(err, errKeyFile) || !strings.Contains(err.Error(), "private key file") {
		t.Errorf("private as public: %v", err)
	}
}

// FuzzKeyFile checks both key file parsers: an accepted file re-formats to
// the canonical text, which parses to the same key.
func FuzzKeyFile(f *testing.F) {
	k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	f.Add(FormatPrivateKey(k))
	f.Add(FormatPublicKey(k.Public().(ed25519.PublicKey)))
	f.Add([]byte(base64.StdEncoding.EncodeToString(k)))
	f.Add([]byte(base64.StdEncoding.EncodeToString(k.Seed())))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePrivateKey(b); err == nil {
			c := FormatPrivateKey(k)
			k2, err := ParsePrivateKey(c)
			if err != nil || !k2.Equal(k) {
				t.Fatalf("private key does not round-trip: %v", err)
			}
			if bytes.HasPrefix(b, []byte(privatePrefix)) && !bytes.Equal(bytes.TrimSuffix(b, []byte("\n")), bytes.TrimSuffix(c, []byte("\n"))) {
				t.Fatalf("typed private key file %q is not canonical", b)
			}
		} else if !errors.Is(err, errKeyFile) {
			t.Fatal(err)
		}
		if p, err := ParsePublicKey(b); err == nil {
			c := FormatPublicKey(p)
			p2, err := ParsePublicKey(c)
			if err != nil || !p2.Equal(p) {
				t.Fatalf("public key does not round-trip: %v", err)
			}
		} else if !errors.Is(err, errKeyFile) {
			t.Fatal(err)
		}
	})
}

// FuzzOwnRecord checks the own-updates file parser: an accepted file
// re-encodes to text that parses to an identical record.
func FuzzOwnRecord(f *testing.F) {
	r := &ownRecord{Realm: "example.com/conifer", User: "alice@example.com", Updates: []ownUpdate{
		{Version: 1, EntryHash: strings.Repeat("ab", 32), Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Confirmed: true},
		{Version: 2, EntryHash: strings.Repeat("cd", 32), Time: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)},
	}}
	b, err := r.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"realm":"r","user":"u","updates":[]}`))
	f.Add([]byte(`{"realm":"r","user":"u","updates":[{"version":0,"entry_hash":"","time":"2026-01-01T00:00:00Z","confirmed":false}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseOwnRecord(b)
		if err != nil {
			return
		}
		c, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := parseOwnRecord(c)
		if err != nil {
			t.Fatalf("re-encoded record rejected: %v\n%s", err, c)
		}
		c2, _ := r2.marshal()
		if !bytes.Equal(c, c2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", c, c2)
		}
	})
}

// FuzzSetKey checks --set-key's base64 form: an accepted value is
// canonical, so writing its key back gives the same argument.
func FuzzSetKey(f *testing.F) {
	f.Add("pgp=" + base64.StdEncoding.EncodeToString([]byte("key")))
	f.Add("ssh=AAAA")
	f.Add("=x")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "=@") {
			return // files are not fuzzed
		}
		k, err := parseSetKey(s)
		if err != nil {
			return
		}
		if back := k.app + "=" + base64.StdEncoding.EncodeToString(k.key); back != s {
			t.Fatalf("%q parsed to %q", s, back)
		}
	})
}
