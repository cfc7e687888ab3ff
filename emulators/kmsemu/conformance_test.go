package kmsemu

// The conformance test: every method, driven through the real Go client
// (cloud.google.com/go/kms/apiv1). Each case names where the behaviour it
// checks is documented:
//
//	[ref]       the API reference (cloud.google.com/kms/docs/reference/rpc,
//	            the same text as the kmspb doc comments)
//	[integrity] "Verifying end-to-end data integrity"
//	            (cloud.google.com/kms/docs/data-integrity-guidelines)
//	[contract]  GoogleCloudPlatform/kms-integrations fakekms/contract tests,
//	            which Google runs against the real service
//	[algos]     "Key purposes and algorithms" (cloud.google.com/kms/docs/algorithms)
//	[emulator]  the emulator's own choice, documented in doc.go

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const location = "projects/conifer-test/locations/global"

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start runs a server with opts and returns it with a real client.
func start(t testing.TB, opts Options) (*Server, *kms.KeyManagementClient) {
	t.Helper()
	ctx := context.Background()
	srv, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	c, err := kms.NewKeyManagementClient(ctx, srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Errorf("%s: code %v (err %v), want %v", what, got, err, code)
	}
}

func mustRing(t *testing.T, c *kms.KeyManagementClient, id string) string {
	t.Helper()
	r, err := c.CreateKeyRing(context.Background(), &kmspb.CreateKeyRingRequest{Parent: location, KeyRingId: id})
	if err != nil {
		t.Fatal(err)
	}
	return r.Name
}

func mustKey(t *testing.T, c *kms.KeyManagementClient, ring, id string, purpose kmspb.CryptoKey_CryptoKeyPurpose, alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm, skip bool) *kmspb.CryptoKey {
	t.Helper()
	k, err := c.CreateCryptoKey(context.Background(), &kmspb.CreateCryptoKeyRequest{
		Parent:      ring,
		CryptoKeyId: id,
		CryptoKey: &kmspb.CryptoKey{
			Purpose:         purpose,
			VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: alg},
		},
		SkipInitialVersionCreation: skip,
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sum32(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

func checkSum(t *testing.T, what string, b []byte, got *wrapperspb.Int64Value) {
	t.Helper()
	if got == nil || got.GetValue() != sum32(b).GetValue() {
		t.Errorf("%s: checksum %v, want CRC32C %d", what, got, sum32(b).GetValue())
	}
}

func parsePEM(t *testing.T, s string) crypto.PublicKey {
	t.Helper()
	blk, rest := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "PUBLIC KEY" || len(rest) != 0 {
		t.Fatalf("not one PUBLIC KEY PEM block: %q", s)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestKeyRings covers CreateKeyRing, GetKeyRing and ListKeyRings.
func TestKeyRings(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	_, c := start(t, Options{Now: clock.Now})

	// [ref] key_ring_id must match [a-zA-Z0-9_-]{1,63}; the KeyRing comes back
	// with its name and create_time. [emulator] times have µs resolution
	// (the real service stores µs; [contract] truncates to µs).
	r, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: location, KeyRingId: "ring-0_A"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != location+"/keyRings/ring-0_A" || !r.CreateTime.AsTime().Equal(clock.Now().Truncate(time.Microsecond)) {
		t.Errorf("CreateKeyRing = %v", r)
	}
	got, err := c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: r.Name})
	if err != nil || got.Name != r.Name || !got.CreateTime.AsTime().Equal(r.CreateTime.AsTime()) {
		t.Errorf("GetKeyRing = %v, %v; want %v", got, err, r)
	}
	// [contract] a second create of the same id is AlreadyExists.
	_, err = c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: location, KeyRingId: "ring-0_A"})
	wantCode(t, "duplicate CreateKeyRing", err, codes.AlreadyExists)
	// [contract] malformed parents and ids are InvalidArgument.
	for _, req := range []*kmspb.CreateKeyRingRequest{
		{Parent: "locations/global", KeyRingId: "x"},
		{Parent: "projects/p/locations/", KeyRingId: "x"},
		{Parent: "projects/p/locations/global/", KeyRingId: "x"},
		{Parent: location, KeyRingId: ""},
		{Parent: location, KeyRingId: "&bar"},
		{Parent: location, KeyRingId: strings.Repeat("a", 64)},
	} {
		_, err := c.CreateKeyRing(ctx, req)
		wantCode(t, fmt.Sprintf("CreateKeyRing(%q, %q)", req.Parent, req.KeyRingId), err, codes.InvalidArgument)
	}
	// [contract] a missing key ring is NotFound.
	_, err = c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: location + "/keyRings/nope"})
	wantCode(t, "GetKeyRing of a missing ring", err, codes.NotFound)
	_, err = c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: "malformed name"})
	wantCode(t, "GetKeyRing of a malformed name", err, codes.InvalidArgument)

	// [ref] List is paged (page_size, next_page_token) and gives total_size.
	// [emulator] sorted by name.
	want := []string{r.Name}
	for i := 1; i < 5; i++ {
		want = append(want, mustRing(t, c, fmt.Sprintf("ring-%d", i)))
	}
	mustRing(t, c, "elsewhere") // same location: listed
	want = append([]string{location + "/keyRings/elsewhere"}, want...)
	if _, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/other/locations/global", KeyRingId: "ring-0_A"}); err != nil {
		t.Fatal(err)
	}
	it := c.ListKeyRings(ctx, &kmspb.ListKeyRingsRequest{Parent: location})
	var names []string
	var token string
	for pages := 0; ; pages++ {
		var rings []*kmspb.KeyRing
		token, err = iterator.NewPager(it, 2, token).NextPage(&rings)
		if err != nil {
			t.Fatal(err)
		}
		if len(rings) > 2 {
			t.Errorf("page of %d rings, want at most 2", len(rings))
		}
		for _, r := range rings {
			names = append(names, r.Name)
		}
		if resp := it.Response.(*kmspb.ListKeyRingsResponse); resp.TotalSize != int32(len(want)) {
			t.Errorf("total_size = %d, want %d", resp.TotalSize, len(want))
		}
		if token == "" {
			break
		}
		it = c.ListKeyRings(ctx, &kmspb.ListKeyRingsRequest{Parent: location})
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("listed %q, want %q", names, want)
	}
	_, err = c.ListKeyRings(ctx, &kmspb.ListKeyRingsRequest{Parent: location, PageToken: "!!"}).Next()
	wantCode(t, "ListKeyRings with a bad token", err, codes.InvalidArgument)
	// [emulator] filter and order_by are not implemented.
	_, err = c.ListKeyRings(ctx, &kmspb.ListKeyRingsRequest{Parent: location, Filter: "name:ring"}).Next()
	wantCode(t, "ListKeyRings with a filter", err, codes.Unimplemented)
}

// TestCreateCryptoKeyDefaults: [contract] TestCreateCryptoKeyDefaults — an
// ENCRYPT_DECRYPT key without a template gets GOOGLE_SYMMETRIC_ENCRYPTION,
// SOFTWARE, an ENABLED primary version 1, and destroy_scheduled_duration of
// 30 days ([ref] "If not specified at creation time, the default duration is
// 30 days").
func TestCreateCryptoKeyDefaults(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	_, c := start(t, Options{Now: clock.Now})
	ring := mustRing(t, c, "r")
	k, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{
		Parent:      ring,
		CryptoKeyId: "encrypt",
		CryptoKey:   &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, Labels: map[string]string{"env": "test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now().Truncate(time.Microsecond)
	switch {
	case k.Name != ring+"/cryptoKeys/encrypt",
		k.Purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT,
		!k.CreateTime.AsTime().Equal(now),
		k.VersionTemplate.GetAlgorithm() != kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
		k.VersionTemplate.GetProtectionLevel() != kmspb.ProtectionLevel_SOFTWARE,
		k.DestroyScheduledDuration.AsDuration() != 30*24*time.Hour,
		k.Labels["env"] != "test":
		t.Errorf("CreateCryptoKey = %v", k)
	}
	p := k.Primary
	switch {
	case p == nil,
		p.Name != k.Name+"/cryptoKeyVersions/1",
		p.State != kmspb.CryptoKeyVersion_ENABLED,
		p.Algorithm != kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
		p.ProtectionLevel != kmspb.ProtectionLevel_SOFTWARE,
		!p.CreateTime.AsTime().Equal(now),
		!p.GenerateTime.AsTime().Equal(now),
		p.DestroyTime != nil:
		t.Errorf("primary = %v", p)
	}
	got, err := c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: k.Name})
	if err != nil || got.String() != k.String() {
		t.Errorf("GetCryptoKey = %v, %v; want %v", got, err, k)
	}
	// [ref] asymmetric keys have no primary.
	sk := mustKey(t, c, ring, "sign", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, false)
	if sk.Primary != nil {
		t.Errorf("ASYMMETRIC_SIGN key has a primary: %v", sk.Primary)
	}
	v, err := c.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: sk.Name + "/cryptoKeyVersions/1"})
	if err != nil || v.State != kmspb.CryptoKeyVersion_ENABLED || v.Algorithm != kmspb.CryptoKeyVersion_EC_SIGN_ED25519 {
		t.Errorf("version 1 of the signing key = %v, %v", v, err)
	}
}

// TestCreateCryptoKeyErrors covers the ways CreateCryptoKey refuses.
func TestCreateCryptoKeyErrors(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	tmpl := func(alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm, pl kmspb.ProtectionLevel) *kmspb.CryptoKeyVersionTemplate {
		return &kmspb.CryptoKeyVersionTemplate{Algorithm: alg, ProtectionLevel: pl}
	}
	mustKey(t, c, ring, "taken", kmspb.CryptoKey_ENCRYPT_DECRYPT, 0, true)
	for _, tc := range []struct {
		why    string
		parent string
		id     string
		key    *kmspb.CryptoKey
		code   codes.Code
	}{
		// [contract] TestCreateCryptoKeyMalformedParent / MalformedID / DuplicateName.
		{"malformed parent", "locations/foo", "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}, codes.InvalidArgument},
		{"malformed id", ring, "&bar", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}, codes.InvalidArgument},
		{"duplicate id", ring, "taken", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}, codes.AlreadyExists},
		// [ref] the parent key ring must exist.
		{"missing key ring", location + "/keyRings/nope", "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}, codes.NotFound},
		// [ref] purpose is required.
		{"no purpose", ring, "k", &kmspb.CryptoKey{}, codes.InvalidArgument},
		{"no key", ring, "k", nil, codes.InvalidArgument},
		// [contract] TestCreateCryptoKeyMissingAlgorithm: asymmetric keys need an algorithm.
		{"no algorithm", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN}, codes.InvalidArgument},
		// [algos] "The purpose also determines which algorithms are supported".
		{"symmetric algorithm for signing", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, VersionTemplate: tmpl(kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION, 0)}, codes.InvalidArgument},
		{"signing algorithm for encryption", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, VersionTemplate: tmpl(kmspb.CryptoKeyVersion_EC_SIGN_ED25519, 0)}, codes.InvalidArgument},
		{"HMAC for signing", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, VersionTemplate: tmpl(kmspb.CryptoKeyVersion_HMAC_SHA256, 0)}, codes.InvalidArgument},
		// [emulator] valid in the real service, not implemented here.
		{"RSA signing", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, VersionTemplate: tmpl(kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256, 0)}, codes.Unimplemented},
		{"MAC", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_MAC, VersionTemplate: tmpl(kmspb.CryptoKeyVersion_HMAC_SHA256, 0)}, codes.Unimplemented},
		{"EXTERNAL", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, VersionTemplate: tmpl(0, kmspb.ProtectionLevel_EXTERNAL)}, codes.Unimplemented},
		{"rotation", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, RotationSchedule: &kmspb.CryptoKey_RotationPeriod{RotationPeriod: durationpb.New(24 * time.Hour)}}, codes.Unimplemented},
		{"import only", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, ImportOnly: true}, codes.Unimplemented},
		// [ref] destroy_scheduled_duration: 24 hours to 120 days.
		{"destroy too soon", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, DestroyScheduledDuration: durationpb.New(time.Hour)}, codes.InvalidArgument},
		{"destroy too late", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, DestroyScheduledDuration: durationpb.New(121 * 24 * time.Hour)}, codes.InvalidArgument},
		// [ref] labels: lowercase keys starting with a letter.
		{"bad label key", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, Labels: map[string]string{"Env": "x"}}, codes.InvalidArgument},
		{"bad label value", ring, "k", &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, Labels: map[string]string{"env": "X Y"}}, codes.InvalidArgument},
	} {
		_, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: tc.parent, CryptoKeyId: tc.id, CryptoKey: tc.key})
		wantCode(t, tc.why, err, tc.code)
	}
	// Nothing of the refused requests was created.
	if _, err := c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: ring + "/cryptoKeys/k"}); status.Code(err) != codes.NotFound {
		t.Errorf("a refused key exists: %v", err)
	}
	// [ref] HSM is accepted and reported; a custom destroy duration kept.
	k, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "hsm", CryptoKey: &kmspb.CryptoKey{
		Purpose:                  kmspb.CryptoKey_ASYMMETRIC_SIGN,
		VersionTemplate:          tmpl(kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, kmspb.ProtectionLevel_HSM),
		DestroyScheduledDuration: durationpb.New(48 * time.Hour),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if k.VersionTemplate.ProtectionLevel != kmspb.ProtectionLevel_HSM || k.DestroyScheduledDuration.AsDuration() != 48*time.Hour {
		t.Errorf("HSM key = %v", k)
	}
}

// TestVersionsAndPrimary covers skip_initial_version_creation,
// CreateCryptoKeyVersion, ListCryptoKeyVersions, ListCryptoKeys and
// UpdateCryptoKeyPrimaryVersion.
func TestVersionsAndPrimary(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	// [ref] skip_initial_version_creation: no version, so no primary.
	k := mustKey(t, c, ring, "sym", kmspb.CryptoKey_ENCRYPT_DECRYPT, 0, true)
	if k.Primary != nil {
		t.Errorf("skipped initial version, yet primary = %v", k.Primary)
	}
	if _, err := c.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: k.Name}).Next(); err != iterator.Done {
		t.Errorf("versions of a key created without one: err = %v, want none", err)
	}
	// [emulator] Encrypt without a primary is FailedPrecondition.
	_, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.Name, Plaintext: []byte("x")})
	wantCode(t, "Encrypt without a primary", err, codes.FailedPrecondition)
	// [ref] CreateCryptoKeyVersion assigns the next sequential id, ENABLED
	// when unset; it doesn't change the primary.
	for i := 1; i <= 12; i++ {
		v, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: k.Name})
		if err != nil {
			t.Fatal(err)
		}
		if v.Name != fmt.Sprintf("%s/cryptoKeyVersions/%d", k.Name, i) || v.State != kmspb.CryptoKeyVersion_ENABLED {
			t.Errorf("version %d = %v", i, v)
		}
	}
	if got, _ := c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: k.Name}); got.GetPrimary() != nil {
		t.Errorf("CreateCryptoKeyVersion set a primary: %v", got.GetPrimary())
	}
	v13, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: k.Name, CryptoKeyVersion: &kmspb.CryptoKeyVersion{State: kmspb.CryptoKeyVersion_DISABLED}})
	if err != nil || v13.State != kmspb.CryptoKeyVersion_DISABLED {
		t.Errorf("CreateCryptoKeyVersion(DISABLED) = %v, %v", v13, err)
	}
	_, err = c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: k.Name, CryptoKeyVersion: &kmspb.CryptoKeyVersion{State: kmspb.CryptoKeyVersion_DESTROYED}})
	wantCode(t, "CreateCryptoKeyVersion(DESTROYED)", err, codes.InvalidArgument)
	_, err = c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: ring + "/cryptoKeys/nope"})
	wantCode(t, "CreateCryptoKeyVersion of a missing key", err, codes.NotFound)
	// [ref] paged list; [emulator] in id order (10 after 9).
	var ids []string
	it := c.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: k.Name})
	it.PageInfo().MaxSize = 5
	for {
		v, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.Name[strings.LastIndexByte(v.Name, '/')+1:])
	}
	if got := strings.Join(ids, ","); got != "1,2,3,4,5,6,7,8,9,10,11,12,13" {
		t.Errorf("listed versions %s", got)
	}
	// [ref] UpdateCryptoKeyPrimaryVersion.
	k, err = c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: k.Name, CryptoKeyVersionId: "10"})
	if err != nil || k.Primary.GetName() != k.Name+"/cryptoKeyVersions/10" {
		t.Fatalf("UpdateCryptoKeyPrimaryVersion = %v, %v", k, err)
	}
	enc, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.Name, Plaintext: []byte("x")})
	if err != nil || enc.Name != k.Primary.Name {
		t.Errorf("Encrypt after setting the primary: %v, %v", enc, err)
	}
	for _, tc := range []struct {
		id   string
		code codes.Code
	}{
		{"99", codes.NotFound},                // [ref] the version must exist
		{"13", codes.FailedPrecondition},      // [emulator] a DISABLED version can't be primary
		{"abc", codes.InvalidArgument},        // [ref] an id
		{"010", codes.InvalidArgument},        // [emulator] canonical ids only
		{"", codes.InvalidArgument},           // [ref] required
		{"2147483648", codes.InvalidArgument}, // [emulator] out of range
	} {
		_, err := c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: k.Name, CryptoKeyVersionId: tc.id})
		wantCode(t, "UpdateCryptoKeyPrimaryVersion to "+tc.id, err, tc.code)
	}
	// [ref] ListCryptoKeys, paged and counted.
	mustKey(t, c, ring, "a-sign", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, true)
	mustKey(t, c, ring, "b-sign", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, true)
	var keys []string
	kit := c.ListCryptoKeys(ctx, &kmspb.ListCryptoKeysRequest{Parent: ring})
	kit.PageInfo().MaxSize = 2
	for {
		k, err := kit.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.Name[strings.LastIndexByte(k.Name, '/')+1:])
	}
	if got := strings.Join(keys, ","); got != "a-sign,b-sign,sym" {
		t.Errorf("listed keys %s", got)
	}
	_, err = c.ListCryptoKeys(ctx, &kmspb.ListCryptoKeysRequest{Parent: location + "/keyRings/nope"}).Next()
	wantCode(t, "ListCryptoKeys of a missing ring", err, codes.NotFound)
}

// TestEd25519 signs with EC_SIGN_ED25519 and verifies with crypto/ed25519
// against the PEM public key.
func TestEd25519(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	k := mustKey(t, c, ring, "ed", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, false)
	vname := k.Name + "/cryptoKeyVersions/1"

	// [ref] GetPublicKey: SubjectPublicKeyInfo PEM, pem_crc32c, algorithm, name.
	pk, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: vname})
	if err != nil {
		t.Fatal(err)
	}
	if pk.Name != vname || pk.Algorithm != kmspb.CryptoKeyVersion_EC_SIGN_ED25519 || pk.ProtectionLevel != kmspb.ProtectionLevel_SOFTWARE {
		t.Errorf("GetPublicKey = %v", pk)
	}
	checkSum(t, "pem_crc32c", []byte(pk.Pem), pk.PemCrc32C)
	pub, ok := parsePEM(t, pk.Pem).(ed25519.PublicKey)
	if !ok {
		t.Fatalf("public key is %T, want ed25519.PublicKey", parsePEM(t, pk.Pem))
	}

	// [algos] EC_SIGN_ED25519 is pure EdDSA over data; [integrity]
	// data_crc32c verified and reported, signature_crc32c returned.
	msg := []byte("conifer checkpoint\n42\nroot\n")
	resp, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: vname, Data: msg, DataCrc32C: sum32(msg)})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.VerifiedDataCrc32C || resp.VerifiedDigestCrc32C || resp.Name != vname || resp.ProtectionLevel != kmspb.ProtectionLevel_SOFTWARE {
		t.Errorf("AsymmetricSign = %v", resp)
	}
	checkSum(t, "signature_crc32c", resp.Signature, resp.SignatureCrc32C)
	if len(resp.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, resp.Signature) {
		t.Fatalf("signature %x does not verify", resp.Signature)
	}
	// Every bit of the signature and of the message matters.
	for i := range len(resp.Signature) * 8 {
		sig := bytes.Clone(resp.Signature)
		sig[i/8] ^= 1 << (i % 8)
		if ed25519.Verify(pub, msg, sig) {
			t.Fatalf("signature with bit %d flipped verifies", i)
		}
	}
	for i := range len(msg) * 8 {
		m := bytes.Clone(msg)
		m[i/8] ^= 1 << (i % 8)
		if ed25519.Verify(pub, m, resp.Signature) {
			t.Fatalf("message with bit %d flipped verifies", i)
		}
	}
	// RFC 8032 Ed25519 is deterministic; without a checksum, verified_* stay false.
	again, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: vname, Data: msg})
	if err != nil || !bytes.Equal(again.Signature, resp.Signature) || again.VerifiedDataCrc32C {
		t.Errorf("second signature %v, %v; want the same bytes and verified_data_crc32c false", again, err)
	}

	digest := sha256.Sum256(msg)
	for _, tc := range []struct {
		why  string
		req  *kmspb.AsymmetricSignRequest
		code codes.Code
	}{
		// [algos] Ed25519 takes data, not a digest.
		{"digest", &kmspb.AsymmetricSignRequest{Name: vname, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}}}, codes.InvalidArgument},
		// [contract] TestAsymmetricSignBothDigestAndData.
		{"digest and data", &kmspb.AsymmetricSignRequest{Name: vname, Data: msg, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}}}, codes.InvalidArgument},
		// [emulator] empty data (as fakekms's MacSign).
		{"no data", &kmspb.AsymmetricSignRequest{Name: vname}, codes.InvalidArgument},
		// [integrity] a checksum mismatch is INVALID_ARGUMENT.
		{"data_crc32c mismatch", &kmspb.AsymmetricSignRequest{Name: vname, Data: msg, DataCrc32C: wrapperspb.Int64(sum32(msg).GetValue() ^ 1)}, codes.InvalidArgument},
		{"data_crc32c out of range", &kmspb.AsymmetricSignRequest{Name: vname, Data: msg, DataCrc32C: wrapperspb.Int64(sum32(msg).GetValue() + 1<<32)}, codes.InvalidArgument},
		// [ref] data up to 64 KiB.
		{"data too big", &kmspb.AsymmetricSignRequest{Name: vname, Data: make([]byte, 64<<10+1)}, codes.InvalidArgument},
		// [contract] TestAsymmetricSignMalformedName / NotFound.
		{"malformed name", &kmspb.AsymmetricSignRequest{Name: "malformed name", Data: msg}, codes.InvalidArgument},
		{"key name", &kmspb.AsymmetricSignRequest{Name: k.Name, Data: msg}, codes.InvalidArgument},
		{"missing version", &kmspb.AsymmetricSignRequest{Name: k.Name + "/cryptoKeyVersions/2", Data: msg}, codes.NotFound},
		{"missing key", &kmspb.AsymmetricSignRequest{Name: location + "/keyRings/foo/cryptoKeys/bar/cryptoKeyVersions/1", Data: msg}, codes.NotFound},
	} {
		_, err := c.AsymmetricSign(ctx, tc.req)
		wantCode(t, tc.why, err, tc.code)
	}
	big := make([]byte, 64<<10)
	if resp, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: vname, Data: big}); err != nil || !ed25519.Verify(pub, big, resp.Signature) {
		t.Errorf("signing 64 KiB: %v", err)
	}
}

// TestP256 signs with EC_SIGN_P256_SHA256 and verifies the DER signatures
// with crypto/ecdsa.
func TestP256(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	k := mustKey(t, c, ring, "p256", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, false)
	vname := k.Name + "/cryptoKeyVersions/1"
	pk, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: vname})
	if err != nil {
		t.Fatal(err)
	}
	checkSum(t, "pem_crc32c", []byte(pk.Pem), pk.PemCrc32C)
	pub, ok := parsePEM(t, pk.Pem).(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key %v is not a P-256 key", pub)
	}
	msg := []byte("hello")
	digest := sha256.Sum256(msg)
	// [ref] digest.sha256 with digest_crc32c; [integrity] verified_digest_crc32c.
	resp, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{
		Name:         vname,
		Digest:       &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}},
		DigestCrc32C: sum32(digest[:]),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.VerifiedDigestCrc32C || resp.VerifiedDataCrc32C || resp.Name != vname {
		t.Errorf("AsymmetricSign = %v", resp)
	}
	checkSum(t, "signature_crc32c", resp.Signature, resp.SignatureCrc32C)
	if !ecdsa.VerifyASN1(pub, digest[:], resp.Signature) {
		t.Fatal("DER signature does not verify")
	}
	for i := range len(resp.Signature) * 8 {
		sig := bytes.Clone(resp.Signature)
		sig[i/8] ^= 1 << (i % 8)
		if ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Fatalf("signature with bit %d flipped verifies", i)
		}
	}
	other := sha256.Sum256([]byte("hellp"))
	if ecdsa.VerifyASN1(pub, other[:], resp.Signature) {
		t.Fatal("signature verifies for another digest")
	}
	// [contract] TestECSignData: data is hashed by the service.
	resp, err = c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: vname, Data: msg, DataCrc32C: sum32(msg)})
	if err != nil || !resp.VerifiedDataCrc32C || !ecdsa.VerifyASN1(pub, digest[:], resp.Signature) {
		t.Errorf("signing data: %v, %v", resp, err)
	}
	d384 := sha512.Sum384(msg)
	for _, tc := range []struct {
		why string
		req *kmspb.AsymmetricSignRequest
	}{
		// [contract] TestAsymmetricSignWrongDigest / IncorrectDigestLength / BothDigestAndData.
		{"sha384 digest", &kmspb.AsymmetricSignRequest{Name: vname, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha384{Sha384: d384[:]}}}},
		{"short sha256", &kmspb.AsymmetricSignRequest{Name: vname, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:31]}}}},
		{"digest and data", &kmspb.AsymmetricSignRequest{Name: vname, Data: msg, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}}}},
		// [ref] one of them is needed.
		{"neither", &kmspb.AsymmetricSignRequest{Name: vname}},
		// [integrity] digest_crc32c mismatch.
		{"digest_crc32c mismatch", &kmspb.AsymmetricSignRequest{Name: vname, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}}, DigestCrc32C: sum32(other[:])}},
	} {
		_, err := c.AsymmetricSign(ctx, tc.req)
		wantCode(t, tc.why, err, codes.InvalidArgument)
	}
}

// TestGetPublicKeyFormats: [ref] public_key_format — unset fills pem; PEM
// or DER fill public_key (with its checksum); NIST_PQC is for PQC
// algorithms only.
func TestGetPublicKeyFormats(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	k := mustKey(t, c, ring, "ed", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, false)
	vname := k.Name + "/cryptoKeyVersions/1"
	def, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: vname})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: vname, PublicKeyFormat: kmspb.PublicKey_PEM})
	if err != nil || string(p.PublicKey.GetData()) != def.Pem || p.PublicKeyFormat != kmspb.PublicKey_PEM {
		t.Errorf("PEM format: %v, %v", p, err)
	}
	checkSum(t, "public_key PEM checksum", p.PublicKey.GetData(), p.PublicKey.GetCrc32CChecksum())
	d, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: vname, PublicKeyFormat: kmspb.PublicKey_DER})
	if err != nil {
		t.Fatal(err)
	}
	checkSum(t, "public_key DER checksum", d.PublicKey.GetData(), d.PublicKey.GetCrc32CChecksum())
	pub, err := x509.ParsePKIXPublicKey(d.PublicKey.GetData())
	if err != nil || !pub.(ed25519.PublicKey).Equal(parsePEM(t, def.Pem)) {
		t.Errorf("DER public key %v (%v) differs from the PEM one", pub, err)
	}
	_, err = c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: vname, PublicKeyFormat: kmspb.PublicKey_NIST_PQC})
	wantCode(t, "NIST_PQC format of an Ed25519 key", err, codes.InvalidArgument)
	// [contract] TestGetPublicKeyMalformedName / NotFound.
	_, err = c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: "malformed name"})
	wantCode(t, "malformed name", err, codes.InvalidArgument)
	_, err = c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: k.Name + "/cryptoKeyVersions/7"})
	wantCode(t, "missing version", err, codes.NotFound)
}

// TestWrongPurpose: using a key for another purpose's operation.
// [contract] TestAsymmetricSignWrongPurpose and TestGetPublicKeySymmetric
// show the real service answers FAILED_PRECONDITION; [ref] "The
// CryptoKey.purpose must be ENCRYPT_DECRYPT" for Encrypt/Decrypt, which the
// emulator answers the same way.
func TestWrongPurpose(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	sym := mustKey(t, c, ring, "sym", kmspb.CryptoKey_ENCRYPT_DECRYPT, 0, false)
	sig := mustKey(t, c, ring, "sig", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, false)
	digest := sha256.Sum256([]byte("x"))
	_, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: sym.Primary.Name, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}}})
	wantCode(t, "signing with an ENCRYPT_DECRYPT key", err, codes.FailedPrecondition)
	_, err = c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: sym.Primary.Name, Data: []byte("x")})
	wantCode(t, "signing data with an ENCRYPT_DECRYPT key", err, codes.FailedPrecondition)
	_, err = c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: sym.Primary.Name})
	wantCode(t, "GetPublicKey of a symmetric key", err, codes.FailedPrecondition)
	_, err = c.Encrypt(ctx, &kmspb.EncryptRequest{Name: sig.Name, Plaintext: []byte("x")})
	wantCode(t, "Encrypt with an ASYMMETRIC_SIGN key", err, codes.FailedPrecondition)
	_, err = c.Encrypt(ctx, &kmspb.EncryptRequest{Name: sig.Name + "/cryptoKeyVersions/1", Plaintext: []byte("x")})
	wantCode(t, "Encrypt with an ASYMMETRIC_SIGN version", err, codes.FailedPrecondition)
	enc, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: sym.Name, Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: sig.Name, Ciphertext: enc.Ciphertext})
	wantCode(t, "Decrypt with an ASYMMETRIC_SIGN key", err, codes.FailedPrecondition)
	_, err = c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: sig.Name, CryptoKeyVersionId: "1"})
	wantCode(t, "UpdateCryptoKeyPrimaryVersion of a signing key", err, codes.FailedPrecondition)
}

// TestEncryptDecrypt: GOOGLE_SYMMETRIC_ENCRYPTION round trips, AAD, CRC32C
// both ways, tampering, sizes.
func TestEncryptDecrypt(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	k := mustKey(t, c, ring, "sym", kmspb.CryptoKey_ENCRYPT_DECRYPT, 0, false)
	pt, aad := []byte("vrf secret"), []byte("realm=example")

	// [integrity] request checksums verified and reported; ciphertext_crc32c
	// returned; [ref] name is the version used.
	enc, err := c.Encrypt(ctx, &kmspb.EncryptRequest{
		Name: k.Name, Plaintext: pt, AdditionalAuthenticatedData: aad,
		PlaintextCrc32C: sum32(pt), AdditionalAuthenticatedDataCrc32C: sum32(aad),
	})
	if err != nil {
		t.Fatal(err)
	}
	if enc.Name != k.Primary.Name || !enc.VerifiedPlaintextCrc32C || !enc.VerifiedAdditionalAuthenticatedDataCrc32C || enc.ProtectionLevel != kmspb.ProtectionLevel_SOFTWARE {
		t.Errorf("Encrypt = %v", enc)
	}
	checkSum(t, "ciphertext_crc32c", enc.Ciphertext, enc.CiphertextCrc32C)
	if bytes.Contains(enc.Ciphertext, pt) {
		t.Error("the ciphertext contains the plaintext")
	}
	dec, err := c.Decrypt(ctx, &kmspb.DecryptRequest{
		Name: k.Name, Ciphertext: enc.Ciphertext, AdditionalAuthenticatedData: aad,
		CiphertextCrc32C: sum32(enc.Ciphertext), AdditionalAuthenticatedDataCrc32C: sum32(aad),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dec.Plaintext, pt) || !dec.UsedPrimary || dec.ProtectionLevel != kmspb.ProtectionLevel_SOFTWARE {
		t.Errorf("Decrypt = %v", dec)
	}
	checkSum(t, "plaintext_crc32c", dec.Plaintext, dec.PlaintextCrc32C)
	// Without checksums, verified_* are false.
	enc2, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.Name, Plaintext: pt})
	if err != nil || enc2.VerifiedPlaintextCrc32C || enc2.VerifiedAdditionalAuthenticatedDataCrc32C {
		t.Errorf("Encrypt without checksums = %v, %v", enc2, err)
	}
	if bytes.Equal(enc2.Ciphertext, enc.Ciphertext) {
		t.Error("two encryptions gave the same ciphertext")
	}

	// Tampering: every bit of the ciphertext, and the AAD, matter.
	for i := range len(enc.Ciphertext) * 8 {
		ct := bytes.Clone(enc.Ciphertext)
		ct[i/8] ^= 1 << (i % 8)
		_, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.Name, Ciphertext: ct, AdditionalAuthenticatedData: aad})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("ciphertext with bit %d flipped: err %v, want InvalidArgument", i, err)
		}
	}
	for _, tc := range []struct {
		why  string
		req  *kmspb.DecryptRequest
		code codes.Code
	}{
		{"wrong AAD", &kmspb.DecryptRequest{Name: k.Name, Ciphertext: enc.Ciphertext, AdditionalAuthenticatedData: []byte("realm=other")}, codes.InvalidArgument},
		{"missing AAD", &kmspb.DecryptRequest{Name: k.Name, Ciphertext: enc.Ciphertext}, codes.InvalidArgument},
		{"truncated", &kmspb.DecryptRequest{Name: k.Name, Ciphertext: enc.Ciphertext[:20], AdditionalAuthenticatedData: aad}, codes.InvalidArgument},
		{"empty", &kmspb.DecryptRequest{Name: k.Name}, codes.InvalidArgument},
		// [integrity] request checksum mismatches are INVALID_ARGUMENT.
		{"ciphertext_crc32c mismatch", &kmspb.DecryptRequest{Name: k.Name, Ciphertext: enc.Ciphertext, AdditionalAuthenticatedData: aad, CiphertextCrc32C: sum32(pt)}, codes.InvalidArgument},
		{"AAD crc mismatch", &kmspb.DecryptRequest{Name: k.Name, Ciphertext: enc.Ciphertext, AdditionalAuthenticatedData: aad, AdditionalAuthenticatedDataCrc32C: sum32(pt)}, codes.InvalidArgument},
		// [ref] Decrypt takes a CryptoKey name.
		{"version name", &kmspb.DecryptRequest{Name: k.Primary.Name, Ciphertext: enc.Ciphertext, AdditionalAuthenticatedData: aad}, codes.InvalidArgument},
		{"missing key", &kmspb.DecryptRequest{Name: ring + "/cryptoKeys/nope", Ciphertext: enc.Ciphertext, AdditionalAuthenticatedData: aad}, codes.NotFound},
	} {
		_, err := c.Decrypt(ctx, tc.req)
		wantCode(t, tc.why, err, tc.code)
	}
	// A ciphertext is bound to its key (another key with a version 1 can't open it).
	k2 := mustKey(t, c, ring, "sym2", kmspb.CryptoKey_ENCRYPT_DECRYPT, 0, false)
	_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: k2.Name, Ciphertext: enc.Ciphertext, AdditionalAuthenticatedData: aad})
	wantCode(t, "ciphertext of another key", err, codes.InvalidArgument)

	for _, tc := range []struct {
		why string
		req *kmspb.EncryptRequest
	}{
		{"plaintext_crc32c mismatch", &kmspb.EncryptRequest{Name: k.Name, Plaintext: pt, PlaintextCrc32C: sum32(aad)}},
		{"AAD crc mismatch", &kmspb.EncryptRequest{Name: k.Name, Plaintext: pt, AdditionalAuthenticatedData: aad, AdditionalAuthenticatedDataCrc32C: sum32(pt)}},
		// [ref] plaintext is required, at most 64 KiB; AAD at most 64 KiB.
		{"empty plaintext", &kmspb.EncryptRequest{Name: k.Name}},
		{"plaintext too big", &kmspb.EncryptRequest{Name: k.Name, Plaintext: make([]byte, 64<<10+1)}},
		{"AAD too big", &kmspb.EncryptRequest{Name: k.Name, Plaintext: pt, AdditionalAuthenticatedData: make([]byte, 64<<10+1)}},
		{"malformed name", &kmspb.EncryptRequest{Name: "projects/p", Plaintext: pt}},
	} {
		_, err := c.Encrypt(ctx, tc.req)
		wantCode(t, tc.why, err, codes.InvalidArgument)
	}
	// The limits themselves are accepted, and round trip.
	maxPT, maxAD := bytes.Repeat([]byte{7}, 64<<10), bytes.Repeat([]byte{9}, 64<<10)
	big, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.Name, Plaintext: maxPT, AdditionalAuthenticatedData: maxAD})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.Name, Ciphertext: big.Ciphertext, AdditionalAuthenticatedData: maxAD}); err != nil || !bytes.Equal(d.Plaintext, maxPT) {
		t.Errorf("64 KiB round trip: %v", err)
	}
	// [ref] HSM keys: plaintext + AAD at most 8 KiB.
	hsm, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "hsm", CryptoKey: &kmspb.CryptoKey{
		Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, VersionTemplate: &kmspb.CryptoKeyVersionTemplate{ProtectionLevel: kmspb.ProtectionLevel_HSM},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: hsm.Name, Plaintext: make([]byte, 4<<10), AdditionalAuthenticatedData: make([]byte, 4<<10)}); err != nil || e.ProtectionLevel != kmspb.ProtectionLevel_HSM {
		t.Errorf("8 KiB with an HSM key: %v, %v", e, err)
	}
	_, err = c.Encrypt(ctx, &kmspb.EncryptRequest{Name: hsm.Name, Plaintext: make([]byte, 4<<10), AdditionalAuthenticatedData: make([]byte, 4<<10+1)})
	wantCode(t, "8 KiB + 1 with an HSM key", err, codes.InvalidArgument)
}

// TestRotation: [ref] Decrypt "The server will choose the appropriate
// version", so ciphertexts of an old primary still decrypt after rotation;
// used_primary tells which; a DISABLED version can't decrypt.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	k := mustKey(t, c, ring, "sym", kmspb.CryptoKey_ENCRYPT_DECRYPT, 0, false)
	aad := []byte("aad")
	old, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.Name, Plaintext: []byte("old"), AdditionalAuthenticatedData: aad})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: k.Name})
	if err != nil {
		t.Fatal(err)
	}
	// Still version 1 until the primary moves.
	if e, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.Name, Plaintext: []byte("x")}); err != nil || e.Name != k.Primary.Name {
		t.Errorf("Encrypt before moving the primary used %v (%v)", e.GetName(), err)
	}
	if _, err := c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: k.Name, CryptoKeyVersionId: "2"}); err != nil {
		t.Fatal(err)
	}
	cur, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.Name, Plaintext: []byte("new"), AdditionalAuthenticatedData: aad})
	if err != nil || cur.Name != v2.Name {
		t.Fatalf("Encrypt after rotation used %v (%v), want %s", cur.GetName(), err, v2.Name)
	}
	// [ref] Encrypt also takes a CryptoKeyVersion name.
	pinned, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.Primary.Name, Plaintext: []byte("pinned")})
	if err != nil || pinned.Name != k.Primary.Name {
		t.Errorf("Encrypt with version 1 named: %v, %v", pinned, err)
	}
	for _, tc := range []struct {
		ct      []byte
		aad     []byte
		want    string
		primary bool
	}{{old.Ciphertext, aad, "old", false}, {cur.Ciphertext, aad, "new", true}, {pinned.Ciphertext, nil, "pinned", false}} {
		d, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.Name, Ciphertext: tc.ct, AdditionalAuthenticatedData: tc.aad})
		if err != nil || string(d.Plaintext) != tc.want || d.UsedPrimary != tc.primary {
			t.Errorf("Decrypt of %q after rotation = %v, %v", tc.want, d, err)
		}
	}
	setState(t, c, k.Primary.Name, kmspb.CryptoKeyVersion_DISABLED)
	_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.Name, Ciphertext: old.Ciphertext, AdditionalAuthenticatedData: aad})
	wantCode(t, "Decrypt with a DISABLED version", err, codes.FailedPrecondition)
	if _, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.Name, Ciphertext: cur.Ciphertext, AdditionalAuthenticatedData: aad}); err != nil {
		t.Errorf("Decrypt with the enabled primary: %v", err)
	}
	setState(t, c, k.Primary.Name, kmspb.CryptoKeyVersion_ENABLED)
	if _, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.Name, Ciphertext: old.Ciphertext, AdditionalAuthenticatedData: aad}); err != nil {
		t.Errorf("Decrypt after re-enabling: %v", err)
	}
}

func setState(t *testing.T, c *kms.KeyManagementClient, name string, s kmspb.CryptoKeyVersion_CryptoKeyVersionState) *kmspb.CryptoKeyVersion {
	t.Helper()
	v, err := c.UpdateCryptoKeyVersion(context.Background(), &kmspb.UpdateCryptoKeyVersionRequest{
		CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: name, State: s},
		UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	})
	if err != nil {
		t.Fatalf("setting %s to %v: %v", name, s, err)
	}
	if v.State != s {
		t.Fatalf("UpdateCryptoKeyVersion returned state %v, want %v", v.State, s)
	}
	return v
}

// TestVersionStates: Update, Destroy, Restore, and the states' effect on
// use.
func TestVersionStates(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	_, c := start(t, Options{Now: clock.Now})
	ring := mustRing(t, c, "r")
	k := mustKey(t, c, ring, "ed", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, false)
	v := k.Name + "/cryptoKeyVersions/1"
	sign := func() error {
		_, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: v, Data: []byte("m")})
		return err
	}
	getKey := func() error {
		_, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: v})
		return err
	}
	// [contract] TestAsymmetricSignDisabled, TestGetPublicKeyDisabled.
	setState(t, c, v, kmspb.CryptoKeyVersion_DISABLED)
	wantCode(t, "sign with a DISABLED version", sign(), codes.FailedPrecondition)
	wantCode(t, "GetPublicKey of a DISABLED version", getKey(), codes.FailedPrecondition)
	// [contract] TestUpdateCryptoKeyVersionDisableEnable.
	setState(t, c, v, kmspb.CryptoKeyVersion_ENABLED)
	if err := sign(); err != nil {
		t.Errorf("sign after re-enabling: %v", err)
	}
	// [contract] TestUpdateCryptoKeyVersionNoFields / UnsupportedState / UnsupportedField.
	for _, tc := range []struct {
		why  string
		req  *kmspb.UpdateCryptoKeyVersionRequest
		code codes.Code
	}{
		{"no mask", &kmspb.UpdateCryptoKeyVersionRequest{CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: v, State: kmspb.CryptoKeyVersion_DISABLED}}, codes.InvalidArgument},
		{"PENDING_IMPORT", &kmspb.UpdateCryptoKeyVersionRequest{CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: v, State: kmspb.CryptoKeyVersion_PENDING_IMPORT}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}}, codes.InvalidArgument},
		{"DESTROYED", &kmspb.UpdateCryptoKeyVersionRequest{CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: v, State: kmspb.CryptoKeyVersion_DESTROYED}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}}, codes.InvalidArgument},
		{"name field", &kmspb.UpdateCryptoKeyVersionRequest{CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: v}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}}, codes.InvalidArgument},
		{"missing version", &kmspb.UpdateCryptoKeyVersionRequest{CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: k.Name + "/cryptoKeyVersions/5", State: kmspb.CryptoKeyVersion_DISABLED}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}}, codes.NotFound},
	} {
		_, err := c.UpdateCryptoKeyVersion(ctx, tc.req)
		wantCode(t, tc.why, err, tc.code)
	}

	// [contract] TestDestroyEnabledCryptoKeyVersion: DESTROY_SCHEDULED,
	// destroy_time = now + destroy_scheduled_duration.
	d, err := c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v})
	if err != nil {
		t.Fatal(err)
	}
	due := clock.Now().Truncate(time.Microsecond).Add(30 * 24 * time.Hour)
	if d.State != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED || !d.DestroyTime.AsTime().Equal(due) {
		t.Errorf("Destroy = %v, want DESTROY_SCHEDULED until %v", d, due)
	}
	wantCode(t, "sign with a DESTROY_SCHEDULED version", sign(), codes.FailedPrecondition)
	// [contract] TestDestroyCryptoKeyVersionUnsupportedState.
	_, err = c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v})
	wantCode(t, "second Destroy", err, codes.FailedPrecondition)
	_, err = c.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: v, State: kmspb.CryptoKeyVersion_ENABLED}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}})
	wantCode(t, "enabling a DESTROY_SCHEDULED version", err, codes.FailedPrecondition)
	// [ref] Restore: DESTROY_SCHEDULED → DISABLED, destroy_time cleared.
	r, err := c.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: v})
	if err != nil || r.State != kmspb.CryptoKeyVersion_DISABLED || r.DestroyTime != nil {
		t.Errorf("Restore = %v, %v", r, err)
	}
	_, err = c.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: v})
	wantCode(t, "Restore of a DISABLED version", err, codes.FailedPrecondition)
	setState(t, c, v, kmspb.CryptoKeyVersion_ENABLED)
	pk, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: v})
	if err != nil {
		t.Fatal(err)
	}
	// [ref] "At that time, the state will automatically change to DESTROYED,
	// and the key material will be irrevocably destroyed."
	if _, err := c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30*24*time.Hour - time.Second)
	if got, _ := c.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: v}); got.GetState() != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED {
		t.Errorf("a second before destroy_time: %v", got)
	}
	clock.Advance(time.Second)
	got, err := c.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: v})
	if err != nil || got.State != kmspb.CryptoKeyVersion_DESTROYED || got.DestroyEventTime == nil || got.DestroyTime != nil {
		t.Errorf("at destroy_time: %v, %v", got, err)
	}
	wantCode(t, "sign with a DESTROYED version", sign(), codes.FailedPrecondition)
	wantCode(t, "GetPublicKey of a DESTROYED version", getKey(), codes.FailedPrecondition)
	_, err = c.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: v})
	wantCode(t, "Restore of a DESTROYED version", err, codes.FailedPrecondition)
	// A new version signs under a new key.
	v2, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: k.Name})
	if err != nil {
		t.Fatal(err)
	}
	pk2, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: v2.Name})
	if err != nil || pk2.Pem == pk.Pem {
		t.Errorf("version 2's public key: %v (%v), want a new key", pk2.GetPem(), err)
	}
}

// TestPendingGeneration: [ref] asymmetric versions start in
// PENDING_GENERATION ([contract] CreateTestCKVAndWait polls for ENABLED);
// Options.GenerationDelay reproduces it.
func TestPendingGeneration(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	_, c := start(t, Options{Now: clock.Now, GenerationDelay: time.Minute})
	ring := mustRing(t, c, "r")
	k := mustKey(t, c, ring, "p256", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, false)
	v := k.Name + "/cryptoKeyVersions/1"
	got, err := c.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: v})
	if err != nil || got.State != kmspb.CryptoKeyVersion_PENDING_GENERATION || got.GenerateTime != nil {
		t.Errorf("new version = %v, %v; want PENDING_GENERATION", got, err)
	}
	_, err = c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: v})
	wantCode(t, "GetPublicKey while pending", err, codes.FailedPrecondition)
	_, err = c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v})
	wantCode(t, "Destroy while pending", err, codes.FailedPrecondition)
	// Symmetric keys are generated at once.
	sym := mustKey(t, c, ring, "sym", kmspb.CryptoKey_ENCRYPT_DECRYPT, 0, false)
	if sym.Primary.State != kmspb.CryptoKeyVersion_ENABLED {
		t.Errorf("symmetric version = %v", sym.Primary)
	}
	clock.Advance(time.Minute)
	got, err = c.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: v})
	if err != nil || got.State != kmspb.CryptoKeyVersion_ENABLED || got.GenerateTime == nil {
		t.Errorf("after the delay: %v, %v; want ENABLED", got, err)
	}
	if _, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: v}); err != nil {
		t.Errorf("GetPublicKey after the delay: %v", err)
	}
}

// TestMalformedNames: every method refuses malformed names with
// InvalidArgument ([contract] the MalformedName tests).
func TestMalformedNames(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	k := mustKey(t, c, ring, "k", kmspb.CryptoKey_ENCRYPT_DECRYPT, 0, false)
	badVersions := []string{"malformed name", k.Name, k.Name + "/cryptoKeyVersions/0", k.Name + "/cryptoKeyVersions/01",
		k.Name + "/cryptoKeyVersions/x", k.Name + "/cryptoKeyVersions/1/", k.Name + "/cryptoKeyVersions/1/extra", "/" + k.Name + "/cryptoKeyVersions/1"}
	for _, n := range badVersions {
		_, err := c.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: n})
		wantCode(t, "GetCryptoKeyVersion "+n, err, codes.InvalidArgument)
		_, err = c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: n})
		wantCode(t, "DestroyCryptoKeyVersion "+n, err, codes.InvalidArgument)
		_, err = c.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: n})
		wantCode(t, "RestoreCryptoKeyVersion "+n, err, codes.InvalidArgument)
	}
	for _, n := range []string{"malformed", ring, ring + "/cryptoKeys/", ring + "/cryptoKeys/a b", ring + "/keys/k"} {
		_, err := c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: n})
		wantCode(t, "GetCryptoKey "+n, err, codes.InvalidArgument)
		_, err = c.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: n}).Next()
		wantCode(t, "ListCryptoKeyVersions "+n, err, codes.InvalidArgument)
		_, err = c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: n})
		wantCode(t, "CreateCryptoKeyVersion "+n, err, codes.InvalidArgument)
		_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: n, Ciphertext: []byte("x")})
		wantCode(t, "Decrypt "+n, err, codes.InvalidArgument)
	}
	for _, n := range []string{"", "projects/p", "projects//locations/l", "projects/p/locations/l/x"} {
		_, err := c.ListKeyRings(ctx, &kmspb.ListKeyRingsRequest{Parent: n}).Next()
		wantCode(t, "ListKeyRings "+n, err, codes.InvalidArgument)
		_, err = c.ListCryptoKeys(ctx, &kmspb.ListCryptoKeysRequest{Parent: n}).Next()
		wantCode(t, "ListCryptoKeys "+n, err, codes.InvalidArgument)
	}
}

// TestPersistence: keys survive a restart with the state file; the file is
// 0600 and replaced atomically.
func TestPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kms.json")
	clock := newFakeClock()
	srv, err := Start(ctx, Options{StateFile: path, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c, err := kms.NewKeyManagementClient(ctx, srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	ring := mustRing(t, c, "r")
	ed := mustKey(t, c, ring, "ed", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, false)
	p256 := mustKey(t, c, ring, "p256", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, false)
	sym, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "sym", CryptoKey: &kmspb.CryptoKey{
		Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, Labels: map[string]string{"env": "local"}, DestroyScheduledDuration: durationpb.New(48 * time.Hour),
	}})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: sym.Name, Plaintext: []byte("kept"), AdditionalAuthenticatedData: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: sym.Name}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: sym.Name, CryptoKeyVersionId: "2"}); err != nil {
		t.Fatal(err)
	}
	v3, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: sym.Name})
	if err != nil {
		t.Fatal(err)
	}
	setState(t, c, v3.Name, kmspb.CryptoKeyVersion_DISABLED)
	if _, err := c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: p256.Name + "/cryptoKeyVersions/1"}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, c, ring)
	edPub, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: ed.Name + "/cryptoKeyVersions/1"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state directory holds %d entries, want only the state file (no temporary files)", len(entries))
	}
	file1, _ := os.ReadFile(path)

	_, c2 := start(t, Options{StateFile: path, Now: clock.Now})
	if after := dump(t, c2, ring); after != before {
		t.Errorf("state after restart differs:\nbefore %s\nafter  %s", before, after)
	}
	edPub2, err := c2.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: ed.Name + "/cryptoKeyVersions/1"})
	if err != nil || edPub2.Pem != edPub.Pem {
		t.Fatalf("Ed25519 public key after restart: %v, %v", edPub2, err)
	}
	msg := []byte("after restart")
	sig, err := c2.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: edPub.Name, Data: msg})
	if err != nil || !ed25519.Verify(parsePEM(t, edPub.Pem).(ed25519.PublicKey), msg, sig.Signature) {
		t.Errorf("signature after restart doesn't verify with the old public key: %v", err)
	}
	d, err := c2.Decrypt(ctx, &kmspb.DecryptRequest{Name: sym.Name, Ciphertext: ct.Ciphertext, AdditionalAuthenticatedData: []byte("a")})
	if err != nil || string(d.Plaintext) != "kept" || d.UsedPrimary {
		t.Errorf("Decrypt after restart = %v, %v", d, err)
	}
	if file2, _ := os.ReadFile(path); !bytes.Equal(file1, file2) {
		t.Error("reads changed the state file")
	}

	// A malformed state file is an error, never silently replaced.
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, append(bytes.Clone(file1), ' '), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, Options{StateFile: bad}); !errors.Is(err, errBadState) {
		t.Errorf("Start with a non-canonical state file: %v, want errBadState", err)
	}
}

// dump renders every key and version of ring (names, states, times,
// templates) for comparison.
func dump(t *testing.T, c *kms.KeyManagementClient, ring string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	r, err := c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: ring})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(&b, r)
	kit := c.ListCryptoKeys(ctx, &kmspb.ListCryptoKeysRequest{Parent: ring})
	for {
		k, err := kit.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, k)
		vit := c.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: k.Name})
		for {
			v, err := vit.Next()
			if err == iterator.Done {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, v)
		}
	}
	return b.String()
}

// TestPersistFailureRollsBack: a change that can't be written is refused
// (Internal) and not applied.
func TestPersistFailureRollsBack(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	srv, c := start(t, Options{StateFile: filepath.Join(dir, "kms.json")})
	_ = srv
	mustRing(t, c, "kept")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: location, KeyRingId: "lost"})
	wantCode(t, "CreateKeyRing without a writable state file", err, codes.Internal)
	_, err = c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: location + "/keyRings/lost"})
	wantCode(t, "GetKeyRing of the refused ring", err, codes.NotFound)
	if _, err := c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: location + "/keyRings/kept"}); err != nil {
		t.Errorf("the earlier ring is gone after the rollback: %v", err)
	}
}

// TestFaults: FailNext, FailNextAfterApply, SetLatency and Calls, seen
// through the client's own retry policy (it retries Unavailable for most
// methods, not for CreateCryptoKeyVersion).
func TestFaults(t *testing.T) {
	ctx := context.Background()
	srv, c := start(t, Options{})
	ring := mustRing(t, c, "r")
	k := mustKey(t, c, ring, "ed", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, false)

	if err := srv.FailNext("CreateCryptoKeyVersion", 1, codes.Unavailable); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: k.Name})
	wantCode(t, "CreateCryptoKeyVersion with an injected fault", err, codes.Unavailable)
	v, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: k.Name})
	if err != nil || !strings.HasSuffix(v.Name, "/cryptoKeyVersions/2") {
		t.Errorf("after the fault: %v, %v; want version 2 (the failed call made nothing)", v, err)
	}
	if n := srv.Calls("CreateCryptoKeyVersion"); n != 2 {
		t.Errorf("Calls(CreateCryptoKeyVersion) = %d, want 2", n)
	}

	// The client retries AsymmetricSign on Unavailable.
	before := srv.Calls("AsymmetricSign")
	if err := srv.FailNext("/google.cloud.kms.v1.KeyManagementService/AsymmetricSign", 2, codes.Unavailable); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: v.Name, Data: []byte("m")}); err != nil {
		t.Errorf("AsymmetricSign after two transient faults: %v", err)
	}
	if n := srv.Calls("AsymmetricSign") - before; n != 3 {
		t.Errorf("AsymmetricSign calls = %d, want 3 (two failures, one success)", n)
	}
	// Permanent codes are not retried.
	if err := srv.FailNext("AsymmetricSign", 1, codes.PermissionDenied); err != nil {
		t.Fatal(err)
	}
	_, err = c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: v.Name, Data: []byte("m")})
	wantCode(t, "AsymmetricSign with PermissionDenied", err, codes.PermissionDenied)

	// A lost response: the ring is created, the client retries and gets
	// AlreadyExists — the case callers of CreateKeyRing must handle.
	if err := srv.FailNextAfterApply("CreateKeyRing", 1, codes.Unavailable); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: location, KeyRingId: "lost-response"})
	wantCode(t, "CreateKeyRing whose first response was lost", err, codes.AlreadyExists)
	if _, err := c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: location + "/keyRings/lost-response"}); err != nil {
		t.Errorf("the ring of the lost response doesn't exist: %v", err)
	}

	// Latency beyond the caller's deadline.
	srv.SetLatency(time.Second)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = c.GetKeyRing(short, &kmspb.GetKeyRingRequest{Name: ring})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) && status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("GetKeyRing slower than its deadline: %v, want DeadlineExceeded", err)
	}
	srv.SetLatency(0)
	if _, err := c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: ring}); err != nil {
		t.Errorf("GetKeyRing without latency: %v", err)
	}

	for _, tc := range []struct {
		method string
		n      int
		code   codes.Code
	}{{"NoSuchMethod", 1, codes.Internal}, {"AsymmetricSign", 0, codes.Internal}, {"AsymmetricSign", 1, codes.OK}} {
		if err := srv.FailNext(tc.method, tc.n, tc.code); err == nil {
			t.Errorf("FailNext(%q, %d, %v) accepted", tc.method, tc.n, tc.code)
		}
	}
}

// TestConcurrency drives many clients at once (run it under -race):
// signatures verify, encryptions round trip, and concurrently created
// versions get distinct, dense ids.
func TestConcurrency(t *testing.T) {
	ctx := context.Background()
	_, c := start(t, Options{StateFile: filepath.Join(t.TempDir(), "kms.json")})
	ring := mustRing(t, c, "r")
	ed := mustKey(t, c, ring, "ed", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, false)
	sym := mustKey(t, c, ring, "sym", kmspb.CryptoKey_ENCRYPT_DECRYPT, 0, false)
	pk, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: ed.Name + "/cryptoKeyVersions/1"})
	if err != nil {
		t.Fatal(err)
	}
	pub := parsePEM(t, pk.Pem).(ed25519.PublicKey)
	const workers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*3)
	names := make(chan string, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := []byte(fmt.Sprintf("worker %d message %d", w, i))
				s, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: pk.Name, Data: msg, DataCrc32C: sum32(msg)})
				if err != nil {
					errs <- err
				} else if !ed25519.Verify(pub, msg, s.Signature) {
					errs <- fmt.Errorf("signature of %q doesn't verify", msg)
				}
				e, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: sym.Name, Plaintext: msg})
				if err != nil {
					errs <- err
					continue
				}
				d, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: sym.Name, Ciphertext: e.Ciphertext})
				if err != nil || !bytes.Equal(d.Plaintext, msg) {
					errs <- fmt.Errorf("round trip of %q: %v", msg, err)
				}
				v, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: ed.Name})
				if err != nil {
					errs <- err
				} else {
					names <- v.Name
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(names)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for n := range names {
		if seen[n] {
			t.Errorf("version %s handed out twice", n)
		}
		seen[n] = true
	}
	for i := 2; i <= workers*each+1; i++ {
		if !seen[fmt.Sprintf("%s/cryptoKeyVersions/%d", ed.Name, i)] {
			t.Errorf("version %d missing: ids are not dense", i)
		}
	}
}
