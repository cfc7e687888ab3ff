// Package e2e is Conifer's end-to-end test: the real functions (package
// functions, served by the Functions Framework on a free port, configured
// through the environment exactly as in a deployment), the official Spanner
// and Pub/Sub emulators, the KMS emulator, and a real OpenID provider
// (zitadel/oidc) on localhost; the test plays the app backend, the users,
// a verifier (replaying every epoch with the statemachine before it
// co-signs) and a client (checking every answer with its own verifier and
// with package client).
package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"cloud.google.com/go/pubsub/v2"
	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"google.golang.org/api/option"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/client"
	"github.com/conifer-kt/conifer/format"
	_ "github.com/conifer-kt/conifer/functions" // registers the entry points
	"github.com/conifer-kt/conifer/functions/internal/kmssign"
	"github.com/conifer-kt/conifer/functions/internal/spanstore/spantest"
	"github.com/conifer-kt/conifer/realm"
)

const e2eRealm = "e2e.example/conifer"

// deployment is the running system as the test sees it.
type deployment struct {
	t       *testing.T
	rc      *realm.Config
	keys    *keys
	api     *httpClient
	idp     *provider
	replica *replica
	bundles *bundleSink
}

// deploy provisions everything a real deployment has (database schema,
// KMS keys, sealed VRF seed, topic and subscription, realm config) on the
// emulators, sets the functions' environment and starts the Functions
// Framework on a free port. It can run once per test binary (the
// framework's server cannot be stopped; it ends with the binary).
func deploy(t *testing.T) *deployment {
	ctx := context.Background()
	spannerEmu, pubsubEmu, kmsEmu := spantest.Spanner(t), spantest.PubSub(t), spantest.KMS(t)
	db := spantest.NewDatabase(t)

	// KMS: the checkpoint signing key and the VRF envelope key.
	kc, err := kms.NewKeyManagementClient(ctx, kmsEmu.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	ring, err := kc.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/e2e/locations/global", KeyRingId: spantest.Unique("ring")})
	if err != nil {
		t.Fatal(err)
	}
	signing, err := kc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring.Name, CryptoKeyId: "checkpoint-signing",
		CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN,
			VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_ED25519}}})
	if err != nil {
		t.Fatal(err)
	}
	signingVersion := signing.Name + "/cryptoKeyVersions/1"
	envelope, err := kc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring.Name, CryptoKeyId: "vrf-secret-envelope",
		CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}})
	if err != nil {
		t.Fatal(err)
	}
	pk, err := kc.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: signingVersion})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(pk.Pem))
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := checkpoint.VerifierKey(e2eRealm, checkpoint.AlgEd25519, pub.(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}

	k := newKeys(t, e2eRealm, 2)
	idp := startProvider(t,
		providerUser{"bob", "pw-bob", "bob@example.com", true},
		providerUser{"dave", "pw-dave", "dave@example.com", false})
	rc := k.realmConfig(e2eRealm, logKey, 1, []realm.OIDCProvider{{Issuer: idp.issuer, Audiences: []string{appClient}}})
	rcJSON, err := json.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	vrfSeed := sha256.Sum256([]byte("conifer/e2e/vrf/" + e2eRealm)) // newKeys' seed
	sealed, err := kmssign.SealVRFSeed(ctx, kc, envelope.Name, e2eRealm, vrfSeed[:])
	if err != nil {
		t.Fatal(err)
	}

	topic, err := pubsubEmu.CreateTopic(ctx, spantest.Unique("epochs"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := pubsubEmu.CreateSubscription(ctx, spantest.Unique("verifier"), topic, true)
	if err != nil {
		t.Fatal(err)
	}

	env := map[string]string{
		"CONIFER_REALM_CONFIG":          string(rcJSON),
		"CONIFER_SPANNER_DATABASE":      db,
		"SPANNER_EMULATOR_HOST":         spannerEmu.Host,
		"CONIFER_KMS_ENDPOINT":          kmsEmu.Addr(),
		"CONIFER_KMS_VRF_KEY":           envelope.Name,
		"CONIFER_VRF_SECRET_CIPHERTEXT": base64.StdEncoding.EncodeToString(sealed),
		"CONIFER_KMS_SIGNING_KEY":       signingVersion,
		"CONIFER_PUBSUB_TOPIC":          topic,
		"PUBSUB_EMULATOR_HOST":          pubsubEmu.Host,
		"CONIFER_UPDATE_RATE":           "0.001",
		"CONIFER_UPDATE_BURST":          "8",
		"CONIFER_WAIT_TIMEOUT":          "30s",
		"CONIFER_WAIT_POLL":             "20ms",
		"CONIFER_FEED_CHUNK_BYTES":      "65536",
		"CONIFER_LOG_LEVEL":             "warn",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("FUNCTION_TARGET", "")
	os.Unsetenv("FUNCTION_TARGET")

	port := freePort(t)
	go funcframework.StartHostPort("127.0.0.1", port)
	base := "http://127.0.0.1:" + port
	waitServing(t, base)

	rep, err := newReplica(rc)
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{t: t, rc: rc, keys: k, idp: idp, replica: rep,
		api: &httpClient{t: t, base: base, hc: &http.Client{Timeout: time.Minute}}}
	d.bundles = receiveBundles(t, pubsubEmu.ClientOptions(), pubsubEmu.Project, sub)
	return d
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func waitServing(t *testing.T, base string) {
	for range 200 {
		resp, err := http.Get(base + "/Checkpoint?realm=1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("the functions never started serving")
}

// bundleSink collects the epoch bundles published to Pub/Sub.
type bundleSink struct {
	mu     sync.Mutex
	chunks map[uint64][]format.BundleChunk
	order  []uint64 // epochs in the order their last chunk arrived
	err    error
}

func receiveBundles(t *testing.T, opts []option.ClientOption, project, sub string) *bundleSink {
	ctx, cancel := context.WithCancel(context.Background())
	c, err := pubsub.NewClient(ctx, project, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s := &bundleSink{chunks: map[uint64][]format.BundleChunk{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := c.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			ch, err := format.ParseBundleChunk(m.Data)
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				s.err = fmt.Errorf("a published message is not a bundle chunk: %w", err)
				return
			}
			s.chunks[ch.Epoch] = append(s.chunks[ch.Epoch], *ch)
			if len(s.chunks[ch.Epoch]) == int(ch.Parts) {
				s.order = append(s.order, ch.Epoch)
			}
		})
		if err != nil && ctx.Err() == nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	return s
}

// bundle returns epoch n's bundle as received from Pub/Sub, waiting for it.
func (s *bundleSink) bundle(t *testing.T, n uint64) *format.Bundle {
	t.Helper()
	for range 1000 {
		s.mu.Lock()
		chunks, err := s.chunks[n], s.err
		s.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) > 0 && len(chunks) >= int(chunks[0].Parts) {
			b, err := format.JoinBundle(chunks)
			if err != nil {
				t.Fatalf("epoch %d from Pub/Sub: %v", n, err)
			}
			return b
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("epoch %d's bundle never arrived on Pub/Sub", n)
	return nil
}

// runEpoch calls the Epoch function until it commits a new epoch (the
// scheduler's job), then plays the verifier: takes the bundle from the
// Feed function, checks it is the one Pub/Sub delivered, replays it and
// co-signs it with every verifier key.
func (d *deployment) runEpoch(ctx context.Context) uint64 {
	t := d.t
	t.Helper()
	want := d.replica.next
	for range 2000 {
		r := d.api.call(ctx, "POST", "/Epoch", nil)
		if r.status != http.StatusOK {
			t.Fatalf("Epoch: %d %s", r.status, r.body)
		}
		var res map[string]any
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatalf("Epoch answer %s: %v", r.body, err)
		}
		if d.feedHas(ctx, want) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b := d.feed(ctx, want)
	if got := d.bundles.bundle(t, want); !bytes.Equal(mustMarshal(t, got), mustMarshal(t, b)) {
		t.Fatalf("epoch %d: the Pub/Sub bundle differs from the feed's", want)
	}
	if err := d.replica.apply(ctx, b); err != nil {
		t.Fatalf("verifier: %v", err)
	}
	for _, c := range d.keys.cosigners {
		line, err := cosign(c, b)
		if err != nil {
			t.Fatal(err)
		}
		var rr api.RatifyResponse
		d.api.ok(ctx, "POST", "/Ratify", &api.RatifyRequest{Epoch: want, Signature: line}, &rr)
		// Idempotent: the same line again changes nothing.
		var again api.RatifyResponse
		d.api.ok(ctx, "POST", "/Ratify", &api.RatifyRequest{Epoch: want, Signature: line}, &again)
		if again.Cosigners != rr.Cosigners {
			t.Fatalf("ratify twice: %d then %d co-signers", rr.Cosigners, again.Cosigners)
		}
	}
	return want
}

func mustMarshal(t *testing.T, b *format.Bundle) []byte {
	enc, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func (d *deployment) feedHas(ctx context.Context, n uint64) bool {
	return d.api.call(ctx, "GET", fmt.Sprintf("/Feed?epoch=%d", n), nil).status == http.StatusOK
}

// feed fetches every part of epoch n's bundle from the Feed function.
func (d *deployment) feed(ctx context.Context, n uint64) *format.Bundle {
	t := d.t
	var chunks []format.BundleChunk
	for part := 0; ; part++ {
		var fr api.FeedResponse
		d.api.ok(ctx, "GET", fmt.Sprintf("/Feed?epoch=%d&part=%d", n, part), nil, &fr)
		c, err := format.ParseBundleChunk(fr.Chunk)
		if err != nil {
			t.Fatal(err)
		}
		if fr.Epoch != n || c.Epoch != n || fr.Part != uint32(part) || c.Part != fr.Part || c.Parts != fr.Parts {
			t.Fatalf("feed part %d of epoch %d: %+v", part, n, fr)
		}
		chunks = append(chunks, *c)
		if part+1 == int(fr.Parts) {
			break
		}
	}
	b, err := format.JoinBundle(chunks)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lookup fetches and checks a lookup with both verifiers (the test's own
// and package client's).
func (d *deployment) lookup(ctx context.Context, userID, query string) (*api.LookupProof, *verified) {
	d.t.Helper()
	var p api.LookupProof
	d.api.ok(ctx, "GET", "/Lookup?user="+urlQuery(userID)+query, nil, &p)
	return &p, d.check(userID, &p)
}

func (d *deployment) check(userID string, p *api.LookupProof) *verified {
	d.t.Helper()
	v, err := verifyLookup(d.rc, userID, p, d.rc.Quorum)
	if err != nil {
		d.t.Fatalf("lookup of %s: %v", userID, err)
	}
	if _, err := client.VerifyLookup(d.rc, userID, p, time.Now()); err != nil {
		d.t.Fatalf("lookup of %s: package client refuses it: %v", userID, err)
	}
	return v
}

func urlQuery(s string) string { return strings.ReplaceAll(s, "@", "%40") }

// register sends a user's registration (with a registrar signature).
func (d *deployment) register(ctx context.Context, u *user) *api.UpdateResponse {
	d.t.Helper()
	p := u.next(d.t, e2eRealm, false).withRegistrar(d.keys.registrar)
	var resp api.UpdateResponse
	d.api.ok(ctx, "POST", "/Update", p.req, &resp)
	u.applied(p)
	return &resp
}

func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	d := deploy(t)
	vk := d.keys.vrf

	// Genesis.
	if n := d.runEpoch(ctx); n != 0 {
		t.Fatalf("first epoch is %d", n)
	}

	// alice registers through her app backend (registrar signature).
	alice := newUser(d.rc, vk, "alice@example.com")
	receipt := d.register(ctx, alice).Receipt
	if !bytes.Equal(receipt.Index, alice.index[:]) || receipt.Version != 1 {
		t.Fatalf("receipt %+v", receipt)
	}

	// bob registers with an ID token from the real provider, bound to his
	// entry by its nonce.
	bob := newUser(d.rc, vk, "bob@example.com")
	bp := bob.next(t, e2eRealm, false)
	tok, err := d.idp.idToken(ctx, appClient, "bob", "pw-bob", format.OIDCNonce(bp.hash))
	if err != nil {
		t.Fatal(err)
	}
	bp.req.IDToken = tok
	d.api.ok(ctx, "POST", "/Update", bp.req, nil)
	bob.applied(bp)

	e1 := d.runEpoch(ctx)
	_, va := d.lookup(ctx, alice.id, "")
	_, vb := d.lookup(ctx, bob.id, "")
	for _, c := range []struct {
		v *verified
		u *user
	}{{va, alice}, {vb, bob}} {
		if !c.v.present || c.v.entry.Version != 1 || c.v.epoch != e1 {
			t.Fatalf("%s: %+v", c.u.id, c.v)
		}
		if key, _ := c.v.profile.Get("pgp"); string(key) != "pgp key 1 of "+c.u.id {
			t.Fatalf("%s's key is %q", c.u.id, key)
		}
	}
	if out := d.replica.applied[e1]; len(out.Applied) != 2 || len(out.Rejected) != 0 {
		t.Fatalf("epoch %d: %d applied, %d rejected", e1, len(out.Applied), len(out.Rejected))
	}

	// An unknown user: a verified absence proof.
	if _, v := d.lookup(ctx, "nobody@example.com", ""); v.present {
		t.Fatal("nobody is present")
	}
	d.api.fail(ctx, "GET", "/History?user=nobody%40example.com", nil, 404, "not_found")

	// alice rotates her key with her own device key and waits for the
	// epoch: the scheduler and the verifier run meanwhile.
	up := alice.next(t, e2eRealm, false)
	up.req.Wait = true
	waitDone := make(chan result, 1)
	go func() { waitDone <- d.api.callNoFatal(ctx, "POST", "/Update", up.req) }()
	d.runEpoch(ctx)
	wr := <-waitDone
	if wr.status != 200 {
		t.Fatalf("update with wait: %d %s", wr.status, wr.body)
	}
	var waited api.UpdateResponse
	if err := json.Unmarshal(wr.body, &waited); err != nil {
		t.Fatal(err)
	}
	alice.applied(up)
	if waited.Proof == nil {
		t.Fatal("wait returned no proof")
	}
	vw := d.check(alice.id, waited.Proof)
	if !vw.present || vw.entry.Version != 2 {
		t.Fatalf("waited proof: %+v", vw)
	}

	// History: both versions, chained to the lookup.
	var h api.HistoryResponse
	d.api.ok(ctx, "GET", "/History?user=alice%40example.com", nil, &h)
	if v, err := verifyHistory(d.rc, alice.id, &h, d.rc.Quorum); err != nil || v.entry.Version != 2 {
		t.Fatalf("history: %v", err)
	}
	if _, err := client.VerifyHistory(d.rc, alice.id, &h, time.Now()); err != nil {
		t.Fatalf("package client refuses the history: %v", err)
	}

	// Error cases.
	t.Run("errors", func(t *testing.T) { d.errorCases(ctx, t, alice, up) })

	// Erasure: carol registers, then tombstones; the old version's profile
	// is gone, the tombstone is proven.
	carol := newUser(d.rc, vk, "carol@example.com")
	d.register(ctx, carol)
	eCarol := d.runEpoch(ctx)
	tomb := carol.next(t, e2eRealm, true)
	d.api.ok(ctx, "POST", "/Update", tomb.req, nil)
	carol.applied(tomb)
	eTomb := d.runEpoch(ctx)
	_, vc := d.lookup(ctx, carol.id, "")
	if !vc.present || !vc.entry.Tombstone || vc.profile != nil {
		t.Fatalf("carol after erasure: %+v", vc)
	}
	d.api.fail(ctx, "GET", fmt.Sprintf("/Lookup?user=carol%%40example.com&epoch=%d", eCarol), nil, 410, "erased")

	// Checkpoints: every pair of epochs is consistent, every head is in
	// the newest log.
	var newest []byte
	d.api.ok(ctx, "GET", "/Checkpoint", nil, &newest)
	cp := openCheckpoint(t, d.rc, newest)
	if cp.Size != eTomb+1 {
		t.Fatalf("newest checkpoint size %d, want %d", cp.Size, eTomb+1)
	}
	for from := uint64(0); from <= eTomb; from++ {
		var hr api.HeadResponse
		d.api.ok(ctx, "GET", fmt.Sprintf("/Checkpoint?epoch=%d", from), nil, &hr)
		if hr.Size != cp.Size || !bytes.Equal(hr.Head, d.replica.heads[from]) {
			t.Fatalf("head %d: size %d", from, hr.Size)
		}
		if err := checkpoint.VerifyInclusion(checkpoint.LeafHash(hr.Head), from, hr.Size, to32(t, hr.Proof), openCheckpoint(t, d.rc, hr.Checkpoint).Hash); err != nil {
			t.Fatalf("head %d: %v", from, err)
		}
		var own api.HeadResponse
		d.api.ok(ctx, "GET", fmt.Sprintf("/Checkpoint?epoch=%d&size=%d", from, from+1), nil, &own)
		old := openCheckpoint(t, d.rc, own.Checkpoint)
		var cr api.ConsistencyResponse
		d.api.ok(ctx, "GET", fmt.Sprintf("/Checkpoint?from=%d&to=%d", from+1, cp.Size), nil, &cr)
		if err := checkpoint.VerifyConsistency(from+1, cp.Size, to32(t, cr.Proof), old.Hash, cp.Hash); err != nil {
			t.Fatalf("consistency %d→%d: %v", from+1, cp.Size, err)
		}
	}
	d.api.fail(ctx, "GET", fmt.Sprintf("/Checkpoint?from=1&to=%d", cp.Size+1), nil, 404, "not_found")

	// Pub/Sub delivered every epoch, in order.
	d.bundles.mu.Lock()
	order := slices.Clone(d.bundles.order)
	d.bundles.mu.Unlock()
	for i, n := range order {
		if n != uint64(i) {
			t.Fatalf("Pub/Sub delivered epochs %v", order)
		}
	}
	if uint64(len(order)) != eTomb+1 {
		t.Fatalf("Pub/Sub delivered %d epochs, want %d", len(order), eTomb+1)
	}
	applied, rejected := 0, 0
	for _, out := range d.replica.applied {
		applied += len(out.Applied)
		rejected += len(out.Rejected)
	}
	t.Logf("%d epochs replayed, co-signed by %d verifiers and delivered in order over Pub/Sub; %d updates applied, %d rejected by the epochs",
		len(order), len(d.keys.cosigners), applied, rejected)
}

// errorCases sends the requests a keyserver must refuse.
func (d *deployment) errorCases(ctx context.Context, t *testing.T, alice *user, applied *pending) {
	c := &httpClient{t: t, base: d.api.base, hc: d.api.hc}
	// Unauthorised: signed by a key alice's policy does not name.
	forged := alice.next(t, e2eRealm, false, key("mallory"))
	c.fail(ctx, "POST", "/Update", forged.req, 403, "quorum_not_met")
	// Stale: the applied update again.
	c.fail(ctx, "POST", "/Update", applied.req, 409, "stale_version")
	// Malformed.
	c.fail(ctx, "POST", "/Update", []byte(`{"user_id":"alice@example.com","signed_entry":"AAAA"}`), 400, "malformed")
	c.fail(ctx, "POST", "/Update", []byte(`{"user_id":`), 400, "malformed")
	c.fail(ctx, "GET", "/Lookup?user=a&epoch=x", nil, 400, "malformed")
	// Oversized.
	c.fail(ctx, "POST", "/Update", bytes.Repeat([]byte("x"), api.MaxRequestBytes+1), 413, "too_large")
	// Wrong method.
	c.fail(ctx, "DELETE", "/Lookup?user=a", nil, 405, "method_not_allowed")

	// Bad ID tokens, all from the real provider through the real flow.
	dave := newUser(d.rc, d.keys.vrf, "dave@example.com")
	dp := dave.next(t, e2eRealm, false)
	for _, tc := range []struct {
		name, client, user, pw, userID, nonce string
		p                                     *pending
	}{
		{"wrong nonce", appClient, "bob", "pw-bob", "bob@example.com", format.OIDCNonce(sha256.Sum256([]byte("another entry"))), nil},
		{"wrong audience", otherClient, "bob", "pw-bob", "bob@example.com", "", nil},
		{"unverified email", appClient, "dave", "pw-dave", "dave@example.com", "", dp},
	} {
		p := tc.p
		if p == nil {
			// A fresh registration for bob's email (at bob's index): the
			// token fails before the log is consulted.
			u := newUser(d.rc, d.keys.vrf, tc.userID)
			p = u.next(t, e2eRealm, false)
		}
		nonce := tc.nonce
		if nonce == "" {
			nonce = format.OIDCNonce(p.hash)
		}
		tok, err := d.idp.idToken(ctx, tc.client, tc.user, tc.pw, nonce)
		if err != nil {
			t.Fatal(err)
		}
		p.req.IDToken = tok
		e := c.fail(ctx, "POST", "/Update", p.req, 403, "id_token_rejected")
		if strings.Contains(e.Message, tc.userID) || strings.Contains(e.Message, tok) {
			t.Fatalf("%s: the error quotes the token or email: %s", tc.name, e.Message)
		}
	}

	// Rate limit: erin's bucket (8 tokens) runs dry.
	erin := newUser(d.rc, d.keys.vrf, "erin@example.com")
	bad := erin.next(t, e2eRealm, false) // no registrar signature: 403 each time
	var last *apiErrorResult
	for i := 0; i < 9; i++ {
		r := c.call(ctx, "POST", "/Update", bad.req)
		last = &apiErrorResult{r.status, r.err}
	}
	if last.status != 429 || last.err.Code != "rate_limited" || last.err.RetryAfterSeconds < 1 {
		t.Fatalf("9th update of erin: %d %+v", last.status, last.err)
	}
}

type apiErrorResult struct {
	status int
	err    *api.Error
}

func openCheckpoint(t *testing.T, rc *realm.Config, note []byte) checkpoint.Checkpoint {
	t.Helper()
	logV, err := checkpoint.NewVerifier(rc.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.Open(note, rc.Realm, logV, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return v.Checkpoint
}

func to32(t *testing.T, p [][]byte) [][32]byte {
	out := make([][32]byte, len(p))
	for i, h := range p {
		if len(h) != 32 {
			t.Fatal("proof hash length")
		}
		out[i] = [32]byte(h)
	}
	return out
}
