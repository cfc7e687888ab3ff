// Command conifer-verifier is a Conifer third-party verifier: it follows a
// realm's epochs (from the keyserver's Pub/Sub topic and its feed),
// replays every update with the same statemachine the keyserver runs, checks
// each epoch head and signed checkpoint against its own replay and epoch
// log, and co-signs each good epoch (C2SP tlog-cosignature/v1), sending the
// cosignature to the keyserver's Ratify function. On a bad epoch it writes
// evidence, stops signing for good and exits with status 2. See package
// verifier for the checks, the evidence and the storage.
//
// Usage:
//
//	conifer-verifier --name verifier.example.net/conifer --key verifier.key --init-key
//	conifer-verifier --realm realm.json --data verifier-data \
//		--key verifier.key --name verifier.example.net/conifer \
//		--feed https://REGION-PROJECT.cloudfunctions.net \
//		--subscription projects/PROJECT/subscriptions/verifier-1 \
//		--status-addr 127.0.0.1:8089
//
// The first command creates the cosigning key (mode 0600) and prints the
// verifier key string to add to the realm config's "verifiers". The second
// runs the verifier until SIGINT or SIGTERM.
//
// Flags:
//
//	--realm FILE          the pinned realm config (JSON). Required.
//	--data DIR            the data directory (tree, state, evidence). Required.
//	--key FILE            the cosigning key file ("CONIFER-PRIVATE-KEY <base64 seed>",
//	                      mode 0600). Required.
//	--init-key            create --key (never replacing a file), print the verifier
//	                      key string for --name, and exit.
//	--name NAME           the cosigner name, a schema-less URL naming this verifier.
//	                      Required. Bound to the data directory for good.
//	--feed URL            the keyserver's functions base URL, or the Feed
//	                      function's own URL (ending in /Feed). Required.
//	--ratify URL          the Ratify function: a base URL or its own URL (ending in
//	                      /Ratify). Default: the --feed base. "off": co-sign and
//	                      record, but send nothing.
//	--subscription NAME   the verifier's Pub/Sub subscription to the epoch topic,
//	                      projects/P/subscriptions/S (message ordering enabled).
//	                      Optional: without it the verifier polls the feed.
//	                      PUBSUB_EMULATOR_HOST is honoured.
//	--status-addr ADDR    serve the status JSON on http://ADDR/ (default: off).
//	                      It answers 500 once signing has stopped.
//	--poll DURATION       how long to wait for Pub/Sub before asking the feed
//	                      (default: the realm's max_epoch_interval).
//	--log-format FORMAT   "text" (default) or "json" (Cloud Logging fields).
//
// Exit status: 0 after SIGINT or SIGTERM; 1 for a usage or local error (bad
// flags, unreadable key or config, a failing disk); 2 when the keyserver
// misbehaved, now or before (the data directory holds the halt and the
// evidence, whose path is printed).
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
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
	"strings"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/verifier"
)

// Exit statuses.
const (
	exitOK           = 0
	exitError        = 1
	exitMisbehaviour = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed flags.
type options struct {
	realm, data, key, name    string
	feed, ratify, sub, status string
	initKey                   bool
	poll                      time.Duration
	logFormat                 string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("conifer-verifier", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.realm, "realm", "", "the pinned realm config `file` (JSON)")
	fs.StringVar(&o.data, "data", "", "the data `directory`")
	fs.StringVar(&o.key, "key", "", "the cosigning key `file` (mode 0600)")
	fs.BoolVar(&o.initKey, "init-key", false, "create --key, print the verifier key string for --name, and exit")
	fs.StringVar(&o.name, "name", "", "the cosigner `name`, a schema-less URL naming this verifier")
	fs.StringVar(&o.feed, "feed", "", "the keyserver's functions base `URL` (or the Feed function's URL)")
	fs.StringVar(&o.ratify, "ratify", "", "the Ratify function's `URL` or base URL (default: the --feed base; \"off\": send nothing)")
	fs.StringVar(&o.sub, "subscription", "", "the Pub/Sub subscription `projects/P/subscriptions/S` (optional)")
	fs.StringVar(&o.status, "status-addr", "", "serve the status JSON on this `address` (default: off)")
	fs.DurationVar(&o.poll, "poll", 0, "how long to wait for Pub/Sub before asking the feed (default: the realm's max_epoch_interval)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format`: text or json")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: conifer-verifier --name NAME --key FILE --init-key")
		fmt.Fprintln(fs.Output(), "       conifer-verifier --realm FILE --data DIR --key FILE --name NAME --feed URL [--ratify URL] [--subscription NAME] [--status-addr ADDR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	missing := func(names ...string) error {
		for _, n := range names {
			if fs.Lookup(n).Value.String() == "" {
				return fmt.Errorf("--%s is required", n)
			}
		}
		return nil
	}
	if o.initKey {
		return o, missing("key", "name")
	}
	if err := missing("realm", "data", "key", "name", "feed"); err != nil {
		return nil, err
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, fmt.Errorf("--log-format must be text or json, not %q", o.logFormat)
	}
	if o.sub != "" {
		if _, err := subscriptionProject(o.sub); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// subscriptionProject returns P of projects/P/subscriptions/S.
func subscriptionProject(name string) (string, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[1] == "" || parts[2] != "subscriptions" || parts[3] == "" {
		return "", fmt.Errorf("--subscription must be projects/PROJECT/subscriptions/NAME, not %q", name)
	}
	return parts[1], nil
}

// ratifyURL derives the Ratify URL: explicit, off, or the feed's base.
func ratifyURL(o *options) string {
	switch o.ratify {
	case "off":
		return ""
	case "":
		return strings.TrimSuffix(strings.TrimSuffix(o.feed, "/"), "/Feed")
	}
	return o.ratify
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format != "json" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	// Cloud Logging reads "severity" and "message".
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.LevelKey:
			sev := "DEFAULT"
			switch l := a.Value.Any().(slog.Level); {
			case l >= slog.LevelError:
				sev = "ERROR"
			case l >= slog.LevelWarn:
				sev = "WARNING"
			case l >= slog.LevelInfo:
				sev = "INFO"
			default:
				sev = "DEBUG"
			}
			return slog.String("severity", sev)
		case slog.MessageKey:
			return slog.String("message", a.Value.String())
		}
		return a
	}}))
}

// run runs the command and returns its exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "conifer-verifier:", err)
		return exitError
	}
	if o.initKey {
		return initKey(o, stdout, stderr)
	}
	log := newLogger(o.logFormat, stderr)
	err = follow(ctx, o, stdout, log)
	var m *verifier.Misbehaviour
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &m):
		ev := ""
		if m.Evidence != "" {
			ev = filepath.Join(o.data, m.Evidence)
		}
		log.Error("the keyserver misbehaved: this verifier will never sign again", "epoch", m.Epoch, "check", string(m.Check), "detail", m.Detail, "evidence", ev)
		fmt.Fprintf(stderr, "conifer-verifier: %v\n", err)
		return exitMisbehaviour
	default:
		log.Error("stopped", "err", err)
		fmt.Fprintf(stderr, "conifer-verifier: %v\n", err)
		return exitError
	}
}

// initKey creates the key file and prints the verifier key string.
func initKey(o *options, stdout, stderr io.Writer) int {
	if !checkpoint.ValidKeyName(o.name) {
		fmt.Fprintf(stderr, "conifer-verifier: --name %q is not a valid key name (no spaces or plus signs)\n", o.name)
		return exitError
	}
	k, err := createKey(o.key, rand.Reader)
	if err != nil {
		fmt.Fprintln(stderr, "conifer-verifier:", err)
		return exitError
	}
	vkey, err := checkpoint.VerifierKey(o.name, checkpoint.AlgCosignatureV1, k.Public().(ed25519.PublicKey))
	if err != nil {
		fmt.Fprintln(stderr, "conifer-verifier:", err)
		return exitError
	}
	fmt.Fprintln(stdout, vkey)
	return exitOK
}

// follow opens the verifier and runs it (and the status server and the
// Pub/Sub receiver) until ctx ends or something fails.
func follow(ctx context.Context, o *options, stdout io.Writer, log *slog.Logger) error {
	cfg, err := realm.Load(o.realm)
	if err != nil {
		return err
	}
	key, err := loadKey(o.key)
	if err != nil {
		return err
	}
	signer, err := checkpoint.NewKeySigner(key)
	if err != nil {
		return err
	}
	v, err := verifier.Open(ctx, verifier.Config{
		Realm: cfg, Dir: o.data, Signer: signer, Name: o.name,
		FeedURL: o.feed, RatifyURL: ratifyURL(o), Logger: log, PollInterval: o.poll,
	})
	if err != nil {
		return err
	}
	defer v.Close()
	if !listed(cfg, v.VerifierKey()) {
		log.Warn("this verifier's key is not in the realm config: Ratify will refuse its cosignatures", "verifier_key", v.VerifierKey())
	}
	// Everything started below is stopped in reverse order: cancel the
	// context, stop the status server, wait for the goroutines, then
	// close the Pub/Sub client (and, deferred above, the verifier).
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var cleanup []func()
	defer func() {
		cancel()
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		wg.Wait()
	}()
	errs := make(chan error, 2)

	if o.status != "" {
		ln, err := net.Listen("tcp", o.status)
		if err != nil {
			return fmt.Errorf("couldn't serve status: %w", err)
		}
		srv := &http.Server{Handler: v, ReadHeaderTimeout: 10 * time.Second}
		fmt.Fprintf(stdout, "status: http://%s/\n", ln.Addr())
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("couldn't serve status: %w", err)
			}
		})
		cleanup = append(cleanup, func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			srv.Shutdown(sctx)
		})
	}

	var msgs chan verifier.Message
	if o.sub != "" {
		project, _ := subscriptionProject(o.sub)
		client, err := pubsub.NewClient(ctx, project)
		if err != nil {
			return fmt.Errorf("couldn't connect to Pub/Sub: %w", err)
		}
		msgs = make(chan verifier.Message)
		received := make(chan struct{})
		wg.Go(func() {
			defer close(received)
			if err := verifier.ReceivePubSub(ctx, client.Subscriber(o.sub), msgs); err != nil {
				errs <- err
			}
		})
		cleanup = append(cleanup, func() {
			<-received
			client.Close()
		})
	}

	log.Info("verifier started", "realm", cfg.Realm, "name", o.name, "next_epoch", v.Next(), "verifier_key", v.VerifierKey())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx, msgs) }()
	select {
	case err = <-done:
	case err = <-errs:
		cancel()
		<-done
	}
	if err == nil {
		log.Info("verifier stopped", "next_epoch", v.Next())
	}
	return err
}

// listed reports whether vkey is one of the realm's verifiers.
func listed(cfg *realm.Config, vkey string) bool {
	for _, k := range cfg.Verifiers {
		if k == vkey {
			return true
		}
	}
	return false
}
