package statemachine

import (
	"crypto/ed25519"
	"runtime"
	"sync"
	"sync/atomic"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// verifyOptions pins the one Ed25519 verification rule of Conifer's
// replay: RFC 8032 section 5.1.7 with the cofactorless equation, exactly as
// Go's crypto/ed25519 decides (and so as format.VerifyUpdateSignatures,
// format.Registration.VerifyRegistrar and every client built on package
// format decide):
//
//   - S must be canonical (S < L);
//   - R is compared as bytes with the encoding of [S]B − [k]A, so a
//     non-canonical R never verifies;
//   - small-order A and R are not refused as such (policy and registrar
//     keys of small order are refused earlier, by format and Rules);
//   - k = SHA-512(R ‖ A ‖ M) over the bytes as given.
//
// The curve25519-voi implementation is used only because it is faster
// (about 32 µs instead of 55 µs per verification on a 2-core AMD EPYC,
// BenchmarkVerifySignature and BenchmarkEd25519Verify); these options are its documented crypto/ed25519-compatible
// preset, spelled out here so that no change to the library's preset
// variables can alter them, and verify_test.go checks it against
// crypto/ed25519 on the edge cases where Ed25519 implementations are
// known to differ.
//
// Why not batch verification or ZIP-215: batch verification is only
// sound for the cofactored equation, which accepts signatures the
// cofactorless one refuses (an R or A with a small-order component). A
// signer could then craft an update that the keyserver's replay accepts
// while a client checking the same entry with package format refuses it,
// or the reverse. Every party must reach the same verdict on every
// signature, so all of them use this rule.
var verifyOptions = &voi.Options{Verify: &voi.VerifyOptions{
	AllowSmallOrderA:   true,
	AllowSmallOrderR:   true,
	AllowNonCanonicalA: true,
	CofactorlessVerify: true,
}}

// verifySignature reports whether sig is a valid Ed25519 signature of msg
// by pub under verifyOptions.
func verifySignature(pub ed25519.PublicKey, msg []byte, sig *[ed25519.SignatureSize]byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	return voi.VerifyWithOptions(voi.PublicKey(pub), msg, sig[:], verifyOptions)
}

// parallel calls f(i) for every i in [0, n) on up to GOMAXPROCS
// goroutines, handing out chunk indexes at a time, and returns when all
// calls have returned. f must only write state that belongs to its i, so
// the result never depends on the schedule.
func parallel(n, chunk int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+chunk-1)/chunk)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= n {
					return
				}
				for i := lo; i < min(lo+chunk, n); i++ {
					f(i)
				}
			}
		})
	}
	wg.Wait()
}
