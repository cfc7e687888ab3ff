package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/verifier"
)

// startVerifier runs the third-party verifier in this process, on its own
// data directory and its own Pub/Sub subscription, co-signing through the
// Ratify function, with its status served on a free loopback port.
func (st *stack) startVerifier(ctx context.Context, base string, log *slog.Logger) error {
	if len(st.realm.Verifiers) == 0 {
		return errors.New("the realm config names no verifier: this state directory was made with --verifier=false (use --reset)")
	}
	seed, err := readKeyFile(filepath.Join(st.verifierDir(), "cosigner.key"))
	if err != nil {
		return err
	}
	signer, err := checkpoint.NewKeySigner(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return err
	}
	v, err := verifier.Open(ctx, verifier.Config{
		Realm:        st.realm,
		Dir:          filepath.Join(st.verifierDir(), "data"),
		Signer:       signer,
		Name:         verifierName,
		FeedURL:      base,
		RatifyURL:    base,
		Logger:       log.With("component", "verifier"),
		PollInterval: 5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("couldn't open the verifier: %w", err)
	}
	client, err := st.pubsub.NewClient(ctx)
	if err != nil {
		v.Close()
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		v.Close()
		client.Close()
		return err
	}
	status := &http.Server{Handler: v, ReadHeaderTimeout: 10 * time.Second}
	go status.Serve(ln)
	st.verifierInfo = fmt.Sprintf("%s co-signs every epoch; status at http://%s/", verifierName, ln.Addr())

	msgs := make(chan verifier.Message)
	go func() {
		if err := verifier.ReceivePubSub(ctx, client.Subscriber(st.sub), msgs); err != nil && ctx.Err() == nil {
			log.Error("verifier subscription failed", "error", err)
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := v.Run(ctx, msgs); err != nil && ctx.Err() == nil {
			log.Error("the verifier stopped", "error", err)
		}
	}()
	st.closers = append(st.closers, func() {
		<-done
		status.Close()
		client.Close()
		v.Close()
	})
	return nil
}

// readKeyFile reads a "CONIFER-PRIVATE-KEY base64(seed)" file written by newKeyFile.
func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "CONIFER-PRIVATE-KEY ")
	if !ok {
		return nil, fmt.Errorf("%s is not a CONIFER-PRIVATE-KEY file", path)
	}
	seed, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s does not hold a 32-byte base64 seed", path)
	}
	return seed, nil
}
