package disk

import (
	"bufio"
	"crypto/sha256"
	"flag"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/conifer-kt/conifer/tree"
)

// The floor, measured in the same run as the disk benchmarks: one SHA-256
// of 64 bytes.
func BenchmarkSHA256Floor(b *testing.B) {
	var buf [64]byte
	var h [32]byte
	for b.Loop() {
		h = sha256.Sum256(buf[:])
		buf[0] = h[0]
	}
}

func measureFloor() float64 {
	var buf [64]byte
	best := math.Inf(1)
	for range 5 {
		start := time.Now()
		for range 200000 {
			h := sha256.Sum256(buf[:])
			buf[0] = h[0]
		}
		best = min(best, float64(time.Since(start).Nanoseconds())/200000)
	}
	return best
}

const benchN = 1_000_000

type benchTree struct {
	dir  string
	s    *Store
	tr   *tree.Tree
	keys []tree.Key
	v    uint64
	r    *rand.Rand
}

var (
	benchOnce sync.Once
	bench     *benchTree
	benchErr  error
)

// bigTree returns an on-disk tree of 10^6 random leaves, built once per
// process in versions of 100,000 keys, in a temporary directory removed by
// TestMain.
func bigTree(b *testing.B) *benchTree {
	benchOnce.Do(func() {
		bt := &benchTree{r: rand.New(rand.NewPCG(99, 99))}
		if bt.dir, benchErr = os.MkdirTemp("", "conifer-tree-bench-"); benchErr != nil {
			return
		}
		if bt.s, benchErr = Open(bt.dir); benchErr != nil {
			return
		}
		bt.tr = tree.New(bt.s)
		for bt.v < 10 && benchErr == nil {
			ch := make([]tree.Change, benchN/10)
			for i := range ch {
				ch[i] = tree.Change{Key: randKey(bt.r), Value: randHash(bt.r)}
				bt.keys = append(bt.keys, ch[i].Key)
			}
			var root tree.Hash
			if root, benchErr = bt.tr.Update(ctx, bt.v, ch); benchErr == nil {
				benchErr = bt.s.Commit(ctx, bt.v+1, root)
			}
			bt.v++
		}
		// A long-running store has compacted its past and has a warm block
		// cache: start from there.
		if benchErr == nil {
			benchErr = bt.s.db.Compact(ctx, []byte{0}, []byte{0xff}, true)
		}
		if benchErr == nil {
			var it *pebble.Iterator
			if it, benchErr = bt.s.db.NewIter(nil); benchErr == nil {
				for it.First(); it.Valid(); it.Next() {
				}
				benchErr = it.Close()
			}
		}
		bench = bt
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return bench
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if bench != nil {
		bench.s.Close()
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

func benchmarkUpdate(b *testing.B, existing bool) {
	bt := bigTree(b)
	floor := measureFloor()
	const k = 1000
	ch := make([]tree.Change, k)
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		seen := map[tree.Key]bool{}
		ch = ch[:0]
		for len(ch) < k {
			c := tree.Change{Key: randKey(bt.r), Value: randHash(bt.r)}
			if existing {
				c.Key = bt.keys[bt.r.IntN(len(bt.keys))]
			}
			if !seen[c.Key] {
				seen[c.Key] = true
				ch = append(ch, c)
			}
		}
		b.StartTimer()
		c0 := cpuTime()
		root, err := bt.tr.Update(ctx, bt.v, ch)
		if err != nil {
			b.Fatal(err)
		}
		if err := bt.s.Commit(ctx, bt.v+1, root); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
		bt.v++
		if !existing {
			for _, c := range ch {
				bt.keys = append(bt.keys, c.Key)
			}
		}
	}
	perLeaf := float64(b.Elapsed().Nanoseconds()) / float64(b.N*k)
	b.ReportMetric(perLeaf, "ns/leaf")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*k), "cpu-ns/leaf")
	b.ReportMetric(floor, "ns/sha256")
	b.ReportMetric(perLeaf/(math.Log2(float64(len(bt.keys)))*floor), "x-log2N-floors")
}

// BenchmarkUpdateDisk: batches of 1,000 changes on a 10^6-leaf on-disk
// tree, each an Update and a synced Commit.
func BenchmarkUpdateDisk(b *testing.B) {
	b.Run("insert", func(b *testing.B) { benchmarkUpdate(b, false) })
	b.Run("modify", func(b *testing.B) { benchmarkUpdate(b, true) })
}

// BenchmarkProveDisk proves random present and absent keys.
func BenchmarkProveDisk(b *testing.B) {
	bt := bigTree(b)
	r := rand.New(rand.NewPCG(1, 1))
	total, n := 0, 0
	for b.Loop() {
		key := bt.keys[r.IntN(len(bt.keys))]
		if n%2 == 1 {
			key = randKey(r)
		}
		p, err := bt.tr.Prove(ctx, bt.v, key)
		if err != nil {
			b.Fatal(err)
		}
		total += p.Size()
		n++
	}
	b.ReportMetric(float64(total)/float64(n), "bytes/proof")
}

var scale = flag.Int("scale", 0, "build a tree of this many leaves on disk in TestScale (0: skip)")

// TestScale builds a large tree on disk (go test ./tree/disk -run TestScale
// -scale=10000000 -timeout 0) and reports time, disk use and peak memory.
// Versions of 100,000 keys keep an update's working set (its read nodes and
// the nodes it writes) to a few hundred MiB while amortizing the shared top
// of the tree; every tenth version a sample of proofs is checked.
func TestScale(t *testing.T) {
	if *scale == 0 {
		t.Skip("run with -scale=N")
	}
	const batch = 100_000
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tr := tree.New(s)
	r := rand.New(rand.NewPCG(7, 7))
	var sample []tree.Change
	start := time.Now()
	var v uint64
	for n := 0; n < *scale; n += batch {
		ch := make([]tree.Change, min(batch, *scale-n))
		for i := range ch {
			ch[i] = tree.Change{Key: randKey(r), Value: randHash(r)}
		}
		sample = append(sample, ch[:10]...)
		root, err := tr.Update(ctx, v, ch)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, v+1, root); err != nil {
			t.Fatal(err)
		}
		v++
		if v%10 == 0 || n+batch >= *scale {
			proofs, err := tr.ProveBatch(ctx, v, keysOf(sample))
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range proofs {
				if err := tree.VerifyInclusion(root, sample[i].Key, sample[i].Value, p); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%d leaves after %v (%.1f µs/leaf), peak RSS %d MiB", n+len(ch), time.Since(start).Round(time.Second),
				float64(time.Since(start).Microseconds())/float64(n+len(ch)), peakRSS()>>20)
		}
	}
	elapsed := time.Since(start)
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	size := dirSize(t, dir)
	rss := peakRSS()
	t.Logf("built %d leaves in %v: %.1f µs/leaf; %d bytes on disk (%.0f bytes/leaf); peak RSS %d MiB",
		*scale, elapsed.Round(time.Second), float64(elapsed.Microseconds())/float64(*scale), size, float64(size)/float64(*scale), rss>>20)
	if rss > 4<<30 {
		t.Errorf("peak RSS %d MiB exceeds 4 GiB", rss>>20)
	}
}

func keysOf(ch []tree.Change) []tree.Key {
	keys := make([]tree.Key, len(ch))
	for i := range ch {
		keys[i] = ch[i].Key
	}
	return keys
}

func dirSize(t *testing.T, dir string) int64 {
	var size int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return size
}

// peakRSS returns the process's peak resident set size (VmHWM), or 0 where
// /proc is not available.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
