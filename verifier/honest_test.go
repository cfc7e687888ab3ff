package verifier

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

// An honest keyserver made of the pure packages: the real statemachine on
// a memory tree, the real epoch log and a real log signing key. Tests
// forge its bundles to play a lying keyserver that holds its signing key.

const (
	testRealm    = "example.com/conifer"
	verifierName = "verifier.test/v1"
	registrarKey = 1000
	logKeyIndex  = 1001
	verifierKey  = 1002
	attackerKey  = 1003
)

var (
	keyMu    sync.Mutex
	keyCache = map[int]ed25519.PrivateKey{}
)

// key returns test key i: seed SHA-256("conifer/verifier-test/key/<i>").
func key(i int) ed25519.PrivateKey {
	keyMu.Lock()
	defer keyMu.Unlock()
	if k, ok := keyCache[i]; ok {
		return k
	}
	seed := sha256.Sum256(fmt.Appendf(nil, "conifer/verifier-test/key/%d", i))
	k := ed25519.NewKeyFromSeed(seed[:])
	keyCache[i] = k
	return k
}

func pub(i int) ed25519.PublicKey { return key(i).Public().(ed25519.PublicKey) }

// indexOf is user i's tree index.
func indexOf(i int) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "conifer/verifier-test/index/%d", i))
}

// memEntries is statemachine.Entries in memory, versioned by epoch.
type memEntries struct {
	mu    sync.Mutex
	users map[[32]byte][]memVersion
}

type memVersion struct {
	epoch  uint64
	latest statemachine.Latest
}

func (m *memEntries) Latest(ctx context.Context, version uint64, indexes [][32]byte) (map[[32]byte]statemachine.Latest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[[32]byte]statemachine.Latest{}
	for _, idx := range indexes {
		vs := m.users[idx]
		for i := len(vs) - 1; i >= 0; i-- {
			if vs[i].epoch <= version {
				out[idx] = vs[i].latest
				break
			}
		}
	}
	return out, nil
}

func (m *memEntries) apply(epoch uint64, applied []statemachine.Applied) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users == nil {
		m.users = map[[32]byte][]memVersion{}
	}
	for _, a := range applied {
		vs := m.users[a.Index]
		l := statemachine.Latest{LeafRecord: a.LeafRecord, SignedEntry: a.SignedEntry}
		if len(vs) > 0 && vs[len(vs)-1].epoch == epoch {
			vs[len(vs)-1].latest = l
		} else {
			vs = append(vs, memVersion{epoch, l})
		}
		m.users[a.Index] = vs
	}
}

// testUser is what the honest server's clients know of a user.
type testUser struct {
	key     int // the key in the user's current policy
	version uint64
	hash    [32]byte // EntryHash of the newest entry
}

// forge makes the server lie about one epoch.
type forge struct {
	// head changes the head before it is logged and signed, rawHead its
	// encoding.
	head    func(h *format.EpochHead)
	rawHead func(b []byte) []byte
	// records changes the records published, after the head was made.
	records func(recs [][]byte) [][]byte
	// note replaces the signed checkpoint; it gets the head as logged.
	note func(s *honest, head []byte) []byte
	// bundle changes the encoded bundle.
	bundle func(b []byte) []byte
	// skipLog keeps the forged head out of the server's own log (for
	// equivocation: the second bundle is shown to this verifier only).
	skipLog bool
}

// honest is the honest keyserver.
type honest struct {
	t       testing.TB
	realm   *realm.Config
	rules   statemachine.Rules
	signer  *checkpoint.LogSigner
	store   *tree.MemoryStore
	tree    *tree.Tree
	entries *memEntries
	log     *checkpoint.MemoryLog
	time    uint64

	mu      sync.Mutex
	heads   [][]byte
	notes   [][]byte
	bundles [][]byte
	users   map[int]*testUser

	// feed serving options
	chunkSize  int
	feedFails  int             // answer 503 to this many feed requests first
	feedLimit  int64           // serve only epochs below this (-1: all)
	feedServed map[uint64]bool // epochs whose part 0 the feed served
	feedHits   int

	// ratify state
	cosigVerifier *checkpoint.CosignatureVerifier
	ratified      map[uint64]string
	ratifyFails   int // answer 503 to this many ratify requests first
	ratifyCh      chan uint64
}

func newHonest(t testing.TB) *honest {
	t.Helper()
	ks, err := checkpoint.NewKeySigner(key(logKeyIndex))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := checkpoint.NewLogSigner(testRealm, ks)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := checkpoint.VerifierKey(verifierName, checkpoint.AlgCosignatureV1, pub(verifierKey))
	if err != nil {
		t.Fatal(err)
	}
	cv, err := checkpoint.NewCosignatureVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	vrfKey := sha256.Sum256([]byte("not a real VRF key"))
	cfg := &realm.Config{
		Realm:            testRealm,
		VRFPublicKey:     vrfKey[:],
		LogKey:           signer.VerifierKey(),
		Verifiers:        []string{vkey},
		Quorum:           1,
		MinEpochInterval: realm.Duration{Duration: time.Second},
		MaxEpochInterval: realm.Duration{Duration: time.Minute},
		MaxHeadAge:       realm.Duration{Duration: 10 * time.Minute},
		Registration: realm.Registration{
			Registrars: [][]byte{pub(registrarKey)},
			OIDC:       []realm.OIDCProvider{{Issuer: "https://accounts.example.com", Audiences: []string{"app"}}},
		},
	}
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = realm.Parse(b); err != nil {
		t.Fatal(err)
	}
	rules, err := statemachine.RulesFromRealm(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &honest{
		t: t, realm: cfg, rules: rules, signer: signer,
		store: tree.NewMemoryStore(), entries: &memEntries{}, log: checkpoint.NewMemoryLog(),
		time: 1767225600000, users: map[int]*testUser{}, chunkSize: 300, feedLimit: -1, feedServed: map[uint64]bool{},
		cosigVerifier: cv, ratified: map[uint64]string{}, ratifyCh: make(chan uint64, 1<<16),
	}
	s.tree = tree.New(s.store)
	s.cut() // the genesis
	return s
}

// entry builds user i's next entry (version 1: a registration) with
// policy 1-of-{newKey}, signed by signers, and returns the encoded log
// record. It updates what the server's clients believe the user's state
// is (as if the record will be applied).
func (s *honest) entry(i, newKey int, signers []int, tombstone bool) []byte {
	return s.makeEntry(i, newKey, signers, tombstone, true)
}

// rogue returns an update of user i to key newKey signed by signers only,
// leaving what the clients believe unchanged (the statemachine will
// reject it unless signers include the user's key).
func (s *honest) rogue(i, newKey int, signers ...int) []byte {
	return s.makeEntry(i, newKey, signers, false, false)
}

func (s *honest) makeEntry(i, newKey int, signers []int, tombstone, track bool) []byte {
	s.t.Helper()
	s.mu.Lock()
	var cur testUser
	if u := s.users[i]; u != nil {
		cur = *u
	}
	s.mu.Unlock()
	p := &format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{pub(newKey)}}
	e := &format.Entry{Realm: testRealm, Index: indexOf(i), Version: cur.version + 1, Prev: cur.hash, Policy: *p, Tombstone: tombstone}
	if !tombstone {
		e.Commitment = sha256.Sum256(fmt.Appendf(nil, "commitment %d %d", i, e.Version))
	}
	eb, err := e.Marshal()
	if err != nil {
		s.t.Fatal(err)
	}
	h := format.EntryHash(eb)
	se := format.SignedEntry{Entry: eb}
	for _, k := range signers {
		se.Signatures = append(se.Signatures, format.SignEntry(key(k), h))
	}
	format.SortSignatures(se.Signatures)
	rec := format.LogRecord{SignedEntry: se}
	if e.Version == 1 {
		rec.Registration = &format.Registration{Kind: format.RegistrationRegistrar, Registrar: format.SignRegistration(key(registrarKey), h)}
	}
	b, err := rec.Marshal()
	if err != nil {
		s.t.Fatal(err)
	}
	if track {
		// Callers building records of one user concurrently would race;
		// concurrent callers build records of distinct users.
		s.mu.Lock()
		s.users[i] = &testUser{key: newKey, version: e.Version, hash: h}
		s.mu.Unlock()
	}
	return b
}

// register returns user i's registration with key k.
func (s *honest) register(i, k int) []byte { return s.entry(i, k, []int{k}, false) }

// update returns user i's next entry, moving to key newKey, signed by the
// current key and the new one.
func (s *honest) update(i, newKey int) []byte {
	s.mu.Lock()
	cur := s.users[i].key
	s.mu.Unlock()
	return s.entry(i, newKey, []int{cur, newKey}, false)
}

// cut makes the next epoch honestly.
func (s *honest) cut(records ...[]byte) uint64 { return s.cutForged(nil, records...) }

// cutForged makes the next epoch, lying as f says (nil: honestly). A
// forged epoch is not committed to the server's tree: it is always the
// last one a test makes.
func (s *honest) cutForged(f *forge, records ...[]byte) uint64 {
	s.t.Helper()
	ctx := context.Background()
	s.mu.Lock()
	n := uint64(len(s.heads))
	s.mu.Unlock()
	s.time += 1000
	head := format.EpochHead{Realm: testRealm, Epoch: n, Time: s.time, TreeRoot: tree.Empty, UpdateCount: 0, UpdatesRoot: format.UpdatesRoot(nil)}
	var out *statemachine.Output
	if n > 0 {
		var err error
		out, err = statemachine.Apply(ctx, s.tree, s.entries, statemachine.Input{Rules: s.rules, Epoch: n, Time: s.time, Records: records})
		if err != nil {
			s.t.Fatal(err)
		}
		head = out.Head
	}
	if f != nil && f.head != nil {
		f.head(&head)
	}
	hb, err := head.Marshal()
	if err != nil {
		s.t.Fatal(err)
	}
	if f != nil && f.rawHead != nil {
		hb = f.rawHead(hb)
	}
	published := records
	if f != nil && f.records != nil {
		published = f.records(slices.Clone(records))
	}
	var signed []byte
	switch {
	case f != nil && f.note != nil:
		signed = f.note(s, hb)
	case f != nil && f.skipLog:
		root := s.rootWith(append(slices.Clone(s.heads), hb))
		signed = s.sign(checkpoint.Checkpoint{Origin: testRealm, Size: n + 1, Hash: root})
	default:
		root, err := s.log.Append(checkpoint.LeafHash(hb))
		if err != nil {
			s.t.Fatal(err)
		}
		signed = s.sign(checkpoint.Checkpoint{Origin: testRealm, Size: n + 1, Hash: root})
	}
	bundle := encodeBundle(hb, signed, published)
	if f != nil && f.bundle != nil {
		bundle = f.bundle(bundle)
	}
	if f == nil {
		if n > 0 {
			if err := s.store.Commit(ctx, n, out.Head.TreeRoot); err != nil {
				s.t.Fatal(err)
			}
			s.entries.apply(n, out.Applied)
		}
		// An honest bundle is one format accepts as it is.
		if _, err := format.ParseBundle(bundle); err != nil {
			s.t.Fatalf("honest bundle: %v", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f != nil && f.skipLog {
		// Shown to the verifier only: the server's own epoch stays.
		return n
	}
	s.heads = append(s.heads, hb)
	s.notes = append(s.notes, signed)
	s.bundles = append(s.bundles, bundle)
	return n
}

// sign signs a checkpoint with the log key.
func (s *honest) sign(c checkpoint.Checkpoint) []byte {
	s.t.Helper()
	b, err := checkpoint.Sign(c, s.signer)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// rootWith returns the root of a log of heads.
func (s *honest) rootWith(heads [][]byte) [32]byte {
	l := checkpoint.NewMemoryLog()
	var root [32]byte
	for _, h := range heads {
		var err error
		if root, err = l.Append(checkpoint.LeafHash(h)); err != nil {
			s.t.Fatal(err)
		}
	}
	return root
}

// bundle returns the encoded bundle of epoch n.
func (s *honest) bundle(n uint64) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bundles[n]
}

func (s *honest) epochs() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.bundles))
}

// text returns the checkpoint text of epoch n.
func (s *honest) text(n uint64) string {
	s.mu.Lock()
	nb := s.notes[n]
	s.mu.Unlock()
	nt, err := note.Open(nb, note.VerifierList(s.signer.Verifier()))
	if err != nil {
		s.t.Fatal(err)
	}
	return nt.Text
}

// chunks returns epoch n's bundle as encoded chunks of at most size data bytes.
func (s *honest) chunks(n uint64, size int) [][]byte {
	return chunkBundle(s.t, testRealm, n, s.bundle(n), size)
}

// encodeBundle encodes a bundle's fields by the format.Bundle grammar
// without judging them (format.Bundle.Marshal refuses forged bundles).
func encodeBundle(head, cp []byte, records [][]byte) []byte {
	b := []byte{byte(len(bundleTag))}
	b = append(b, bundleTag...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(head)))
	b = append(b, head...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(cp)))
	b = append(b, cp...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(records)))
	for _, r := range records {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
	}
	return b
}

// chunkBundle cuts any bundle bytes into encoded chunks of at most size
// data bytes (format.SplitBundle refuses forged bundles).
func chunkBundle(t testing.TB, realmName string, n uint64, data []byte, size int) [][]byte {
	t.Helper()
	parts := (len(data) + size - 1) / size
	digest := bundleDigest(data)
	var out [][]byte
	for p := range parts {
		c := format.BundleChunk{Realm: realmName, Epoch: n, Part: uint32(p), Parts: uint32(parts), Digest: digest, Data: data[p*size : min((p+1)*size, len(data))]}
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// ServeHTTP serves /Feed and /Ratify as the functions do.
func (s *honest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	writeJSON := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/Feed"):
		s.mu.Lock()
		s.feedHits++
		if s.feedFails > 0 {
			s.feedFails--
			s.mu.Unlock()
			w.Header().Set("Retry-After", "1")
			writeJSON(503, &api.Error{Code: "overloaded", Message: "try later"})
			return
		}
		limit := s.feedLimit
		s.mu.Unlock()
		n, err1 := strconv.ParseUint(r.URL.Query().Get("epoch"), 10, 64)
		p, err2 := strconv.ParseUint(r.URL.Query().Get("part"), 10, 32)
		if err1 != nil || err2 != nil {
			writeJSON(400, &api.Error{Code: "malformed", Message: "bad query"})
			return
		}
		if n >= s.epochs() || limit >= 0 && n >= uint64(limit) {
			writeJSON(404, &api.Error{Code: "not_found", Message: "no such epoch"})
			return
		}
		cs := s.chunks(n, s.chunkSize)
		if p >= uint64(len(cs)) {
			writeJSON(404, &api.Error{Code: "not_found", Message: "no such part"})
			return
		}
		if p == 0 {
			s.mu.Lock()
			s.feedServed[n] = true
			s.mu.Unlock()
		}
		writeJSON(200, &api.FeedResponse{Epoch: n, Part: uint32(p), Parts: uint32(len(cs)), Chunk: cs[p]})
	case strings.HasSuffix(r.URL.Path, "/Ratify"):
		var req api.RatifyRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(400, &api.Error{Code: "malformed", Message: err.Error()})
			return
		}
		s.mu.Lock()
		if s.ratifyFails > 0 {
			s.ratifyFails--
			s.mu.Unlock()
			writeJSON(503, &api.Error{Code: "overloaded", Message: "try later"})
			return
		}
		s.mu.Unlock()
		if err := s.checkCosignature(req.Epoch, req.Signature); err != nil {
			writeJSON(400, &api.Error{Code: "bad_signature", Message: err.Error()})
			return
		}
		s.mu.Lock()
		s.ratified[req.Epoch] = req.Signature
		count := len(s.ratified)
		s.mu.Unlock()
		s.ratifyCh <- req.Epoch
		writeJSON(200, &api.RatifyResponse{Epoch: req.Epoch, Cosigners: min(count, 1)})
	default:
		writeJSON(404, &api.Error{Code: "not_found", Message: r.URL.Path})
	}
}

// checkCosignature verifies a verifier's signature line over epoch n's
// checkpoint with the checkpoint package, as the Ratify function must:
// the line must be a note signature by the realm's verifier key, and
// merging it into the keyserver's note must give a note that opens with
// a quorum of one.
func (s *honest) checkCosignature(n uint64, line string) error {
	if n >= s.epochs() {
		return fmt.Errorf("no epoch %d", n)
	}
	text := s.text(n)
	name, b64, ok := strings.Cut(strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "— "), " ")
	if !ok || name != s.cosigVerifier.Name() || !strings.HasPrefix(line, "— ") || !strings.HasSuffix(line, "\n") {
		return fmt.Errorf("not a signature line of %s: %q", s.cosigVerifier.Name(), line)
	}
	raw, err := base64Decode(b64)
	if err != nil || len(raw) != 4+checkpoint.CosignatureLen || binary.BigEndian.Uint32(raw) != s.cosigVerifier.KeyHash() {
		return fmt.Errorf("bad signature encoding")
	}
	if _, ok := s.cosigVerifier.VerifyTimestamp([]byte(text), raw[4:]); !ok {
		return fmt.Errorf("cosignature does not verify over epoch %d's checkpoint", n)
	}
	s.mu.Lock()
	nb := s.notes[n]
	s.mu.Unlock()
	merged, err := checkpoint.Merge(testRealm, s.signer.Verifier(), []*checkpoint.CosignatureVerifier{s.cosigVerifier}, nb, []byte(text+"\n"+line))
	if err != nil {
		return err
	}
	if _, err := checkpoint.Open(merged, testRealm, s.signer.Verifier(), []*checkpoint.CosignatureVerifier{s.cosigVerifier}, 1); err != nil {
		return err
	}
	return nil
}

// waitRatified waits until Ratify accepted every epoch below n.
func (s *honest) waitRatified(t testing.TB, n uint64) {
	t.Helper()
	for {
		s.mu.Lock()
		done := true
		for e := range n {
			if _, ok := s.ratified[e]; !ok {
				done = false
			}
		}
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-s.ratifyCh:
		case <-t.Context().Done():
			t.Fatal("test ended before ratification")
		}
	}
}

// openTest opens a verifier of s's realm in dir.
func openTest(t testing.TB, s *honest, dir string, mod ...func(*Config)) *Verifier {
	t.Helper()
	v, err := Open(context.Background(), testConfig(t, s, dir, mod...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func testConfig(t testing.TB, s *honest, dir string, mod ...func(*Config)) Config {
	ks, err := checkpoint.NewKeySigner(key(verifierKey))
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Realm: s.realm, Dir: dir, Signer: ks, Name: verifierName, RetryBackoff: time.Millisecond}
	for _, m := range mod {
		m(&c)
	}
	return c
}

func base64Decode(s string) ([]byte, error) {
	return base64.StdEncoding.Strict().DecodeString(s)
}

// served returns the epochs the feed served, sorted.
func (s *honest) served() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for n := range s.feedServed {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
