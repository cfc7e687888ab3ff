package statemachine

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/format"
)

// Benchmarks. The floor for signature-bound replay is
// GOMAXPROCS / (one crypto/ed25519 verification): run
//
//	go test -run '^$' -bench 'Ed25519Verify|VerifySignature|Apply' ./statemachine
//
// and compare BenchmarkApply10000's updates/s with floor-updates/s (each
// Apply benchmark also measures the floor itself, in the same run, and
// reports the ratio as %floor). On a shared machine wall-clock rates swing
// with the neighbours' load; parallel-floor-updates/s shows the rate the
// cores really delivered, and cpu-%floor compares CPU time instead (the
// CPU crypto/ed25519 would spend on the records' signatures against the
// CPU Apply spends in all). BenchmarkApplyPhases splits an epoch's cost.

const benchUsers = 10000

// BenchmarkEd25519Verify is the floor's primitive: one crypto/ed25519
// verification of a 59-byte entry signing message.
func BenchmarkEd25519Verify(b *testing.B) {
	msg := format.SigningMessage([32]byte{1})
	sig := ed25519.Sign(key(1), msg)
	p := pub(1)
	for b.Loop() {
		if !ed25519.Verify(p, msg, sig) {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkEd25519VerifyParallel runs crypto/ed25519 verifications on
// every core at once: GOMAXPROCS / its ns/op is the floor's rate as the
// machine delivers it right now.
func BenchmarkEd25519VerifyParallel(b *testing.B) {
	msg := format.SigningMessage([32]byte{1})
	sig := ed25519.Sign(key(1), msg)
	p := pub(1)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !ed25519.Verify(p, msg, sig) {
				b.Error("invalid")
			}
		}
	})
}

// BenchmarkVerifySignature is the verification Apply uses.
func BenchmarkVerifySignature(b *testing.B) {
	msg := format.SigningMessage([32]byte{1})
	var sig [64]byte
	copy(sig[:], ed25519.Sign(key(1), msg))
	p := pub(1)
	for b.Loop() {
		if !verifySignature(p, msg, &sig) {
			b.Fatal("invalid")
		}
	}
}

// benchFixture: epoch 1 registers benchUsers users (user i has key
// 5000+i, policy 1-of-{that key}); then three candidate epoch 2 workloads.
type benchFixture struct {
	env *env
	// updates: every user updates once (one signature each).
	updates [][]byte
	// mixed: half the users update, and as many new users register (one
	// policy signature and one registrar signature each).
	mixed [][]byte
}

var (
	benchOnce sync.Once
	benchFix  *benchFixture
)

func userKey(i int) int { return 5000 + i }

func getBenchFixture(b *testing.B) *benchFixture {
	benchOnce.Do(func() {
		f := &benchFixture{env: newEnv(b)}
		regs := make([][]byte, benchUsers)
		hashes := make([][32]byte, benchUsers)
		parallel(benchUsers, 16, func(i int) {
			regs[i], hashes[i] = register(b, ent{index: indexOf(fmt.Sprint("bench", i)), policy: pol(1, []int{userKey(i)})}, userKey(i))
		})
		out := f.env.run(regs...)
		if len(out.Rejected) != 0 {
			b.Fatalf("fixture: %+v", out.Rejected[0])
		}
		f.updates = make([][]byte, benchUsers)
		parallel(benchUsers, 16, func(i int) {
			f.updates[i], _ = update(b, ent{index: indexOf(fmt.Sprint("bench", i)), version: 2, prev: hashes[i], policy: pol(1, []int{userKey(i)}), commit: 2}, userKey(i))
		})
		newRegs := make([][]byte, benchUsers/2)
		parallel(len(newRegs), 16, func(i int) {
			j := benchUsers + i
			newRegs[i], _ = register(b, ent{index: indexOf(fmt.Sprint("bench", j)), policy: pol(1, []int{userKey(j)})}, userKey(j))
		})
		for i := range benchUsers / 2 {
			f.mixed = append(f.mixed, f.updates[i], newRegs[i])
		}
		benchFix = f
	})
	if benchFix == nil {
		b.Fatal("bench fixture failed")
	}
	return benchFix
}

// floor measures crypto/ed25519 verification now. perSecond is
// GOMAXPROCS / (one verification's wall time): the most signatures per
// second the machine verifies with crypto/ed25519 if every core is free.
// measured is the rate GOMAXPROCS goroutines actually reach at the same
// moment (lower when other processes share the cores), and cpu the CPU
// time of one verification.
func floor() (perSecond, measured float64, cpu time.Duration) {
	msg := format.SigningMessage([32]byte{2})
	sig := ed25519.Sign(key(2), msg)
	p := pub(2)
	const n = 400
	start, startCPU := time.Now(), cpuTime()
	for range n {
		ed25519.Verify(p, msg, sig)
	}
	perSecond = float64(runtime.GOMAXPROCS(0)) * n / time.Since(start).Seconds()
	cpu = (cpuTime() - startCPU) / n
	procs := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	start = time.Now()
	for range procs {
		wg.Go(func() {
			for range n {
				ed25519.Verify(p, msg, sig)
			}
		})
	}
	wg.Wait()
	measured = float64(procs*n) / time.Since(start).Seconds()
	return perSecond, measured, cpu
}

// BenchmarkApply10000 makes one epoch of 10,000 records on a 10,000-user
// memory tree: "updates" (one signature each) and "mixed" (half updates,
// half registrations with two signatures each). floor-updates/s is for
// one signature per record.
func BenchmarkApply10000(b *testing.B) {
	f := getBenchFixture(b)
	for _, w := range []struct {
		name string
		recs [][]byte
		sigs float64 // signatures per record
	}{
		{"updates", f.updates, 1},
		{"mixed", f.mixed, 1.5},
	} {
		b.Run(w.name, func(b *testing.B) {
			v := f.env
			in := Input{Rules: v.rules, Epoch: v.epoch + 1, Time: 1, Records: w.recs}
			startCPU := cpuTime()
			for b.Loop() {
				out, err := Apply(context.Background(), v.tree, v.entries, in)
				if err != nil || len(out.Rejected) != 0 {
					b.Fatalf("Apply: %v %v", err, out.Rejected)
				}
			}
			n := float64(b.N * len(w.recs))
			cpuPer := float64(cpuTime()-startCPU) / n
			rate := n / b.Elapsed().Seconds()
			perSecond, measured, verifyCPU := floor()
			b.ReportMetric(rate, "updates/s")
			b.ReportMetric(perSecond/w.sigs, "floor-updates/s")
			b.ReportMetric(100*rate/(perSecond/w.sigs), "%floor")
			b.ReportMetric(measured/w.sigs, "parallel-floor-updates/s")
			// CPU: Apply's CPU time per record against the CPU time of its
			// signatures verified by crypto/ed25519 (above 100: Apply costs
			// less CPU than crypto/ed25519 verification alone would).
			b.ReportMetric(cpuPer/1e3, "cpu-µs/update")
			b.ReportMetric(100*w.sigs*float64(verifyCPU)/cpuPer, "cpu-%floor")
		})
	}
}

// BenchmarkApplyPhases splits an epoch of 10,000 updates into Apply's
// steps: parse, load (Entries + tree values), signatures (parallel
// verification), decide (sequential rules and leaf records), tree
// (tree.Update) and head (updates root).
func BenchmarkApplyPhases(b *testing.B) {
	f := getBenchFixture(b)
	v := f.env
	ctx := context.Background()
	rs, _ := newRuleSet(v.rules)
	raw := f.updates
	base := v.epoch
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			parseAll(raw)
		}
	})
	recs := parseAll(raw)
	indexes := touched(rs, recs)
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			if _, err := load(ctx, v.tree, v.entries, rs, base, indexes); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("signatures", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			recs := parseAll(raw)
			users, _ := load(ctx, v.tree, v.entries, rs, base, indexes)
			b.StartTimer()
			precompute(rs, recs, users)
		}
	})
	users0, _ := load(ctx, v.tree, v.entries, rs, base, indexes)
	precompute(rs, recs, users0) // decide reads these verdicts
	b.Run("decide", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			users, _ := load(ctx, v.tree, v.entries, rs, base, indexes)
			b.StartTimer()
			decideAll(rs, base+1, recs, users, indexes)
		}
	})
	users, _ := load(ctx, v.tree, v.entries, rs, base, indexes)
	_, ch := decideAll(rs, base+1, recs, users, indexes)
	b.Run("tree", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.tree.Update(ctx, base, ch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("head", func(b *testing.B) {
		for b.Loop() {
			format.UpdatesRoot(raw)
		}
	})
}
