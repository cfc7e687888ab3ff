package kmsemu

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
)

// BenchmarkAsymmetricSignEd25519 compares AsymmetricSign through the real
// client with the raw ed25519.Sign floor, in the same run, with one caller
// and with 4×GOMAXPROCS callers. The message is a checkpoint-sized 128
// bytes with its CRC32C, as production sends it. "rpc-floor" is the
// cheapest call (GetKeyRing) through the same client: the gRPC + client
// library cost every emulated call pays on top of its own work.
func BenchmarkAsymmetricSignEd25519(b *testing.B) {
	msg := make([]byte, 128)
	priv := ed25519.NewKeyFromSeed(counting(32))

	_, c := start(b, Options{})
	ctx := context.Background()
	if _, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: location, KeyRingId: "r"}); err != nil {
		b.Fatal(err)
	}
	k, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: location + "/keyRings/r", CryptoKeyId: "ed", CryptoKey: &kmspb.CryptoKey{
		Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_ED25519},
	}})
	if err != nil {
		b.Fatal(err)
	}
	req := &kmspb.AsymmetricSignRequest{Name: k.Name + "/cryptoKeyVersions/1", Data: msg, DataCrc32C: sum32(msg)}
	sign := func(b *testing.B) {
		resp, err := c.AsymmetricSign(ctx, req)
		if err != nil || len(resp.Signature) != ed25519.SignatureSize {
			b.Fatal(err)
		}
	}

	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(priv, msg)
		}
	})
	b.Run("emulator", func(b *testing.B) {
		for b.Loop() {
			sign(b)
		}
	})
	b.Run("rpc-floor", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: location + "/keyRings/r"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ed25519.Sign(priv, msg)
			}
		})
	})
	b.Run("emulator-parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sign(b)
			}
		})
	})
}

// BenchmarkStart measures start-to-ready: Start, a client, and a first
// answered call.
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		t0 := time.Now()
		srv, err := Start(ctx, Options{})
		if err != nil {
			b.Fatal(err)
		}
		c, err := kms.NewKeyManagementClient(ctx, srv.ClientOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.ListKeyRings(ctx, &kmspb.ListKeyRingsRequest{Parent: location}).Next(); err == nil {
			b.Fatal("a fresh emulator has key rings")
		}
		total += time.Since(t0)
		c.Close()
		if err := srv.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-to-ready/op")
}
