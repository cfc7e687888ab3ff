package tree

import (
	"crypto/sha256"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// The floor: one SHA-256 of 64 bytes (two compression blocks, like a node
// hash). An update of one leaf in a tree of N leaves costs at least about
// log2(N) of these.
func BenchmarkSHA256Floor(b *testing.B) {
	var buf [64]byte
	var h [32]byte
	for b.Loop() {
		h = sha256.Sum256(buf[:])
		buf[0] = h[0]
	}
}

// measureFloor returns the median ns of a 64-byte SHA-256, measured in
// process, so that each benchmark can report its cost as a multiple of
// log2(N) floors.
func measureFloor() float64 {
	var buf [64]byte
	var runs []float64
	for range 5 {
		start := time.Now()
		for range 200000 {
			h := sha256.Sum256(buf[:])
			buf[0] = h[0]
		}
		runs = append(runs, float64(time.Since(start).Nanoseconds())/200000)
	}
	for i := range runs {
		for j := i + 1; j < len(runs); j++ {
			if runs[j] < runs[i] {
				runs[i], runs[j] = runs[j], runs[i]
			}
		}
	}
	return runs[len(runs)/2]
}

const benchN = 1_000_000

type benchTree struct {
	s    *MemoryStore
	tr   *Tree
	keys []Key
	v    uint64
	r    *rand.Rand
}

var (
	benchOnce sync.Once
	bench     *benchTree
)

// bigTree returns a memory tree of 10^6 random leaves, built once per
// process in versions of 100,000 keys.
func bigTree(b *testing.B) *benchTree {
	benchOnce.Do(func() {
		bt := &benchTree{s: NewMemoryStore(), r: rand.New(rand.NewPCG(99, 99))}
		bt.tr = New(bt.s)
		for bt.v < 10 {
			ch := make([]Change, benchN/10)
			for i := range ch {
				ch[i] = Change{Key: randKey(bt.r), Value: randHash(bt.r)}
				bt.keys = append(bt.keys, ch[i].Key)
			}
			update(b, bt.tr, bt.s, bt.v, ch)
			bt.v++
		}
		bench = bt
	})
	return bench
}

func benchmarkUpdate(b *testing.B, existing bool) {
	bt := bigTree(b)
	floor := measureFloor()
	const k = 1000
	ch := make([]Change, k)
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		for i := range ch {
			if existing {
				ch[i] = Change{Key: bt.keys[bt.r.IntN(len(bt.keys))], Value: randHash(bt.r)}
			} else {
				ch[i] = Change{Key: randKey(bt.r), Value: randHash(bt.r)}
			}
		}
		if existing {
			dedupe(&ch)
		}
		b.StartTimer()
		c0 := cpuTime()
		update(b, bt.tr, bt.s, bt.v, ch)
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

func dedupe(ch *[]Change) {
	seen := make(map[Key]bool, len(*ch))
	out := (*ch)[:0]
	for _, c := range *ch {
		if !seen[c.Key] {
			seen[c.Key] = true
			out = append(out, c)
		}
	}
	*ch = out
}

// BenchmarkUpdateMemory: batches of 1,000 changes on a 10^6-leaf memory
// tree, each an Update and a Commit.
func BenchmarkUpdateMemory(b *testing.B) {
	b.Run("insert", func(b *testing.B) { benchmarkUpdate(b, false) })
	b.Run("modify", func(b *testing.B) { benchmarkUpdate(b, true) })
}

// BenchmarkProveMemory proves random present and absent keys in the
// 10^6-leaf memory tree, reporting proof sizes.
func BenchmarkProveMemory(b *testing.B) {
	bt := bigTree(b)
	r := rand.New(rand.NewPCG(1, 1))
	total, maxSize, n := 0, 0, 0
	for b.Loop() {
		key := bt.keys[r.IntN(len(bt.keys))]
		if n%2 == 1 {
			key = randKey(r)
		}
		p, err := bt.tr.Prove(ctx, bt.v, key)
		if err != nil {
			b.Fatal(err)
		}
		size := p.Size()
		total += size
		maxSize = max(maxSize, size)
		n++
	}
	b.ReportMetric(float64(total)/float64(n), "bytes/proof")
	b.ReportMetric(float64(maxSize), "max-bytes")
}

// BenchmarkProveBatchMemory proves 1,000 keys per call.
func BenchmarkProveBatchMemory(b *testing.B) {
	bt := bigTree(b)
	r := rand.New(rand.NewPCG(2, 2))
	keys := make([]Key, 1000)
	for b.Loop() {
		for i := range keys {
			keys[i] = bt.keys[r.IntN(len(bt.keys))]
		}
		if _, err := bt.tr.ProveBatch(ctx, bt.v, keys); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/proof")
}

// BenchmarkVerify verifies inclusion proofs from the 10^6-leaf tree.
func BenchmarkVerify(b *testing.B) {
	bt := bigTree(b)
	r := rand.New(rand.NewPCG(3, 3))
	root, err := bt.tr.Root(ctx, bt.v)
	if err != nil {
		b.Fatal(err)
	}
	type item struct {
		key   Key
		value Hash
		p     *Proof
	}
	var items []item
	for range 1000 {
		k := bt.keys[r.IntN(len(bt.keys))]
		v, _, _ := bt.tr.Get(ctx, bt.v, k)
		p, _ := bt.tr.Prove(ctx, bt.v, k)
		items = append(items, item{k, v, p})
	}
	i := 0
	for b.Loop() {
		it := &items[i%len(items)]
		if err := VerifyInclusion(root, it.key, it.value, it.p); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
