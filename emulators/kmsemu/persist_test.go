package kmsemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// populated returns an emulator, filled through the real client with every
// kind of thing the state file records: two rings, the three algorithms,
// HSM, labels, a moved primary, and versions in every storable state.
func populated(t testing.TB, clock *fakeClock, stateFile string) *Server {
	t.Helper()
	ctx := context.Background()
	srv, svc := start(t, Options{Now: clock.Now, StateFile: stateFile})
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []string{"b-ring", "a-ring"} {
		must(svc.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: location, KeyRingId: r}))
	}
	ring := location + "/keyRings/a-ring"
	must(svc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "ed", CryptoKey: &kmspb.CryptoKey{
		Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_ED25519},
		Labels: map[string]string{"z": "", "a-b_c": "v-1"},
	}}))
	must(svc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "p256", CryptoKey: &kmspb.CryptoKey{
		Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, ProtectionLevel: kmspb.ProtectionLevel_HSM},
	}}))
	must(svc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "sym", CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}}))
	must(svc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "empty", CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}, SkipInitialVersionCreation: true}))
	sym := ring + "/cryptoKeys/sym"
	for range 3 {
		clock.Advance(time.Second)
		must(svc.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: sym}))
	}
	must(svc.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: sym, CryptoKeyVersionId: "3"}))
	must(svc.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
		CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: sym + "/cryptoKeyVersions/2", State: kmspb.CryptoKeyVersion_DISABLED},
		UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	}))
	must(svc.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: sym + "/cryptoKeyVersions/1"}))
	must(svc.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: sym + "/cryptoKeyVersions/4"}))
	clock.Advance(31 * 24 * time.Hour)
	// A mutation sweeps version 1 and 4 into DESTROYED.
	must(svc.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/other/locations/europe-west1", KeyRingId: "c"}))
	must(svc.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: ring + "/cryptoKeys/ed/cryptoKeyVersions/1"}))
	return srv
}

// snapshot encodes the server's state under its lock.
func snapshot(srv *Server) []byte {
	srv.svc.mu.RLock()
	defer srv.svc.mu.RUnlock()
	return encodeState(srv.svc.st)
}

// TestStateRoundTrip: parse(encode(state)) encodes to the same bytes and
// keeps every field, key material included.
func TestStateRoundTrip(t *testing.T) {
	srv := populated(t, newFakeClock(), "")
	b := snapshot(srv)
	srv.svc.mu.RLock()
	defer srv.svc.mu.RUnlock()
	svc := srv.svc
	for _, s := range []string{`"DESTROYED"`, `"DESTROY_SCHEDULED"`, `"DISABLED"`, `"HSM"`, `"EC_SIGN_P256_SHA256"`, `"primary": 3`, `"a-b_c": "v-1"`} {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("the populated state lacks %s:\n%s", s, b)
		}
	}
	st, err := parseState(b)
	if err != nil {
		t.Fatal(err)
	}
	if b2 := encodeState(st); !bytes.Equal(b, b2) {
		t.Fatalf("encode(parse(b)) != b:\n%s\n%s", b, b2)
	}
	// Field by field, including derived keys.
	for name, r := range svc.st.rings {
		r2 := st.rings[name]
		if r2 == nil || !r2.createTime.Equal(r.createTime) || r2.name != r.name || len(r2.keys) != len(r.keys) {
			t.Fatalf("ring %s differs", name)
		}
		for id, k := range r.keys {
			k2 := r2.keys[id]
			if k2 == nil || k2.name != k.name || k2.purpose != k.purpose || k2.algorithm != k.algorithm || k2.protectionLevel != k.protectionLevel ||
				!k2.createTime.Equal(k.createTime) || k2.destroyDelay != k.destroyDelay || k2.primary != k.primary ||
				fmt.Sprint(k2.labels) != fmt.Sprint(k.labels) || len(k2.versions) != len(k.versions) {
				t.Fatalf("key %s differs: %+v vs %+v", id, k2, k)
			}
			for i, v := range k.versions {
				v2 := k2.versions[i]
				if v2.id != v.id || v2.state != v.state || v2.algorithm != v.algorithm || v2.protectionLevel != v.protectionLevel ||
					!v2.createTime.Equal(v.createTime) || !v2.generateTime.Equal(v.generateTime) ||
					!v2.destroyTime.Equal(v.destroyTime) || !v2.destroyEventTime.Equal(v.destroyEventTime) ||
					(v.material == nil) != (v2.material == nil) {
					t.Fatalf("version %s/%d differs: %+v vs %+v", id, v.id, v2, v)
				}
				if v.material != nil && (!bytes.Equal(v.material.raw, v2.material.raw) || v.material.pemKey != v2.material.pemKey) {
					t.Fatalf("version %s/%d key material differs", id, v.id)
				}
			}
		}
	}
	// The empty state.
	empty := encodeState(newState())
	if _, err := parseState(empty); err != nil {
		t.Errorf("empty state %s: %v", empty, err)
	}
}

// keyRE matches the "key" field of a version, the last of its object.
var keyRE = regexp.MustCompile(`,(\n\s*)"key": "[^"]*"`)

// TestParseStateRejects edits a valid file in ways the parser must refuse.
func TestParseStateRejects(t *testing.T) {
	good := string(snapshot(populated(t, newFakeClock(), "")))
	replace := func(old, new string) string {
		t.Helper()
		if !strings.Contains(good, old) {
			t.Fatalf("the state file has no %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	for why, bad := range map[string]string{
		"trailing data":        good + "{}",
		"trailing space":       good + " ",
		"no final newline":     strings.TrimSuffix(good, "\n"),
		"compact form":         strings.ReplaceAll(strings.ReplaceAll(good, "\n", ""), "  ", ""),
		"unknown field":        replace(`"format"`, `"extra": 1, "format"`),
		"wrong format":         replace(stateFormat, "conifer-kmsemu-state/v2"),
		"rings out of order":   replace(`"projects/conifer-test/locations/global/keyRings/a-ring"`, `"projects/conifer-test/locations/global/keyRings/z-ring"`),
		"bad ring name":        replace(`keyRings/a-ring"`, `keyRings/a ring"`),
		"negative ring time":   replace(`"createTimeMicros": 1`, `"createTimeMicros": -1`),
		"bad purpose":          replace(`"purpose": "ENCRYPT_DECRYPT"`, `"purpose": "ENCRYPT"`),
		"unsupported purpose":  replace(`"purpose": "ENCRYPT_DECRYPT"`, `"purpose": "MAC"`),
		"wrong algorithm":      replace(`"algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION"`, `"algorithm": "EC_SIGN_ED25519"`),
		"bad protection level": replace(`"protectionLevel": "HSM"`, `"protectionLevel": "EXTERNAL"`),
		"bad state":            replace(`"state": "DISABLED"`, `"state": "PENDING_GENERATION"`),
		"destroyed with key":   replace(`"state": "DISABLED"`, `"state": "DESTROYED"`),
		"key removed":          keyRE.ReplaceAllLiteralString(good, ""),
		"short key":            keyRE.ReplaceAllString(good, `,$1"key": "AAAA"`),
		"primary out of range": replace(`"primary": 3`, `"primary": 9`),
		"negative primary":     replace(`"primary": 3`, `"primary": -1`),
		"destroy delay":        replace(`"destroyScheduledMicros": 2592000000000`, `"destroyScheduledMicros": 1`),
		"bad label":            replace(`"a-b_c": "v-1"`, `"A": "v-1"`),
		"empty labels":         replace(`"labels": {`, `"labels": {}, "l": {`),
		"null rings":           `{"format": "` + stateFormat + `", "keyRings": null}` + "\n",
		"not JSON":             "\x00",
		"empty":                "",
	} {
		if _, err := parseState([]byte(bad)); !errors.Is(err, errBadState) {
			t.Errorf("%s: parseState = %v, want errBadState", why, err)
		}
	}
	if _, err := parseState(bytes.Repeat([]byte{' '}, maxStateFile+1)); !errors.Is(err, errBadState) {
		t.Errorf("oversized file: %v", err)
	}
}

func FuzzParseState(f *testing.F) {
	f.Add(encodeState(newState()))
	f.Add(snapshot(populated(f, newFakeClock(), "")))
	f.Add([]byte(`{"format": "conifer-kmsemu-state/v1", "keyRings": []}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseState(b)
		if err != nil {
			if !errors.Is(err, errBadState) {
				t.Fatalf("error %v does not wrap errBadState", err)
			}
			return
		}
		enc := encodeState(st)
		if !bytes.Equal(enc, b) {
			t.Fatalf("encode(parse(b)) != b")
		}
		st2, err := parseState(enc)
		if err != nil || !bytes.Equal(encodeState(st2), enc) {
			t.Fatalf("parse(encode(st)) = %v", err)
		}
	})
}

// TestStateFileFollowsChanges: every change lands in the file before the
// call returns, so a fresh service on the same file sees it.
func TestStateFileFollowsChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.json")
	clock := newFakeClock()
	srv := populated(t, clock, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, snapshot(srv)) {
		t.Fatal("the state file differs from the state in memory")
	}
	st, err := loadState(path)
	if err != nil || !bytes.Equal(encodeState(st), b) {
		t.Fatalf("loadState: %v", err)
	}
	if st, err := loadState(filepath.Join(t.TempDir(), "missing.json")); err != nil || len(st.rings) != 0 {
		t.Errorf("loading a missing file: %v, %v; want an empty state", st, err)
	}
}

// TestRandomOpsAgainstModel runs a seeded random sequence of version
// operations through the real client, with the clock moving, against a
// plain model of the version states and the primary, comparing every
// answer code, every listed state, and every decryption.
func TestRandomOpsAgainstModel(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "kms.json")
	_, svc := start(t, Options{Now: clock.Now, StateFile: path})
	if _, err := svc.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: location, KeyRingId: "r"}); err != nil {
		t.Fatal(err)
	}
	key := location + "/keyRings/r/cryptoKeys/k"
	if _, err := svc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: location + "/keyRings/r", CryptoKeyId: "k",
		CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}}); err != nil {
		t.Fatal(err)
	}

	const delay = 30 * 24 * time.Hour
	type mv struct {
		state     kmspb.CryptoKeyVersion_CryptoKeyVersionState
		destroyAt time.Time
	}
	model := []mv{{state: kmspb.CryptoKeyVersion_ENABLED}}
	primary := 1
	eff := func(id int) kmspb.CryptoKeyVersion_CryptoKeyVersionState {
		v := model[id-1]
		if v.state == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED && !clock.Now().Truncate(time.Microsecond).Before(v.destroyAt) {
			return kmspb.CryptoKeyVersion_DESTROYED
		}
		return v.state
	}
	type sealed struct {
		version int
		ct, pt  []byte
	}
	var ciphertexts []sealed
	vname := func(id int) string { return fmt.Sprintf("%s/cryptoKeyVersions/%d", key, id) }

	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 600 {
		id := 1 + rng.IntN(len(model)+1) // sometimes one past the end
		exists := id <= len(model)
		var err error
		var want codes.Code
		var op string
		switch rng.IntN(8) {
		case 0:
			op = "create"
			st := kmspb.CryptoKeyVersion_ENABLED
			if rng.IntN(3) == 0 {
				st = kmspb.CryptoKeyVersion_DISABLED
			}
			_, err = svc.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: key, CryptoKeyVersion: &kmspb.CryptoKeyVersion{State: st}})
			model = append(model, mv{state: st})
		case 1:
			target := kmspb.CryptoKeyVersion_ENABLED
			if rng.IntN(2) == 0 {
				target = kmspb.CryptoKeyVersion_DISABLED
			}
			op = fmt.Sprintf("update %d to %v", id, target)
			_, err = svc.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
				CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: vname(id), State: target},
				UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
			})
			switch {
			case !exists:
				want = codes.NotFound
			case eff(id) != kmspb.CryptoKeyVersion_ENABLED && eff(id) != kmspb.CryptoKeyVersion_DISABLED:
				want = codes.FailedPrecondition
			default:
				model[id-1].state = target
			}
		case 2:
			op = fmt.Sprintf("destroy %d", id)
			_, err = svc.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: vname(id)})
			switch {
			case !exists:
				want = codes.NotFound
			case eff(id) != kmspb.CryptoKeyVersion_ENABLED && eff(id) != kmspb.CryptoKeyVersion_DISABLED:
				want = codes.FailedPrecondition
			default:
				model[id-1] = mv{state: kmspb.CryptoKeyVersion_DESTROY_SCHEDULED, destroyAt: clock.Now().Truncate(time.Microsecond).Add(delay)}
			}
		case 3:
			op = fmt.Sprintf("restore %d", id)
			_, err = svc.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: vname(id)})
			switch {
			case !exists:
				want = codes.NotFound
			case eff(id) != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED:
				want = codes.FailedPrecondition
			default:
				model[id-1] = mv{state: kmspb.CryptoKeyVersion_DISABLED}
			}
		case 4:
			op = fmt.Sprintf("primary %d", id)
			_, err = svc.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: key, CryptoKeyVersionId: fmt.Sprint(id)})
			switch {
			case !exists:
				want = codes.NotFound
			case eff(id) != kmspb.CryptoKeyVersion_ENABLED:
				want = codes.FailedPrecondition
			default:
				primary = id
			}
		case 5:
			op = "encrypt"
			pt := []byte(fmt.Sprintf("step %d", step))
			var resp *kmspb.EncryptResponse
			resp, err = svc.Encrypt(ctx, &kmspb.EncryptRequest{Name: key, Plaintext: pt})
			if eff(primary) != kmspb.CryptoKeyVersion_ENABLED {
				want = codes.FailedPrecondition
			} else if err == nil {
				if resp.Name != vname(primary) {
					t.Fatalf("step %d: encrypted with %s, want the primary %d", step, resp.Name, primary)
				}
				ciphertexts = append(ciphertexts, sealed{primary, resp.Ciphertext, pt})
			}
		case 6:
			if len(ciphertexts) == 0 {
				continue
			}
			c := ciphertexts[rng.IntN(len(ciphertexts))]
			op = fmt.Sprintf("decrypt a ciphertext of %d", c.version)
			var resp *kmspb.DecryptResponse
			resp, err = svc.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: c.ct})
			if eff(c.version) != kmspb.CryptoKeyVersion_ENABLED {
				want = codes.FailedPrecondition
			} else if err == nil && (!bytes.Equal(resp.Plaintext, c.pt) || resp.UsedPrimary != (c.version == primary)) {
				t.Fatalf("step %d: decrypted %q (used_primary %v), want %q (%v)", step, resp.Plaintext, resp.UsedPrimary, c.pt, c.version == primary)
			}
		case 7:
			d := time.Duration(rng.IntN(10*24)) * time.Hour
			op = fmt.Sprintf("advance %v", d)
			clock.Advance(d)
		}
		if got := status.Code(err); got != want {
			t.Fatalf("step %d (%s): code %v (%v), want %v", step, op, got, err, want)
		}
		// Every version's listed state matches the model.
		it := svc.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: key})
		for i := 0; ; i++ {
			v, err := it.Next()
			if err == iterator.Done {
				if i != len(model) {
					t.Fatalf("step %d: %d versions listed, model has %d", step, i, len(model))
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.State != eff(i+1) {
				t.Fatalf("step %d (%s): version %d is %v, model says %v", step, op, i+1, v.State, eff(i+1))
			}
		}
	}
	// The file holds the same history: a fresh service agrees on every state.
	_, svc2 := start(t, Options{Now: clock.Now, StateFile: path})
	it := svc2.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: key})
	for i := 0; ; i++ {
		v, err := it.Next()
		if err == iterator.Done {
			if i != len(model) {
				t.Errorf("after reload, %d versions, model has %d", i, len(model))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if v.State != eff(i+1) {
			t.Errorf("after reload, version %d is %v, model says %v", i+1, v.State, eff(i+1))
		}
	}
}
