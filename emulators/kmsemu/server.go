package kmsemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Options configures Start.
type Options struct {
	// Addr is the TCP address to listen on. Default "127.0.0.1:0" (a port
	// chosen by the kernel; see Server.Addr).
	Addr string

	// StateFile, if not empty, is where key rings, keys and key material
	// persist: loaded at Start if the file exists (a malformed file is an
	// error, never silently replaced; a missing directory is created, mode
	// 0700), rewritten atomically with mode 0600 after every change. It
	// holds private keys in the clear: keep it out of source control and
	// off shared disks. One emulator per file: two processes sharing one
	// overwrite each other's changes. Default "": memory only.
	StateFile string

	// Now is the clock used for create, generate and destroy times and for
	// scheduled destruction. Default time.Now.
	Now func() time.Time

	// GenerationDelay is how long new versions of asymmetric keys stay
	// PENDING_GENERATION (the real service generates them asynchronously,
	// so clients must wait for ENABLED before GetPublicKey or
	// AsymmetricSign). Default 0: ENABLED at once.
	GenerationDelay time.Duration
}

// Server is a running KMS emulator.
type Server struct {
	svc      *service
	lis      net.Listener
	grpc     *grpc.Server
	serveErr chan error
	faults   faults

	closeOnce sync.Once
	closeErr  error
}

// service implements kmspb.KeyManagementServiceServer over the state.
type service struct {
	kmspb.UnimplementedKeyManagementServiceServer

	now             func() time.Time
	stateFile       string
	generationDelay time.Duration

	mu sync.RWMutex // guards st and the state file
	st *state
}

func newService(opts Options) (*service, error) {
	if opts.GenerationDelay < 0 {
		return nil, fmt.Errorf("couldn't configure the KMS emulator: negative GenerationDelay %v", opts.GenerationDelay)
	}
	svc := &service{
		now:             opts.Now,
		stateFile:       opts.StateFile,
		generationDelay: opts.GenerationDelay,
		st:              newState(),
	}
	if svc.now == nil {
		svc.now = time.Now
	}
	if opts.StateFile != "" {
		if err := os.MkdirAll(filepath.Dir(opts.StateFile), 0o700); err != nil {
			return nil, fmt.Errorf("couldn't create the directory of the KMS state file: %w", err)
		}
		st, err := loadState(opts.StateFile)
		if err != nil {
			return nil, err
		}
		svc.st = st
	}
	return svc, nil
}

// Start loads opts.StateFile (if set), listens on opts.Addr and serves the
// KMS API over plaintext gRPC until Close.
func Start(ctx context.Context, opts Options) (*Server, error) {
	svc, err := newService(opts)
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("couldn't listen for the KMS emulator: %w", err)
	}
	s := &Server{svc: svc, lis: lis, serveErr: make(chan error, 1)}
	s.faults.init()
	s.grpc = grpc.NewServer(
		grpc.UnaryInterceptor(s.intercept),
		// Long-lived workers keep their grown stacks: a fresh goroutine per
		// call spends a measurable share of a signature's time growing one.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	)
	kmspb.RegisterKeyManagementServiceServer(s.grpc, svc)
	go func() { s.serveErr <- s.grpc.Serve(lis) }()
	return s, nil
}

// Addr returns the address the server listens on, "HOST:PORT".
func (s *Server) Addr() string { return s.lis.Addr().String() }

// closeGrace bounds how long Close waits for RPCs in flight.
const closeGrace = 5 * time.Second

// Close stops the server: it stops accepting, lets RPCs in flight finish
// (for at most a few seconds), and returns any error from serving. State
// is already on disk: every change was written when it happened.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(closeGrace):
			s.grpc.Stop()
			<-done
		}
		if err := <-s.serveErr; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.closeErr = fmt.Errorf("couldn't serve the KMS emulator: %w", err)
		}
	})
	return s.closeErr
}

// ClientOptions returns the options that point
// kms.NewKeyManagementClient at the server: its endpoint, no credentials,
// plaintext gRPC, and no client telemetry (it has nowhere to report to).
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.Addr()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled(),
	}
}

// Fault injection. Method names are the RPC names of
// google.cloud.kms.v1.KeyManagementService, e.g. "AsymmetricSign" (the
// full gRPC form "/google.cloud.kms.v1.KeyManagementService/AsymmetricSign"
// is accepted too).

// FailNext makes the next n calls of method fail with code before they take
// effect (as when a request is lost on its way in).
func (s *Server) FailNext(method string, n int, code codes.Code) error {
	return s.faults.add(method, n, code, false)
}

// FailNextAfterApply makes the next n successful calls of method take
// effect and then fail with code (as when a response is lost on its way
// out: the key was created, the signature made, but the caller saw an
// error).
func (s *Server) FailNextAfterApply(method string, n int, code codes.Code) error {
	return s.faults.add(method, n, code, true)
}

// SetLatency delays every call by d before it is handled (0 turns it off).
// A call whose context ends while it waits fails with the context's code.
func (s *Server) SetLatency(d time.Duration) { s.faults.latency.Store(int64(d)) }

// Calls returns how many calls of method the server has received (including
// failed and injected-failure ones). It returns 0 for unknown methods.
func (s *Server) Calls(method string) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.calls[path.Base(method)]
}

// faults holds the fault-injection settings.
type faults struct {
	latency atomic.Int64 // time.Duration

	mu      sync.Mutex
	calls   map[string]int
	pending map[string][]fault // per method, in order of use
}

type fault struct {
	n     int
	code  codes.Code
	after bool
}

func (f *faults) init() {
	f.calls = make(map[string]int)
	f.pending = make(map[string][]fault)
}

// knownMethod reports whether the KMS service has an RPC called method.
func knownMethod(method string) bool {
	svc := kmspb.File_google_cloud_kms_v1_service_proto.Services().ByName("KeyManagementService")
	return svc != nil && svc.Methods().ByName(protoreflect.Name(method)) != nil
}

func (f *faults) add(method string, n int, code codes.Code, after bool) error {
	method = path.Base(method)
	if !knownMethod(method) {
		return fmt.Errorf("couldn't inject a fault: %q is not a method of google.cloud.kms.v1.KeyManagementService", method)
	}
	if n <= 0 || code == codes.OK {
		return fmt.Errorf("couldn't inject a fault: want n > 0 and a non-OK code, got n=%d code=%v", n, code)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending[method] = append(f.pending[method], fault{n: n, code: code, after: after})
	return nil
}

// take consumes one pending fault of the given kind for method, if any.
func (f *faults) take(method string, after bool) (codes.Code, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ft := range f.pending[method] {
		if ft.after != after {
			continue
		}
		q := f.pending[method]
		if ft.n == 1 {
			f.pending[method] = append(q[:i:i], q[i+1:]...)
		} else {
			q[i].n--
		}
		return ft.code, true
	}
	return codes.OK, false
}

func (f *faults) count(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
}

// intercept applies latency and injected faults around every call.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	f := &s.faults
	f.count(method)
	if d := time.Duration(f.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if code, ok := f.take(method, false); ok {
		return nil, status.Errorf(code, "kmsemu: injected fault before %s", method)
	}
	resp, err := handler(ctx, req)
	if err != nil {
		return nil, err
	}
	if code, ok := f.take(method, true); ok {
		return nil, status.Errorf(code, "kmsemu: injected fault after %s took effect", method)
	}
	return resp, nil
}
