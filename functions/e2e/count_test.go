package e2e

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/tree"
)

// rpcCounter counts the Spanner RPCs a client sends, by method: the
// database round trips, whatever the store does inside one method call.
type rpcCounter struct {
	mu sync.Mutex
	n  map[string]int64
}

func newRPCCounter() *rpcCounter { return &rpcCounter{n: map[string]int64{}} }

func (c *rpcCounter) add(method string) {
	c.mu.Lock()
	c.n[method[strings.LastIndex(method, "/")+1:]]++
	c.mu.Unlock()
}

// options returns client options that count every unary and streaming
// call.
func (c *rpcCounter) options() []option.ClientOption {
	return []option.ClientOption{
		option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			c.add(method)
			return invoker(ctx, method, req, reply, cc, opts...)
		})),
		option.WithGRPCDialOption(grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			c.add(method)
			return streamer(ctx, desc, cc, method, opts...)
		})),
	}
}

// snapshot returns the counts so far.
func (c *rpcCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// reads sums the data-reading RPCs (queries and reads) since before.
func reads(before, after map[string]int64) int64 {
	var n int64
	for _, m := range []string{"ExecuteSql", "ExecuteStreamingSql", "Read", "StreamingRead"} {
		n += after[m] - before[m]
	}
	return n
}

// countingStore wraps a storage.Store and counts the calls of the reader
// methods and of the tree store's ReadNodes: the store-level view of a
// request's round trips (every spanstore reader is one query).
type countingStore struct {
	storage.Store
	calls atomic.Int64
}

type countingTree struct {
	tree.Store
	calls *atomic.Int64
}

func (s *countingStore) Tree() tree.Store { return countingTree{s.Store.Tree(), &s.calls} }

func (t countingTree) ReadNodes(ctx context.Context, v uint64, ids []tree.NodeID) ([]tree.Node, error) {
	t.calls.Add(1)
	return t.Store.ReadNodes(ctx, v, ids)
}

func (t countingTree) Latest(ctx context.Context) (uint64, tree.Hash, error) {
	t.calls.Add(1)
	return t.Store.Latest(ctx)
}

func (s *countingStore) LatestEpoch(ctx context.Context, verifiers []string, quorum int) (*storage.Epoch, error) {
	s.calls.Add(1)
	return s.Store.LatestEpoch(ctx, verifiers, quorum)
}

func (s *countingStore) GetEpoch(ctx context.Context, n uint64) (*storage.Epoch, error) {
	s.calls.Add(1)
	return s.Store.GetEpoch(ctx, n)
}

func (s *countingStore) NewestEpoch(ctx context.Context) (*storage.Epoch, error) {
	s.calls.Add(1)
	return s.Store.NewestEpoch(ctx)
}

func (s *countingStore) User(ctx context.Context, n uint64, index [32]byte) (*storage.UserState, error) {
	s.calls.Add(1)
	return s.Store.User(ctx, n, index)
}
