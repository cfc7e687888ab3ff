package verifier

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/client/clienttest"
	"github.com/conifer-kt/conifer/format"
)

// TestClienttestServer follows client/clienttest, an honest keyserver
// written separately from the statemachine (it applies format's rules
// itself), over its HTTP feed, and co-signs through its Ratify, which
// merges cosignatures with checkpoint.Merge. Both implementations must
// agree on every tree root.
func TestClienttestServer(t *testing.T) {
	seed := sha256.Sum256([]byte("clienttest keys"))
	keys, err := clienttest.NewKeys(newDetReader(seed), 1)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	srv, err := clienttest.New(keys, clienttest.Options{
		ManualCosign: true, ChunkSize: 1024,
		Now: func() time.Time { clock = clock.Add(time.Second); return clock },
	})
	if err != nil {
		t.Fatal(err)
	}
	userKeys := map[string]ed25519.PrivateKey{}
	entries := map[string]*format.Entry{}
	submit := func(user string, newKey ed25519.PrivateKey) {
		t.Helper()
		idx, err := srv.Index(user)
		if err != nil {
			t.Fatal(err)
		}
		var prof format.Profile
		if err := prof.Set("pgp", newKey.Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
		pb, err := prof.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		opening := [format.OpeningSize]byte{1}
		e := &format.Entry{Realm: srv.Config().Realm, Index: idx, Version: 1,
			Policy:     format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{newKey.Public().(ed25519.PublicKey)}},
			Commitment: format.CommitProfile(opening, pb)}
		signers := []ed25519.PrivateKey{newKey}
		if old := entries[user]; old != nil {
			ob, _ := old.Marshal()
			e.Version, e.Prev = old.Version+1, format.EntryHash(ob)
			signers = append(signers, userKeys[user])
		}
		eb, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		h := format.EntryHash(eb)
		se := format.SignedEntry{Entry: eb}
		for _, k := range signers {
			se.Signatures = append(se.Signatures, format.SignEntry(k, h))
		}
		format.SortSignatures(se.Signatures)
		seb, err := se.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		req := &api.UpdateRequest{UserID: user, SignedEntry: seb, Profile: pb, Opening: opening[:]}
		if e.Version == 1 {
			sig := format.SignRegistration(keys.Registrar, h)
			req.RegistrarSignature = append(sig.KeyID[:], sig.Sig[:]...)
		}
		if _, err := srv.Submit(req); err != nil {
			t.Fatal(err)
		}
		userKeys[user], entries[user] = newKey, e
	}
	for epoch := range 4 {
		for u := range 6 {
			if (u+epoch)%3 == 0 {
				continue
			}
			submit(fmt.Sprintf("user%d@example.com", u), key(2000+10*epoch+u))
		}
		if _, err := srv.CutEpoch(); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ks, err := checkpoint.NewKeySigner(keys.Verifiers[0])
	if err != nil {
		t.Fatal(err)
	}
	v, err := Open(context.Background(), Config{
		Realm: srv.Config(), Dir: t.TempDir(), Signer: ks, Name: clienttest.VerifierName(0),
		FeedURL: hs.URL, RatifyURL: hs.URL, PollInterval: 1 << 40, RetryBackoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx, nil) }()
	cfg := srv.Config()
	logV, err := checkpoint.NewVerifier(cfg.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := checkpoint.NewCosignatureVerifier(cfg.Verifiers[0])
	if err != nil {
		t.Fatal(err)
	}
	for n := uint64(0); n < srv.Epochs(); {
		// Wait until the server's note of epoch n carries our cosignature.
		if _, err := checkpoint.Open(srv.Note(n), cfg.Realm, logV, []*checkpoint.CosignatureVerifier{cv}, 1); err == nil {
			n++
			continue
		}
		if h := v.Halted(); h != nil {
			t.Fatalf("halted: %v", h)
		}
		waitABit(t)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v.Next() != srv.Epochs() {
		t.Fatalf("Next = %d, want %d", v.Next(), srv.Epochs())
	}
}

// detReader is a deterministic byte stream: SHA-256 in counter mode.
type detReader struct {
	seed [32]byte
	ctr  uint64
	buf  []byte
}

func newDetReader(seed [32]byte) *detReader { return &detReader{seed: seed} }

func (r *detReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		b := sha256.Sum256(fmt.Appendf(r.seed[:], "%d", r.ctr))
		r.ctr++
		r.buf = append(r.buf, b[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
