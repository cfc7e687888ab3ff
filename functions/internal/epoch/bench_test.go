package epoch_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/spanner"

	"github.com/conifer-kt/conifer/functions/internal/epoch"
	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
	"github.com/conifer-kt/conifer/functions/internal/storage"
)

// bulkAppend writes appends as the update function would (Log, Users,
// Profiles rows), many per commit and without the per-update check: a fast
// way to load a benchmark's log. Seq is the first 16 bytes of the index.
func bulkAppend(b *testing.B, s *spanstore.Store, as []storage.Append) {
	b.Helper()
	const perCommit = 10 // 30 rows: the emulator commits fastest in small batches
	for lo := 0; lo < len(as); lo += perCommit {
		var ms []*spanner.Mutation
		for _, a := range as[lo:min(lo+perCommit, len(as))] {
			shard := int64(a.Index[0] % spanstore.DefaultShards)
			seq := a.Index[:16]
			ms = append(ms,
				spanner.Insert("Log", []string{"Shard", "CommitTs", "Seq", "UserIndex", "Record"},
					[]any{shard, spanner.CommitTimestamp, seq, a.Index[:], a.Record}),
				spanner.InsertOrUpdate("Users", []string{"UserIndex", "Version", "EntryHash", "Entry", "LogShard", "LogCommitTs", "LogSeq"},
					[]any{a.Index[:], int64(a.Version), a.EntryHash[:], a.SignedEntry, shard, spanner.CommitTimestamp, seq}))
			if a.Profile != nil {
				ms = append(ms, spanner.InsertOrUpdate("Profiles", []string{"UserIndex", "Version", "Profile", "Opening"},
					[]any{a.Index[:], int64(a.Version), a.Profile, a.Opening}))
			}
		}
		if _, err := s.Client().Apply(context.Background(), ms); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEpoch measures one epoch of 1,000 and of 10,000 updates of
// existing users, with N = 10,000 users in the tree, on the Spanner
// emulator (KMS emulator signer, Pub/Sub emulator publisher), beside the
// emulator's raw rate of small batched commits (32 rows, the store's
// emulator chunk) measured in the same run. Run with -benchtime=1x.
func BenchmarkEpoch(b *testing.B) {
	b.Run("raw-commit-32-rows", func(b *testing.B) {
		s := spantest.Store(b, nil)
		b.ResetTimer()
		rows := 0
		for i := 0; i < b.N; i++ {
			for k := 0; k < 100; k++ {
				ms := make([]*spanner.Mutation, 32)
				for j := range ms {
					p := make([]byte, 34)
					p[0], p[1], p[2], p[3] = byte(i>>8), byte(i), byte(k), byte(j)
					p[33] = 32
					ms[j] = spanner.Insert("TreeNodes", []string{"Position", "Version", "Node"}, []any{p, int64(1), []byte{3}})
				}
				if _, err := s.Client().Apply(context.Background(), ms); err != nil {
					b.Fatal(err)
				}
				rows += len(ms)
			}
		}
		b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	})
	for _, k := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=10000/updates=%d", k), func(b *testing.B) {
			const n = 10000
			ctx := context.Background()
			r := testRealm(b, 0, 0)
			s := spantest.Store(b, r.Config)
			pub, _ := publisher(b)
			clk := newClock()
			var log *slog.Logger
			if testing.Verbose() {
				log = slog.New(slog.NewTextHandler(os.Stderr, nil))
			}
			runner := &epoch.Runner{Store: s, Realm: r.Config, Rules: r.Rules, Signer: signer(b), Publisher: pub, Holder: "bench", Now: clk.Now, Log: log}
			if _, err := runner.Run(ctx); err != nil { // genesis
				b.Fatal(err)
			}
			users := make([]*spantest.User, n)
			as := make([]storage.Append, n)
			for i := range users {
				users[i] = spantest.NewUser(fmt.Sprintf("bench%d", i))
				as[i] = must[storage.Append](b)(users[i].Register(realmName, r.Registrar))
			}
			bulkAppend(b, s, as)
			clk.Add(time.Minute)
			start := time.Now()
			if res, err := runner.Run(ctx); err != nil || res.Updates != n {
				b.Fatalf("loading epoch: %+v, %v", res, err)
			}
			b.Logf("loaded %d users (an epoch of %d registrations) in %v", n, n, time.Since(start))
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := range k {
					as[j] = must[storage.Append](b)(users[(i*k+j)%n].Update(realmName))
				}
				bulkAppend(b, s, as[:k])
				clk.Add(time.Minute)
				b.StartTimer()
				start := time.Now()
				res, err := runner.Run(ctx)
				total += time.Since(start)
				if err != nil || res.Updates != int64(k) {
					b.Fatalf("epoch: %+v, %v", res, err)
				}
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/epoch")
			b.ReportMetric(float64(k*b.N)/total.Seconds(), "updates/s")
		})
	}
}
