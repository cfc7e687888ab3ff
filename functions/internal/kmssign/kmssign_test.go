package kmssign

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/emulators/kmsemu"
)

type fixture struct {
	srv                    *kmsemu.Server
	client                 *kms.KeyManagementClient
	ed, p256, symmetric    string // key names
	edVersion, p256Version string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	srv, err := kmsemu.Start(ctx, kmsemu.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := kms.NewKeyManagementClient(ctx, srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ring, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/p/locations/global", KeyRingId: "conifer"})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(id string, purpose kmspb.CryptoKey_CryptoKeyPurpose, alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) string {
		k, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring.Name, CryptoKeyId: id,
			CryptoKey: &kmspb.CryptoKey{Purpose: purpose, VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: alg}}})
		if err != nil {
			t.Fatal(err)
		}
		return k.Name
	}
	f := &fixture{srv: srv, client: c}
	f.ed = mk("checkpoint", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519)
	f.p256 = mk("p256", kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256)
	f.symmetric = mk("vrf-seed", kmspb.CryptoKey_ENCRYPT_DECRYPT, kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION)
	f.edVersion = f.ed + "/cryptoKeyVersions/1"
	f.p256Version = f.p256 + "/cryptoKeyVersions/1"
	return f
}

func TestSignerSignsCheckpoints(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s, err := NewSigner(ctx, f.client, f.edVersion)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	sig, err := s.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(s.Public(), msg, sig) {
		t.Fatal("KMS signature does not verify")
	}
	// Through a C2SP checkpoint, opened by plain x/mod note with the vkey.
	ls, err := checkpoint.NewLogSigner("example.com/conifer", s)
	if err != nil {
		t.Fatal(err)
	}
	text, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: "example.com/conifer", Size: 3, Hash: [32]byte{1}}, ls)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := checkpoint.VerifierKey("example.com/conifer", 0x01, s.Public())
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(text, note.VerifierList(v)); err != nil {
		t.Fatalf("checkpoint signed through KMS does not open: %v\n%s", err, text)
	}
}

func TestSignerRefusesWrongKeys(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := NewSigner(ctx, f.client, f.p256Version); err == nil {
		t.Error("a P-256 key was accepted as the checkpoint signer")
	}
	if _, err := NewSigner(ctx, f.client, f.ed+"/cryptoKeyVersions/9"); err == nil {
		t.Error("a missing key version was accepted")
	}
}

func TestSignerErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s, err := NewSigner(ctx, f.client, f.edVersion)
	if err != nil {
		t.Fatal(err)
	}
	// A KMS failure is returned, not retried into a bad signature.
	if err := f.srv.FailNext("AsymmetricSign", 1, codes.PermissionDenied); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign([]byte("x")); err == nil {
		t.Error("Sign succeeded while KMS failed")
	}
	// A disabled version cannot sign.
	if _, err := f.client.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
		CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: f.edVersion, State: kmspb.CryptoKeyVersion_DISABLED},
		UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign([]byte("x")); err == nil {
		t.Error("a disabled key version signed")
	}
	// A signer whose public key does not match what KMS signs with is caught.
	bad := &Signer{client: f.client, name: f.edVersion, pub: make(ed25519.PublicKey, 32), timeout: SignTimeout}
	if _, err := f.client.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
		CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: f.edVersion, State: kmspb.CryptoKeyVersion_ENABLED},
		UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Sign([]byte("x")); !errors.Is(err, ErrIntegrity) {
		t.Errorf("mismatched public key: err = %v, want ErrIntegrity", err)
	}
}

func TestVRFSeedEnvelope(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	seed := bytes.Repeat([]byte{7}, 32)
	ct, err := SealVRFSeed(ctx, f.client, f.symmetric, "example.com/conifer", seed)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, seed) {
		t.Fatal("ciphertext contains the seed")
	}
	got, err := OpenVRFSeed(ctx, f.client, f.symmetric, "example.com/conifer", ct)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, seed) {
		t.Fatal("seed changed in the envelope")
	}
	if _, err := OpenVRFSeed(ctx, f.client, f.symmetric, "other.realm", ct); err == nil {
		t.Error("a seed sealed for one realm opened for another")
	}
	flipped := bytes.Clone(ct)
	flipped[len(flipped)-1] ^= 1
	if _, err := OpenVRFSeed(ctx, f.client, f.symmetric, "example.com/conifer", flipped); err == nil {
		t.Error("a tampered ciphertext opened")
	}
	if _, err := SealVRFSeed(ctx, f.client, f.symmetric, "r", seed[:31]); err == nil {
		t.Error("a 31-byte seed was sealed")
	}
	if _, err := SealVRFSeed(ctx, f.client, f.ed, "r", seed); err == nil {
		t.Error("a signing key encrypted")
	}
}
