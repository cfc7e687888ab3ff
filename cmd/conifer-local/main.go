// Command conifer-local runs the whole Conifer stack on one machine, the
// embedded default: the official Cloud Spanner and Pub/Sub emulators, the
// project's Cloud KMS emulator, every function in one process on localhost,
// an epoch trigger on a short schedule (playing Cloud Scheduler) and a
// third-party verifier that replays and co-signs every epoch.
//
// It provisions everything a deployment has — the schema, the topic and the
// verifier's subscription, a KMS key ring with the checkpoint signing key
// and the key that seals the VRF seed, the sealed seed, a registrar key, the
// verifier's key, and the realm config that names them — and prints how to
// use it with the conifer CLI.
//
// State lives under --dir (default .conifer/local): the KMS emulator's key
// file, the sealed VRF seed, the realm config, the registrar and verifier
// keys, the verifier's store, and a snapshot of every Spanner table (the
// Spanner emulator keeps nothing), written every --snapshot-interval and
// on shutdown and imported on start. So a restarted stack keeps its users,
// epochs and keys. --reset starts from nothing.
//
// Usage:
//
//	go run ./cmd/conifer-local [flags]
//
// Flags:
//
//	--dir DIR                 state directory (default .conifer/local)
//	--addr HOST:PORT          where the functions listen (default 127.0.0.1:8080)
//	--realm NAME              realm name for a new stack (default localhost/conifer)
//	--tick D                  how often the epoch trigger fires (default 1s)
//	--min-epoch D             realm min_epoch_interval for a new stack (default 1s)
//	--max-epoch D             realm max_epoch_interval for a new stack (default 30s)
//	--snapshot-interval D     how often Spanner is exported (default 30s)
//	--verifier                run the verifier (default true)
//	--reset                   delete the state directory first
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

type options struct {
	dir              string
	addr             string
	realm            string
	tick             time.Duration
	minEpoch         time.Duration
	maxEpoch         time.Duration
	snapshotInterval time.Duration
	verifier         bool
	reset            bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("conifer-local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.dir, "dir", filepath.Join(".conifer", "local"), "state directory")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address the functions listen on")
	fs.StringVar(&o.realm, "realm", "localhost/conifer", "realm name for a new stack")
	fs.DurationVar(&o.tick, "tick", time.Second, "how often the epoch trigger fires")
	fs.DurationVar(&o.minEpoch, "min-epoch", time.Second, "realm min_epoch_interval for a new stack")
	fs.DurationVar(&o.maxEpoch, "max-epoch", 30*time.Second, "realm max_epoch_interval for a new stack")
	fs.DurationVar(&o.snapshotInterval, "snapshot-interval", 30*time.Second, "how often Spanner is exported to the state directory")
	fs.BoolVar(&o.verifier, "verifier", true, "run a verifier that co-signs every epoch")
	fs.BoolVar(&o.reset, "reset", false, "delete the state directory first")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: conifer-local [flags]\n\nRuns the whole Conifer stack on this machine (see go doc ./cmd/conifer-local).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "conifer-local: unexpected arguments %q\n", fs.Args())
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, o, stdout, log); err != nil {
		fmt.Fprintf(stderr, "conifer-local: %v\n", err)
		return 1
	}
	return 0
}

// serve starts the stack, blocks until ctx is done, then shuts down.
func serve(ctx context.Context, o options, stdout io.Writer, log *slog.Logger) error {
	if o.reset {
		if err := os.RemoveAll(o.dir); err != nil {
			return fmt.Errorf("couldn't reset %s: %w", o.dir, err)
		}
	}
	st, err := startStack(ctx, o, log)
	if err != nil {
		return err
	}
	defer st.Close(log)

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("couldn't listen on %s: %w", o.addr, err)
	}
	srv := &http.Server{Handler: st.app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	base := "http://" + ln.Addr().String()

	bg, cancelBG := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); st.epochLoop(bg, base, o.tick, log) }()
	go st.snapshotLoop(bg, o.snapshotInterval, log)
	if o.verifier {
		if err := st.startVerifier(bg, base, log); err != nil {
			cancelBG()
			return err
		}
	}
	printWelcome(stdout, o, st, base)

	<-ctx.Done()
	log.Info("shutting down")
	cancelBG()
	<-done
	return nil
}

// epochLoop plays Cloud Scheduler: it POSTs to the Epoch function every
// tick (the function decides whether an epoch is due).
func (st *stack) epochLoop(ctx context.Context, base string, tick time.Duration, log *slog.Logger) {
	t := time.NewTicker(tick)
	defer t.Stop()
	client := &http.Client{Timeout: 5 * time.Minute}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/Epoch", nil)
			if err != nil {
				log.Error("epoch trigger", "error", err)
				continue
			}
			req.Header.Set("X-CloudScheduler-ScheduleTime", now.UTC().Format(time.RFC3339))
			resp, err := client.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("epoch trigger failed", "error", err)
				}
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				log.Warn("epoch trigger", "status", resp.StatusCode, "body", string(body))
			}
		}
	}
}

func (st *stack) snapshotLoop(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := saveSnapshot(ctx, st.spanner, st.snapshotPath()); err != nil {
				if ctx.Err() == nil {
					log.Warn("snapshot failed", "error", err)
				}
			} else {
				log.Debug("snapshot written", "rows", n)
			}
		}
	}
}

func printWelcome(w io.Writer, o options, st *stack, base string) {
	fmt.Fprintf(w, `
Conifer local stack is running.

  functions     %s/{Update,Lookup,History,Checkpoint,Feed,Ratify,Epoch}
  realm config  %s
  registrar key %s
  state         %s (Spanner snapshot every %v and on exit)
  epochs        triggered every %v (min interval %v, max %v)
  verifier      %s

Try it (in another terminal):

  go install ./cmd/conifer
  conifer --dir alice-device init --realm %s --server %s
  conifer --dir alice-device register alice@example.com --set-key pgp=AAEC --registrar-key %s
  conifer --dir alice-device lookup alice@example.com
  conifer --dir alice-device checkpoint
  curl %s/Checkpoint

Stop with Ctrl-C; start again to continue where you left off (--reset to start over).
`, base, st.realmPath(), st.registrarPath(), o.dir, o.snapshotInterval, o.tick, st.realm.MinEpochInterval, st.realm.MaxEpochInterval,
		st.verifierStatus(), st.realmPath(), base, st.registrarPath(), base)
}
