package verifier

import (
	"context"
	"crypto/ed25519"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

// Benchmarks. Run
//
//	go test -run '^$' -bench 'Replay|CatchUp' -benchtime 3x ./verifier
//
// BenchmarkReplay10000 compares the verifier's whole epoch (checks,
// statemachine replay on the on-disk store, durable commit, cosignature)
// with the statemachine's own work on the memory store for the same kind
// of epoch, measured in the same run; BenchmarkCatchUp100k times a new
// verifier catching up through the feed from empty to 100,000 updates.

const benchUsers = 10000

// replayFixture: epoch 1 registers benchUsers users (user i has key i,
// policy 1-of-{key i}); every later epoch updates each user once, with
// the same key (one signature per record), as statemachine's
// BenchmarkApply10000 "updates" workload does.
type replayFixture struct {
	s       *honest
	pending [][]byte // the records of the next epoch, made ahead
}

func newReplayFixture(b *testing.B) *replayFixture {
	s := newHonest(b)
	regs := make([][]byte, benchUsers)
	for i := range benchUsers {
		regs[i] = s.register(i, i)
	}
	s.cut(regs...)
	return &replayFixture{s: s}
}

// nextRecords makes (once) the records of the next epoch: every user
// updates once. Signing is parallel: it is setup, not measured.
func (f *replayFixture) nextRecords() [][]byte {
	if f.pending != nil {
		return f.pending
	}
	s := f.s
	// Reserve each user's next entry in order (entry tracks versions),
	// but sign in parallel: entry holds the lock only to read and bump.
	recs := make([][]byte, benchUsers)
	var wg sync.WaitGroup
	per := (benchUsers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	for lo := 0; lo < benchUsers; lo += per {
		wg.Go(func() {
			for i := lo; i < min(lo+per, benchUsers); i++ {
				recs[i] = s.entry(i, i, []int{i}, false)
			}
		})
	}
	wg.Wait()
	f.pending = recs
	return recs
}

// cut makes the next epoch from the pending records.
func (f *replayFixture) cut() uint64 {
	n := f.s.cut(f.nextRecords()...)
	f.pending = nil
	return n
}

// memoryRate measures statemachine.Apply of the next epoch on the
// keyserver's memory store (not committed), the median of 3 runs.
func (f *replayFixture) memoryRate(b *testing.B) float64 {
	recs := f.nextRecords()
	s := f.s
	var rates []float64
	for range 3 {
		start := time.Now()
		out, err := statemachine.Apply(context.Background(), s.tree, s.entries, statemachine.Input{Rules: s.rules, Epoch: s.epochs(), Time: s.time + 1000, Records: recs})
		el := time.Since(start)
		if err != nil || len(out.Rejected) != 0 {
			b.Fatalf("Apply: %v", err)
		}
		rates = append(rates, float64(len(recs))/el.Seconds())
	}
	slices.Sort(rates)
	return rates[1]
}

// floorRate is GOMAXPROCS / one crypto/ed25519 verification: the
// signature-bound ceiling for one-signature records.
func floorRate() float64 {
	msg := format.SigningMessage([32]byte{2})
	sig := ed25519.Sign(key(2), msg)
	p := pub(2)
	const n = 400
	start := time.Now()
	for range n {
		ed25519.Verify(p, msg, sig)
	}
	return float64(runtime.GOMAXPROCS(0)) * n / time.Since(start).Seconds()
}

func BenchmarkReplay10000(b *testing.B) {
	f := newReplayFixture(b)
	v := openTest(b, f.s, b.TempDir())
	for n := range f.s.epochs() {
		if err := v.VerifyBundle(context.Background(), n, f.s.bundle(n)); err != nil {
			b.Fatal(err)
		}
	}
	var memory []float64
	var spent time.Duration
	var updates int
	for b.Loop() {
		b.StopTimer()
		memory = append(memory, f.memoryRate(b))
		n := f.cut()
		bundle := f.s.bundle(n)
		b.StartTimer()
		start := time.Now()
		if err := v.VerifyBundle(context.Background(), n, bundle); err != nil {
			b.Fatal(err)
		}
		spent += time.Since(start)
		updates += benchUsers
	}
	slices.Sort(memory)
	disk := float64(updates) / spent.Seconds()
	mem := memory[len(memory)/2]
	b.ReportMetric(disk, "updates/s")
	b.ReportMetric(mem, "memory-updates/s")
	b.ReportMetric(100*disk/mem, "%memory")
	b.ReportMetric(floorRate(), "floor-updates/s")
}

// catchUpFixture is a keyserver with 100 epochs of 1,000 registrations
// each, made once per test binary.
var (
	catchUpOnce sync.Once
	catchUpSrv  *honest
)

func catchUpServer(b *testing.B) *honest {
	catchUpOnce.Do(func() {
		s := newHonest(b)
		const epochs, per = 100, 1000
		for e := range epochs {
			recs := make([][]byte, per)
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < per; i += 4 {
						recs[i] = s.register(e*per+i, e*per+i)
					}
				})
			}
			wg.Wait()
			s.cut(recs...)
		}
		s.chunkSize = format.MaxChunkSize
		catchUpSrv = s
	})
	return catchUpSrv
}

func BenchmarkCatchUp100k(b *testing.B) {
	s := catchUpServer(b)
	srv := httptest.NewServer(s)
	defer srv.Close()
	var spent time.Duration
	for b.Loop() {
		b.StopTimer()
		v := openTest(b, s, b.TempDir(), func(c *Config) { c.FeedURL, c.PollInterval = srv.URL, 1<<40 })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- v.Run(ctx, nil) }()
		for v.Next() < s.epochs() {
			time.Sleep(time.Millisecond)
		}
		spent += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		v.Close()
		b.StartTimer()
	}
	per := spent.Seconds() / float64(b.N)
	b.ReportMetric(per, "s/catch-up")
	b.ReportMetric(100000/per, "updates/s")
	mem := memoryReplay(b, s).Seconds()
	b.ReportMetric(mem, "memory-s")
	b.ReportMetric(100*mem/per, "%memory")
}

// memoryReplay times statemachine.Apply (and the commits) of every epoch
// of s on a fresh memory store: the floor the verifier's replay on disk,
// with its checks, feed and durable commits, is compared to.
func memoryReplay(b *testing.B, s *honest) time.Duration {
	b.Helper()
	ctx := context.Background()
	st := tree.NewMemoryStore()
	tr := tree.New(st)
	me := &memEntries{}
	var total time.Duration
	for n := uint64(1); n < s.epochs(); n++ {
		f, err := splitBundle(s.bundle(n))
		if err != nil {
			b.Fatal(err)
		}
		h, err := format.ParseEpochHead(f.head)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		out, err := statemachine.Apply(ctx, tr, me, statemachine.Input{Rules: s.rules, Epoch: n, Time: h.Time, Records: f.records})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Commit(ctx, n, out.Head.TreeRoot); err != nil {
			b.Fatal(err)
		}
		me.apply(n, out.Applied)
		total += time.Since(start)
	}
	return total
}
