package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"cloud.google.com/go/pubsub/v2"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/client/clienttest"
	"github.com/conifer-kt/conifer/emulators/pubsubemu"
	"github.com/conifer-kt/conifer/format"
)

func TestMain(m *testing.M) { pubsubemu.Main(m) }

// TestFollowPubSub runs the command with --subscription against the
// Pub/Sub emulator (found through PUBSUB_EMULATOR_HOST, as in
// production through the client library), with a feed that serves only
// the genesis: every later epoch must come through Pub/Sub.
func TestFollowPubSub(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the Pub/Sub emulator")
	}
	e := pubsubemu.ForTest(t)
	tt := pubsubemu.NewTestTopic(t)
	t.Setenv("PUBSUB_EMULATOR_HOST", e.Host)

	seed := sha256.Sum256([]byte("conifer-verifier pubsub test"))
	keys, err := clienttest.NewKeys(bytes.NewReader(bytes.Repeat(seed[:], 10)), 1)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := clienttest.New(keys, clienttest.Options{ManualCosign: true, ChunkSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 9)}, 32))
		user := string(rune('a'+i)) + "@example.com"
		idx, _ := srv.Index(user)
		en := &format.Entry{Realm: srv.Config().Realm, Index: idx, Version: 1,
			Policy: format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}}, Commitment: format.CommitProfile([16]byte{}, []byte{0})}
		eb, _ := en.Marshal()
		h := format.EntryHash(eb)
		se := format.SignedEntry{Entry: eb, Signatures: []format.Signature{format.SignEntry(k, h)}}
		seb, _ := se.Marshal()
		sig := format.SignRegistration(keys.Registrar, h)
		if _, err := srv.Submit(&api.UpdateRequest{UserID: user, SignedEntry: seb, Profile: []byte{0}, Opening: make([]byte, 16),
			RegistrarSignature: append(sig.KeyID[:], sig.Sig[:]...)}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.CutEpoch(); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/Feed" && r.URL.Query().Get("epoch") != "0" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"code":"not_found","error":"not yet"}`))
			return
		}
		srv.ServeHTTP(w, r)
	}))
	defer hs.Close()

	// Publish every epoch after the genesis, as the epoch function does.
	ctx := context.Background()
	client, err := e.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pub := client.Publisher(tt.Topic)
	pub.EnableMessageOrdering = true
	for n := uint64(1); n < srv.Epochs(); n++ {
		first, err := srv.Feed(n, 0)
		if err != nil {
			t.Fatal(err)
		}
		for p := uint32(0); p < first.Parts; p++ {
			fr, err := srv.Feed(n, p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pub.Publish(ctx, &pubsub.Message{Data: fr.Chunk, OrderingKey: srv.Config().Realm}).Get(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub.Stop()

	dir := t.TempDir()
	realmFile := filepath.Join(dir, "realm.json")
	rb, _ := srv.Config().Marshal()
	os.WriteFile(realmFile, rb, 0o644)
	keyFile := filepath.Join(dir, "v.key")
	os.WriteFile(keyFile, formatKey(keys.Verifiers[0].Seed()), 0o600)
	args := []string{"--realm", realmFile, "--data", filepath.Join(dir, "data"), "--key", keyFile,
		"--name", clienttest.VerifierName(0), "--feed", hs.URL, "--subscription", tt.Subscription, "--poll", "20ms"}
	runCtx, cancel := context.WithCancel(ctx)
	var out, errb syncBuffer
	code := make(chan int, 1)
	go func() { code <- run(runCtx, args, &out, &errb) }()
	cfg := srv.Config()
	logV, _ := checkpoint.NewVerifier(cfg.LogKey)
	cv, _ := checkpoint.NewCosignatureVerifier(cfg.Verifiers[0])
	for n := uint64(0); n < srv.Epochs(); {
		if _, err := checkpoint.Open(srv.Note(n), cfg.Realm, logV, []*checkpoint.CosignatureVerifier{cv}, 1); err == nil {
			n++
			continue
		}
		select {
		case c := <-code:
			t.Fatalf("exited %d: %s", c, errb.String())
		default:
		}
		wait(t)
	}
	cancel()
	if c := <-code; c != exitOK {
		t.Fatalf("exit %d: %s", c, errb.String())
	}
}
