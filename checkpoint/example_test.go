package checkpoint_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/conifer-kt/conifer/checkpoint"
	"golang.org/x/mod/sumdb/note"
)

// Example is the worked example of the package documentation: a realm's
// log of three epoch heads, its checkpoint signed by the keyserver and
// cosigned by one verifier, then opened by a client.
func Example() {
	// Keys: Ed25519 seeds of 32 bytes 0x01 (keyserver) and 0x02 (verifier).
	logKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x01}, 32))
	verifierKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x02}, 32))

	// The epoch log: leaves are the encoded epoch heads (here stand-ins).
	log := checkpoint.NewMemoryLog()
	var root [32]byte
	for _, head := range []string{"head 0", "head 1", "head 2"} {
		root, _ = log.Append(checkpoint.LeafHash([]byte(head)))
	}
	c := checkpoint.Checkpoint{Origin: "example.com/realm", Size: log.Size(), Hash: root}

	// The keyserver signs (through KMS in production).
	ks, _ := checkpoint.NewKeySigner(logKey)
	signer, _ := checkpoint.NewLogSigner(c.Origin, ks)
	signed, _ := checkpoint.Sign(c, signer)

	// A verifier cosigns at 2026-01-01T00:00:00Z and ratify merges it in.
	vs, _ := checkpoint.NewKeySigner(verifierKey)
	clock := func() time.Time { return time.Unix(1767225600, 0) }
	cosigner, _ := checkpoint.NewCosigner("verifier.example/v1", vs, clock)
	n, _ := note.Open(signed, note.VerifierList(signer.Verifier()))
	cosigned, _ := note.Sign(&note.Note{Text: n.Text}, cosigner)
	merged, err := checkpoint.Merge(c.Origin, signer.Verifier(), []*checkpoint.CosignatureVerifier{cosigner.Verifier()}, signed, cosigned)
	if err != nil {
		panic(err)
	}

	// A client pins the two verifier keys and a quorum of 1.
	fmt.Println(signer.VerifierKey())
	fmt.Println(cosigner.VerifierKey())
	logV, _ := checkpoint.NewVerifier(signer.VerifierKey())
	cosV, _ := checkpoint.NewCosignatureVerifier(cosigner.VerifierKey())
	v, err := checkpoint.Open(merged, "example.com/realm", logV, []*checkpoint.CosignatureVerifier{cosV}, 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s", merged)
	fmt.Println(v.Checkpoint.Size, v.Cosignatures[0].Name, v.Cosignatures[0].Timestamp)

	// Output:
	// example.com/realm+206cb619+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c
	// verifier.example/v1+ce671b5a+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU
	// example.com/realm
	// 3
	// NwM89pJwORUr12R+ketjNUEaGq1FAJiC0qtWBbqqjcU=
	//
	// — example.com/realm IGy2GU2SRErmkTtmuwY5zqBwf1vdt066xGx5r+yvoSgNh1y/GEuWUHdus44uaj34u6gBwu3kCKr8WF7aNN7Qx9YowQQ=
	// — verifier.example/v1 zmcbWgAAAABpVbkAQdRPopWMr5a4tt1cOHypTAIO8nKu+sbbiovAm8WaTZmq1tbOdLEl3Q4sym9PrKFSyw7ucBY6/f60hI7PUZbfCQ==
	// 3 verifier.example/v1 1767225600
}
