package vrf

import (
	"crypto/ed25519"
	"testing"
)

func benchKey(b *testing.B) (*PrivateKey, []byte) {
	k := mustKey(b, mustHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
	alpha, err := Input("example.com", "alice@example.com")
	if err != nil {
		b.Fatal(err)
	}
	return k, alpha
}

func BenchmarkProve(b *testing.B) {
	k, alpha := benchKey(b)
	for b.Loop() {
		k.Prove(alpha)
	}
}

func BenchmarkVerify(b *testing.B) {
	k, alpha := benchKey(b)
	_, pi := k.Prove(alpha)
	pk := k.Public()
	for b.Loop() {
		if _, err := pk.Verify(alpha, pi[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProofToHash(b *testing.B) {
	k, alpha := benchKey(b)
	_, pi := k.Prove(alpha)
	for b.Loop() {
		if _, err := ProofToHash(pi[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePublicKey(b *testing.B) {
	k, _ := benchKey(b)
	pk := k.Public().Bytes()
	for b.Loop() {
		if _, err := ParsePublicKey(pk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewPrivateKey(b *testing.B) {
	seed := make([]byte, SeedSize)
	for b.Loop() {
		if _, err := NewPrivateKey(seed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Sign is the floor Prove is compared with: one Ed25519
// signature (crypto/ed25519) over the same input.
func BenchmarkEd25519Sign(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	_, alpha := benchKey(b)
	for b.Loop() {
		ed25519.Sign(priv, alpha)
	}
}

// BenchmarkEd25519Verify is the floor Verify is compared with.
func BenchmarkEd25519Verify(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	_, alpha := benchKey(b)
	sig := ed25519.Sign(priv, alpha)
	for b.Loop() {
		if !ed25519.Verify(pub, alpha, sig) {
			b.Fatal("invalid signature")
		}
	}
}
