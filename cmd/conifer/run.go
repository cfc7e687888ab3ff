package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/conifer-kt/conifer/client"
	"github.com/conifer-kt/conifer/realm"
)

// Exit codes (see the package documentation).
const (
	exitOK       = 0
	exitUsage    = 1
	exitVerify   = 2
	exitServer   = 3
	exitNotFound = 4
)

// usageError is a mistake in how conifer was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// notFoundError is a user that is not registered (exit 4).
type notFoundError struct{ msg string }

func (e notFoundError) Error() string { return e.msg }

// command is one subcommand. setup declares its flags and returns the
// function that runs it with the positional arguments.
type command struct {
	name, args, summary, help string
	setup                     func(fs *flag.FlagSet) func(a *app, args []string) error
}

// globals are the flags every command takes.
type globals struct {
	server, realm, dir string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", g.server, "the keyserver's base `URL` (default: the one saved by init)")
	fs.StringVar(&g.realm, "realm", g.realm, "a realm config `FILE` to use instead of the pinned one")
	fs.StringVar(&g.dir, "dir", g.dir, "the configuration `DIR` (default ~/.config/conifer)")
}

// app is what a command runs with.
type app struct {
	ctx            context.Context
	g              globals
	stdout, stderr io.Writer
	rand           io.Reader
	now            func() time.Time
	store          *store
	progress       bool // stderr is a terminal
}

var commands []*command

func init() {
	commands = []*command{cmdInit, cmdRegister, cmdUpdate, cmdLookup, cmdHistory, cmdMonitor, cmdCheckpoint}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: conifer [--server URL] [--realm FILE] [--dir DIR] <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun \"conifer <command> --help\" for a command's flags.\n"+
		"Exit codes: 0 ok, 1 usage or local error, 2 verification failure (evidence written), 3 server or network error, 4 not found.\n")
}

// run is the whole program: it parses args, runs the command and returns
// the exit code. It writes results to stdout and messages to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	a := &app{ctx: ctx, stdout: stdout, stderr: stderr, rand: rand.Reader, now: time.Now}
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			a.progress = true
		}
	}

	top := flag.NewFlagSet("conifer", flag.ContinueOnError)
	top.SetOutput(stderr)
	a.g.register(top)
	top.Usage = func() { usage(stderr) }
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if top.NArg() == 0 {
		usage(stderr)
		return exitUsage
	}
	name, rest := top.Arg(0), top.Args()[1:]
	if name == "help" {
		if len(rest) == 0 {
			usage(stdout)
			return exitOK
		}
		name, rest = rest[0], []string{"--help"}
	}
	var cmd *command
	for _, c := range commands {
		if c.name == name {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "conifer: unknown command %q\n", name)
		usage(stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("conifer "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	a.g.register(fs)
	runCmd := cmd.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: conifer %s [flags] %s\n\n%s\n\nflags:\n", cmd.name, cmd.args, strings.TrimSpace(cmd.help))
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if a.g.dir == "" {
		d, err := os.UserConfigDir()
		if err != nil {
			fmt.Fprintf(stderr, "conifer: couldn't find the configuration directory (pass --dir): %v\n", err)
			return exitUsage
		}
		a.g.dir = filepath.Join(d, "conifer")
	}
	a.store = &store{dir: a.g.dir}
	return a.exit(runCmd(a, pos))
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments ("--" ends the flags).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// exit prints err (if any) and maps it to an exit code.
func (a *app) exit(err error) int {
	if err == nil {
		return exitOK
	}
	var (
		ue  usageError
		nf  notFoundError
		ve  *client.Error
		se  *client.ServerError
		ne  net.Error
		ue2 *url.Error
	)
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "conifer: %v\n", err)
		return exitUsage
	case errors.As(err, &nf):
		fmt.Fprintf(a.stderr, "conifer: %v\n", err)
		return exitNotFound
	case errors.As(err, &ve):
		fmt.Fprintf(a.stderr, "conifer: VERIFICATION FAILED: %v\n", err)
		fmt.Fprintf(a.stderr, "conifer: do not trust this keyserver's answers; report the evidence to the realm's operators and verifiers.\n")
		if ve.EvidenceFile != "" {
			fmt.Fprintf(a.stderr, "conifer: evidence written to %s\n", ve.EvidenceFile)
		}
		return exitVerify
	case errors.Is(err, errEvidence):
		fmt.Fprintf(a.stderr, "conifer: %v\n", err)
		return exitVerify
	case errors.As(err, &se) && errors.Is(err, client.ErrNotFound):
		fmt.Fprintf(a.stderr, "conifer: %v\n", err)
		return exitNotFound
	case errors.As(err, &se), errors.As(err, &ne), errors.As(err, &ue2), errors.Is(err, client.ErrUpdateNotApplied):
		fmt.Fprintf(a.stderr, "conifer: %v\n", err)
		return exitServer
	case errors.Is(err, context.Canceled):
		return exitOK
	}
	fmt.Fprintf(a.stderr, "conifer: %v\n", err)
	return exitUsage
}

// errEvidence marks failures that conifer itself found and wrote evidence
// for (monitor).
var errEvidence = errors.New("unexpected change")

// pinned loads the realm config (flag or pinned copy).
func (a *app) realm() (*realm.Config, error) {
	return a.store.realm(a.g.realm)
}

// client builds a verifying client for the realm and server.
func (a *app) client(cfg *realm.Config) (*client.Client, error) {
	server, err := a.store.server(a.g.server)
	if err != nil {
		return nil, err
	}
	if err := a.store.mkdir("state"); err != nil {
		return nil, err
	}
	opts := []client.Option{
		client.WithState(&client.FileState{Path: a.store.path("state", shortID(cfg.Realm, cfg.LogKey)+".note")}),
		client.WithEvidenceDir(a.store.path("evidence")),
		client.WithClock(a.now),
		// Updates that wait are held until an epoch is co-signed.
		client.WithHTTPClient(&http.Client{Timeout: 2*cfg.MaxEpochInterval.Duration + time.Minute}),
	}
	if a.progress {
		opts = append(opts, client.WithProgress(func(stage string, done, total int) {
			fmt.Fprintf(a.stderr, "\rverifying %s: %d/%d", stage, done, total)
			if done == total {
				fmt.Fprintln(a.stderr)
			}
		}))
	}
	c, err := client.New(cfg, server, opts...)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return c, nil
}

// one returns the single positional argument (the user id).
func one(pos []string, what string) (string, error) {
	if len(pos) != 1 {
		return "", usageError{fmt.Sprintf("want exactly one %s, got %d arguments", what, len(pos))}
	}
	return pos[0], nil
}
