// Command kms-emulator serves the Cloud KMS emulator (package
// emulators/kmsemu) for a local stack: the KeyManagementService subset
// Conifer uses, over plaintext gRPC.
//
//	kms-emulator -addr 127.0.0.1:8086 -state .conifer/kms.json
//
// It prints the address it listens on as the first line of standard
// output (useful with -addr 127.0.0.1:0), logs to standard error, and
// stops gracefully on SIGINT or SIGTERM. Point the Go client at it with
//
//	kms.NewKeyManagementClient(ctx,
//		option.WithEndpoint(addr),
//		option.WithoutAuthentication(),
//		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
//
// Flags:
//
//	-addr              address to listen on (default 127.0.0.1:0: any free port)
//	-state             state file keeping key rings and keys across restarts
//	                   (default "": memory only); it holds private keys in the
//	                   clear, mode 0600
//	-generation-delay  how long new asymmetric versions stay PENDING_GENERATION
//	                   (default 0)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/conifer-kt/conifer/emulators/kmsemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kms-emulator:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx ends, then shuts down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kms-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	state := fs.String("state", "", "state file keeping keys across restarts (holds private keys; mode 0600)")
	delay := fs.Duration("generation-delay", 0, "how long new asymmetric versions stay PENDING_GENERATION")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := kmsemu.Start(ctx, kmsemu.Options{Addr: *addr, StateFile: *state, GenerationDelay: *delay})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(stdout, srv.Addr()); err != nil {
		return fmt.Errorf("couldn't print the address: %w", err)
	}
	log.InfoContext(ctx, "KMS emulator serving", "addr", srv.Addr(), "state", *state)
	<-ctx.Done()
	log.Info("KMS emulator stopping")
	if err := srv.Close(); err != nil {
		return err
	}
	log.Info("KMS emulator stopped")
	return nil
}
