// Package clienttest is an honest Conifer keyserver held in memory, built
// only from the pure packages (format, tree, checkpoint, vrf) and serving
// the HTTP API of package api. It exists so that the verifying client, the
// conifer CLI and adversarial test suites can be tested against proofs made
// by the real tree, log, VRF and signing code, without cloud emulators.
//
// It is not the keyserver: the functions in functions/ are, with Spanner,
// KMS and Pub/Sub. This server applies updates with format's transition and
// signature rules and makes leaf records as the design describes, cuts an
// epoch when told to (or at once when an update waits), and has its
// verifiers co-sign every epoch immediately unless told otherwise. Tests
// that need a lying server wrap its handler or its answers.
//
// Everything is deterministic given the Keys and the clock: there is no
// randomness inside (log sequence numbers count up).
package clienttest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/vrf"
	"golang.org/x/mod/sumdb/note"
)

// Keys are the secrets of a test realm.
type Keys struct {
	// VRFSeed is the 32-byte VRF secret.
	VRFSeed []byte
	// Log is the keyserver's checkpoint signing key.
	Log ed25519.PrivateKey
	// Verifiers are the verifiers' co-signing keys.
	Verifiers []ed25519.PrivateKey
	// Registrar is the realm's one registrar (app backend) key.
	Registrar ed25519.PrivateKey
}

// NewKeys reads fresh keys for a realm with the given number of verifiers
// from rand.
func NewKeys(rand io.Reader, verifiers int) (*Keys, error) {
	seed := func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := io.ReadFull(rand, b)
		return b, err
	}
	k := &Keys{}
	var err error
	if k.VRFSeed, err = seed(); err != nil {
		return nil, err
	}
	b, err := seed()
	if err != nil {
		return nil, err
	}
	k.Log = ed25519.NewKeyFromSeed(b)
	for range verifiers {
		if b, err = seed(); err != nil {
			return nil, err
		}
		k.Verifiers = append(k.Verifiers, ed25519.NewKeyFromSeed(b))
	}
	if b, err = seed(); err != nil {
		return nil, err
	}
	k.Registrar = ed25519.NewKeyFromSeed(b)
	return k, nil
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Realm is the realm name (default "example.com/conifer").
	Realm string
	// Quorum is the realm's client quorum (default 0).
	Quorum int
	// Now is the clock for head times, receipts and co-signatures
	// (default time.Now).
	Now func() time.Time
	// MaxEpochInterval and MaxHeadAge go into the realm config (defaults
	// 1m and 10m).
	MaxEpochInterval, MaxHeadAge time.Duration
	// ManualCosign stops verifiers from co-signing each epoch when it is
	// cut; tests then call Cosign.
	ManualCosign bool
	// ManualEpochs stops an update that waits from cutting an epoch at
	// once; it then gets 504 with its receipt unless an epoch is cut.
	ManualEpochs bool
	// ChunkSize caps the encoded size of feed chunks (default
	// format.MaxChunkSize).
	ChunkSize int
	// OIDC lists the accepted ID token issuers, and CheckIDToken checks a
	// token for userID and the nonce the entry demands, returning its
	// issuer. Both nil: ID tokens are refused.
	OIDC         []realm.OIDCProvider
	CheckIDToken func(token, userID, nonce string) (issuer string, err error)
}

// Server is the honest in-memory keyserver. It is safe for concurrent use
// (one mutex serialises everything).
type Server struct {
	mu   sync.Mutex
	opts Options
	cfg  *realm.Config

	vrfKey     *vrf.PrivateKey
	logSigner  *checkpoint.LogSigner
	cosigners  []*checkpoint.Cosigner
	cosignVs   []*checkpoint.CosignatureVerifier
	registrars []ed25519.PublicKey

	store *tree.MemoryStore
	tree  *tree.Tree
	log   *checkpoint.MemoryLog

	epochs  []*epoch
	users   map[[32]byte]*user
	pending []*pendingUpdate
	heads   map[[32]byte]*format.Entry // newest entry per index, pending included
	seq     uint64
}

type epoch struct {
	head     []byte
	parsed   *format.EpochHead
	logNote  []byte // the keyserver's note only (bundles)
	note     []byte // with every co-signature so far
	cosigned map[int]bool
	records  [][]byte
}

type user struct {
	versions []*version
}

type version struct {
	epoch       uint64
	leaf        []byte
	leafHash    [32]byte
	signedEntry []byte
	entry       *format.Entry
	entryHash   [32]byte
	profile     []byte // nil once erased by a tombstone, and for tombstones
	opening     []byte
}

type pendingUpdate struct {
	index       [32]byte
	record      []byte
	signedEntry []byte
	entry       *format.Entry
	entryHash   [32]byte
	profile     []byte
	opening     []byte
}

// New creates a realm from keys and cuts its genesis epoch 0.
func New(keys *Keys, opts Options) (*Server, error) {
	if opts.Realm == "" {
		opts.Realm = "example.com/conifer"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxEpochInterval == 0 {
		opts.MaxEpochInterval = time.Minute
	}
	if opts.MaxHeadAge == 0 {
		opts.MaxHeadAge = 10 * time.Minute
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = format.MaxChunkSize
	}
	s := &Server{
		opts:  opts,
		store: tree.NewMemoryStore(),
		log:   checkpoint.NewMemoryLog(),
		users: map[[32]byte]*user{},
		heads: map[[32]byte]*format.Entry{},
	}
	s.tree = tree.New(s.store)
	var err error
	if s.vrfKey, err = vrf.NewPrivateKey(keys.VRFSeed); err != nil {
		return nil, fmt.Errorf("couldn't create server: %w", err)
	}
	ks, err := checkpoint.NewKeySigner(keys.Log)
	if err != nil {
		return nil, fmt.Errorf("couldn't create server: %w", err)
	}
	if s.logSigner, err = checkpoint.NewLogSigner(opts.Realm, ks); err != nil {
		return nil, fmt.Errorf("couldn't create server: %w", err)
	}
	cfg := &realm.Config{
		Realm:            opts.Realm,
		VRFPublicKey:     s.vrfKey.Public().Bytes(),
		LogKey:           s.logSigner.VerifierKey(),
		Quorum:           opts.Quorum,
		MinEpochInterval: realm.Duration{Duration: time.Second},
		MaxEpochInterval: realm.Duration{Duration: opts.MaxEpochInterval},
		MaxHeadAge:       realm.Duration{Duration: opts.MaxHeadAge},
		Registration:     realm.Registration{OIDC: opts.OIDC},
	}
	for i, k := range keys.Verifiers {
		vs, err := checkpoint.NewKeySigner(k)
		if err != nil {
			return nil, fmt.Errorf("couldn't create server: %w", err)
		}
		c, err := checkpoint.NewCosigner(VerifierName(i), vs, func() time.Time { return s.opts.Now() })
		if err != nil {
			return nil, fmt.Errorf("couldn't create server: %w", err)
		}
		s.cosigners = append(s.cosigners, c)
		s.cosignVs = append(s.cosignVs, c.Verifier())
		cfg.Verifiers = append(cfg.Verifiers, c.VerifierKey())
	}
	if keys.Registrar != nil {
		pub := keys.Registrar.Public().(ed25519.PublicKey)
		s.registrars = append(s.registrars, pub)
		cfg.Registration.Registrars = append(cfg.Registration.Registrars, []byte(pub))
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("couldn't create server: %w", err)
	}
	s.cfg = cfg
	if _, err := s.CutEpoch(); err != nil {
		return nil, err
	}
	return s, nil
}

// VerifierName is the co-signer name of verifier i.
func VerifierName(i int) string { return fmt.Sprintf("verifier-%d.example/v1", i) }

// Config returns a copy of the realm's public config.
func (s *Server) Config() *realm.Config {
	b, err := s.cfg.Marshal()
	if err != nil {
		panic(err)
	}
	c, err := realm.Parse(b)
	if err != nil {
		panic(err)
	}
	return c
}

// Epochs returns the number of epochs cut (the epoch log's size).
func (s *Server) Epochs() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.epochs))
}

// Pending returns the number of updates waiting for an epoch.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// CutEpoch applies every pending update in log order as the next epoch,
// signs its checkpoint, and (unless ManualCosign) has every verifier
// co-sign it. It returns the new epoch's number.
func (s *Server) CutEpoch() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cutLocked()
}

func (s *Server) cutLocked() (uint64, error) {
	ctx := context.Background()
	n := uint64(len(s.epochs))
	ep := &epoch{cosigned: map[int]bool{}}
	root := tree.Empty
	if n > 0 {
		changes := map[[32]byte]tree.Hash{}
		for _, p := range s.pending {
			u := s.users[p.index]
			if u == nil {
				u = &user{}
				s.users[p.index] = u
			}
			var prev [32]byte
			if len(u.versions) > 0 {
				prev = u.versions[len(u.versions)-1].leafHash
			}
			lr := format.LeafRecord{EntryHash: p.entryHash, Epoch: n, Prev: prev}
			lb, err := lr.Marshal()
			if err != nil {
				return 0, fmt.Errorf("couldn't cut epoch: %w", err)
			}
			v := &version{
				epoch: n, leaf: lb, leafHash: format.LeafRecordHash(lb),
				signedEntry: p.signedEntry, entry: p.entry, entryHash: p.entryHash,
				profile: p.profile, opening: p.opening,
			}
			if p.entry.Tombstone {
				// Erasure: the profiles and openings of every earlier
				// version are deleted; their commitments reveal nothing.
				for _, old := range u.versions {
					old.profile, old.opening = nil, nil
				}
			}
			u.versions = append(u.versions, v)
			changes[p.index] = tree.Hash(v.leafHash)
			ep.records = append(ep.records, p.record)
		}
		var cs []tree.Change
		for k, v := range changes {
			cs = append(cs, tree.Change{Key: tree.Key(k), Value: v})
		}
		var err error
		if root, err = s.tree.Update(ctx, n-1, cs); err != nil {
			return 0, fmt.Errorf("couldn't cut epoch: %w", err)
		}
		if err := s.store.Commit(ctx, n, root); err != nil {
			return 0, fmt.Errorf("couldn't cut epoch: %w", err)
		}
	}
	head := &format.EpochHead{
		Realm:       s.cfg.Realm,
		Epoch:       n,
		Time:        uint64(s.opts.Now().UnixMilli()),
		TreeRoot:    root,
		UpdateCount: uint64(len(ep.records)),
		UpdatesRoot: format.UpdatesRoot(ep.records),
	}
	hb, err := head.Marshal()
	if err != nil {
		return 0, fmt.Errorf("couldn't cut epoch: %w", err)
	}
	logRoot, err := s.log.Append(checkpoint.LeafHash(hb))
	if err != nil {
		return 0, fmt.Errorf("couldn't cut epoch: %w", err)
	}
	signed, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: s.cfg.Realm, Size: n + 1, Hash: logRoot}, s.logSigner)
	if err != nil {
		return 0, fmt.Errorf("couldn't cut epoch: %w", err)
	}
	ep.head, ep.parsed, ep.logNote, ep.note = hb, head, signed, signed
	s.epochs = append(s.epochs, ep)
	s.pending = nil
	if !s.opts.ManualCosign {
		for i := range s.cosigners {
			if err := s.cosignLocked(n, i); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// Cosign has verifier i co-sign epoch n's checkpoint (at the clock's time).
func (s *Server) Cosign(n uint64, i int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cosignLocked(n, i)
}

func (s *Server) cosignLocked(n uint64, i int) error {
	if n >= uint64(len(s.epochs)) || i < 0 || i >= len(s.cosigners) {
		return fmt.Errorf("couldn't cosign: no epoch %d or verifier %d", n, i)
	}
	ep := s.epochs[n]
	nt, err := note.Open(ep.logNote, note.VerifierList(s.logSigner.Verifier()))
	if err != nil {
		return fmt.Errorf("couldn't cosign: %w", err)
	}
	cosigned, err := note.Sign(&note.Note{Text: nt.Text}, s.cosigners[i])
	if err != nil {
		return fmt.Errorf("couldn't cosign: %w", err)
	}
	return s.mergeLocked(n, cosigned)
}

func (s *Server) mergeLocked(n uint64, signed []byte) error {
	ep := s.epochs[n]
	merged, err := checkpoint.Merge(s.cfg.Realm, s.logSigner.Verifier(), s.cosignVs, ep.note, signed)
	if err != nil {
		return fmt.Errorf("couldn't merge cosignature: %w", err)
	}
	v, err := checkpoint.Open(merged, s.cfg.Realm, s.logSigner.Verifier(), s.cosignVs, 0)
	if err != nil {
		return fmt.Errorf("couldn't merge cosignature: %w", err)
	}
	ep.note = merged
	clear(ep.cosigned)
	for _, c := range v.Cosignatures {
		for i, cv := range s.cosignVs {
			if cv.Name() == c.Name && cv.KeyHash() == c.KeyHash {
				ep.cosigned[i] = true
			}
		}
	}
	return nil
}

// Error is an API error with its HTTP status.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Msg) }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// index returns the VRF index and proof of a user id.
func (s *Server) index(userID string) ([32]byte, [vrf.ProofSize]byte, error) {
	alpha, err := vrf.Input(s.cfg.Realm, userID)
	if err != nil {
		return [32]byte{}, [vrf.ProofSize]byte{}, errorf(400, "bad_user", "%v", err)
	}
	beta, proof := s.vrfKey.Prove(alpha)
	return vrf.Index(beta), proof, nil
}

// Index returns the tree index of userID (tests use it to build entries by
// hand).
func (s *Server) Index(userID string) ([32]byte, error) {
	i, _, err := s.index(userID)
	return i, err
}

// Submit validates an update and appends it to the log, as the update
// function does, and with req.Wait (unless ManualEpochs) cuts an epoch and
// answers with the lookup proof. Errors are *Error.
func (s *Server) Submit(req *api.UpdateRequest) (*api.UpdateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.UserID == "" {
		return nil, errorf(400, "bad_request", "user_id is required")
	}
	index, _, err := s.index(req.UserID)
	if err != nil {
		return nil, err
	}
	se, entry, err := format.ParseSignedEntry(req.SignedEntry)
	if err != nil {
		return nil, errorf(400, "malformed", "signed_entry: %v", err)
	}
	if entry.Realm != s.cfg.Realm || entry.Index != index {
		return nil, errorf(400, "wrong_index", "entry is not for this realm and user")
	}
	hash := format.EntryHash(se.Entry)
	prev := s.heads[index]
	var prevHash [32]byte
	var want uint64 = 1
	if prev != nil {
		b, err := prev.Marshal()
		if err != nil {
			return nil, errorf(500, "internal", "%v", err)
		}
		prevHash = format.EntryHash(b)
		want = prev.Version + 1
	}
	if entry.Version != want {
		return nil, errorf(409, "stale_version", "version %d, the next is %d", entry.Version, want)
	}
	if err := format.CheckTransition(prev, prevHash, entry); err != nil {
		return nil, errorf(400, "invalid_transition", "%v", err)
	}
	if err := format.VerifyUpdateSignatures(prev, entry, hash, se.Signatures); err != nil {
		return nil, errorf(403, "unauthorized", "%v", err)
	}
	var reg *format.Registration
	switch {
	case entry.Version != 1:
		if len(req.RegistrarSignature) != 0 || req.IDToken != "" {
			return nil, errorf(400, "bad_request", "only registrations carry a registrar signature or ID token")
		}
	case len(req.RegistrarSignature) != 0:
		if len(req.RegistrarSignature) != format.KeyIDSize+ed25519.SignatureSize {
			return nil, errorf(400, "malformed", "registrar_signature must be %d bytes", format.KeyIDSize+ed25519.SignatureSize)
		}
		r := &format.Registration{Kind: format.RegistrationRegistrar}
		copy(r.Registrar.KeyID[:], req.RegistrarSignature)
		copy(r.Registrar.Sig[:], req.RegistrarSignature[format.KeyIDSize:])
		if err := r.VerifyRegistrar(hash, s.registrars); err != nil {
			return nil, errorf(403, "unauthorized", "%v", err)
		}
		reg = r
	case req.IDToken != "":
		if s.opts.CheckIDToken == nil {
			return nil, errorf(403, "unauthorized", "ID tokens are not accepted")
		}
		iss, err := s.opts.CheckIDToken(req.IDToken, req.UserID, format.OIDCNonce(hash))
		if err != nil {
			return nil, errorf(403, "unauthorized", "ID token: %v", err)
		}
		if _, ok := s.cfg.OIDCProvider(iss); !ok {
			return nil, errorf(403, "unauthorized", "issuer %q not accepted", iss)
		}
		reg = &format.Registration{Kind: format.RegistrationOIDC, Issuer: iss}
	default:
		return nil, errorf(403, "unauthorized", "a registration needs a registrar signature or an ID token")
	}
	if entry.Tombstone {
		if len(req.Profile) != 0 || len(req.Opening) != 0 {
			return nil, errorf(400, "bad_request", "a tombstone has no profile")
		}
	} else {
		if len(req.Opening) != format.OpeningSize {
			return nil, errorf(400, "bad_request", "opening must be %d bytes", format.OpeningSize)
		}
		if format.CommitProfile([format.OpeningSize]byte(req.Opening), req.Profile) != entry.Commitment {
			return nil, errorf(400, "bad_commitment", "profile and opening do not match the commitment")
		}
		if _, err := format.ParseProfile(req.Profile); err != nil {
			return nil, errorf(400, "malformed", "profile: %v", err)
		}
	}
	rec, err := (&format.LogRecord{SignedEntry: *se, Registration: reg}).Marshal()
	if err != nil {
		return nil, errorf(400, "malformed", "%v", err)
	}
	s.pending = append(s.pending, &pendingUpdate{
		index: index, record: rec, signedEntry: slices.Clone(req.SignedEntry),
		entry: entry, entryHash: hash,
		profile: slices.Clone(req.Profile), opening: slices.Clone(req.Opening),
	})
	s.heads[index] = entry
	s.seq++
	now := s.opts.Now()
	seq := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("clienttest/seq"), s.seq))
	resp := &api.UpdateResponse{Receipt: api.Receipt{
		Index:         index[:],
		Version:       entry.Version,
		LogTime:       now.UTC().Format(time.RFC3339Nano),
		Seq:           seq[:16],
		EpochDeadline: now.Add(s.opts.MaxEpochInterval).UTC().Format(time.RFC3339Nano),
	}}
	if !req.Wait {
		return resp, nil
	}
	if !s.opts.ManualEpochs {
		if _, err := s.cutLocked(); err != nil {
			return nil, errorf(500, "internal", "%v", err)
		}
	}
	quorum := s.cfg.Quorum
	if req.Quorum != nil {
		quorum = *req.Quorum
	}
	n, err := s.newestLocked(quorum)
	if err == nil && s.appliedLocked(index, entry.Version, n) {
		proof, err := s.lookupLocked(req.UserID, n)
		if err != nil {
			return nil, err
		}
		resp.Proof = proof
		return resp, nil
	}
	return resp, errorf(504, "wait_timeout", "no co-signed epoch contains the update yet")
}

// appliedLocked reports whether index has reached version by epoch n.
func (s *Server) appliedLocked(index [32]byte, version, n uint64) bool {
	u := s.users[index]
	if u == nil {
		return false
	}
	for _, v := range u.versions {
		if v.entry.Version >= version && v.epoch <= n {
			return true
		}
	}
	return false
}

// newestLocked returns the newest epoch co-signed by at least quorum
// verifiers.
func (s *Server) newestLocked(quorum int) (uint64, error) {
	if quorum < 0 || quorum > len(s.cosigners) {
		return 0, errorf(400, "bad_request", "quorum %d of %d verifiers", quorum, len(s.cosigners))
	}
	for n := len(s.epochs) - 1; n >= 0; n-- {
		if len(s.epochs[n].cosigned) >= quorum {
			return uint64(n), nil
		}
	}
	return 0, &Error{Status: 503, Code: "quorum_not_met", Msg: "no epoch is co-signed by the quorum yet"}
}

// Lookup returns the lookup proof of userID at the newest epoch co-signed
// by quorum verifiers, bound to that epoch's checkpoint.
func (s *Server) Lookup(userID string, quorum int) (*api.LookupProof, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.newestLocked(quorum)
	if err != nil {
		return nil, err
	}
	return s.lookupLocked(userID, n)
}

// LookupAt returns the lookup proof of userID at epoch n, bound to epoch
// n's checkpoint.
func (s *Server) LookupAt(userID string, n uint64) (*api.LookupProof, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n >= uint64(len(s.epochs)) {
		return nil, errorf(404, "not_found", "no epoch %d", n)
	}
	return s.lookupLocked(userID, n)
}

// versionAt returns the user's newest version applied by epoch n, or nil.
func (u *user) versionAt(n uint64) *version {
	if u == nil {
		return nil
	}
	var cur *version
	for _, v := range u.versions {
		if v.epoch <= n {
			cur = v
		}
	}
	return cur
}

func (s *Server) lookupLocked(userID string, n uint64) (*api.LookupProof, error) {
	index, vproof, err := s.index(userID)
	if err != nil {
		return nil, err
	}
	ep := s.epochs[n]
	hp, err := checkpoint.InclusionProof(n, n+1, s.log)
	if err != nil {
		return nil, errorf(500, "internal", "%v", err)
	}
	tp, err := s.tree.Prove(context.Background(), n, tree.Key(index))
	if err != nil {
		return nil, errorf(500, "internal", "%v", err)
	}
	p := &api.LookupProof{
		Realm:          s.cfg.Realm,
		UserID:         userID,
		Epoch:          n,
		Checkpoint:     slices.Clone(ep.note),
		CheckpointSize: n + 1,
		Head:           slices.Clone(ep.head),
		HeadProof:      hashes(hp),
		VRFProof:       vproof[:],
		Index:          index[:],
		TreeProof:      tp.Marshal(),
	}
	if v := s.users[index].versionAt(n); v != nil {
		p.LeafRecord = slices.Clone(v.leaf)
		p.SignedEntry = slices.Clone(v.signedEntry)
		if !v.entry.Tombstone {
			if v.opening == nil {
				return nil, errorf(410, "erased", "the profile of that version was erased")
			}
			p.Profile = slices.Clone(v.profile)
			p.Opening = slices.Clone(v.opening)
		}
	}
	return p, nil
}

// History returns the history of userID at the newest epoch co-signed by
// quorum verifiers (404 if the user has no entry there).
func (s *Server) History(userID string, quorum int) (*api.HistoryResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.newestLocked(quorum)
	if err != nil {
		return nil, err
	}
	lp, err := s.lookupLocked(userID, n)
	if err != nil {
		return nil, err
	}
	index := [32]byte(lp.Index)
	if s.users[index].versionAt(n) == nil {
		return nil, errorf(404, "not_found", "no history for this user")
	}
	h := &api.HistoryResponse{Lookup: *lp}
	for _, v := range s.users[index].versions {
		if v.epoch <= n {
			h.Records = append(h.Records, api.HistoryRecord{LeafRecord: slices.Clone(v.leaf), SignedEntry: slices.Clone(v.signedEntry)})
		}
	}
	return h, nil
}

// Note returns epoch n's checkpoint note with every co-signature so far.
func (s *Server) Note(n uint64) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.epochs[n].note)
}

// Head returns epoch n's head with its inclusion proof in the log of size
// size (0: the current size).
func (s *Server) Head(n, size uint64) (*api.HeadResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if size == 0 {
		size = uint64(len(s.epochs))
	}
	if size > uint64(len(s.epochs)) || n >= size {
		return nil, errorf(404, "not_found", "no epoch %d in a log of size %d", n, size)
	}
	p, err := checkpoint.InclusionProof(n, size, s.log)
	if err != nil {
		return nil, errorf(500, "internal", "%v", err)
	}
	return &api.HeadResponse{
		Epoch: n, Head: slices.Clone(s.epochs[n].head),
		Size: size, Proof: hashes(p), Checkpoint: slices.Clone(s.epochs[size-1].note),
	}, nil
}

// Consistency returns the consistency proof between two sizes of the log.
func (s *Server) Consistency(from, to uint64) (*api.ConsistencyResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from > to || to > uint64(len(s.epochs)) {
		return nil, errorf(404, "not_found", "no consistency proof %d→%d in a log of size %d", from, to, len(s.epochs))
	}
	p, err := checkpoint.ConsistencyProof(from, to, s.log)
	if err != nil {
		return nil, errorf(500, "internal", "%v", err)
	}
	return &api.ConsistencyResponse{From: from, To: to, Proof: hashes(p)}, nil
}

// Feed returns chunk part of epoch n's bundle.
func (s *Server) Feed(n uint64, part uint32) (*api.FeedResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n >= uint64(len(s.epochs)) {
		return nil, errorf(404, "not_found", "no epoch %d", n)
	}
	ep := s.epochs[n]
	b, err := (&format.Bundle{Head: ep.head, Checkpoint: ep.logNote, Records: ep.records}).Marshal()
	if err != nil {
		return nil, errorf(500, "internal", "%v", err)
	}
	chunks, err := format.SplitBundle(b, s.opts.ChunkSize)
	if err != nil {
		return nil, errorf(500, "internal", "%v", err)
	}
	if int(part) >= len(chunks) {
		return nil, errorf(404, "not_found", "epoch %d has %d parts", n, len(chunks))
	}
	cb, err := chunks[part].Marshal()
	if err != nil {
		return nil, errorf(500, "internal", "%v", err)
	}
	return &api.FeedResponse{Epoch: n, Part: part, Parts: uint32(len(chunks)), Chunk: cb}, nil
}

// Ratify merges a verifier's co-signature line into epoch n's checkpoint.
func (s *Server) Ratify(req *api.RatifyRequest) (*api.RatifyResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Epoch >= uint64(len(s.epochs)) {
		return nil, errorf(404, "not_found", "no epoch %d", req.Epoch)
	}
	line := req.Signature
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	ep := s.epochs[req.Epoch]
	nt, err := note.Open(ep.logNote, note.VerifierList(s.logSigner.Verifier()))
	if err != nil {
		return nil, errorf(500, "internal", "%v", err)
	}
	if err := s.mergeLocked(req.Epoch, []byte(nt.Text+"\n"+line)); err != nil {
		return nil, errorf(400, "bad_signature", "%v", err)
	}
	return &api.RatifyResponse{Epoch: req.Epoch, Cosigners: len(ep.cosigned)}, nil
}

func hashes(p [][32]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = slices.Clone(p[i][:])
	}
	return out
}

// ServeHTTP serves the API: /Update, /Lookup, /History, /Checkpoint, /Feed
// and /Ratify, as package api describes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var (
		v   any
		err error
	)
	q := r.URL.Query()
	quorum := func() (int, error) {
		if q.Get("quorum") == "" {
			return s.cfg.Quorum, nil
		}
		n, err := strconv.Atoi(q.Get("quorum"))
		if err != nil {
			return 0, errorf(400, "bad_request", "quorum: %v", err)
		}
		return n, nil
	}
	u64 := func(name string) (uint64, error) {
		n, err := strconv.ParseUint(q.Get(name), 10, 64)
		if err != nil {
			return 0, errorf(400, "bad_request", "%s: %v", name, err)
		}
		return n, nil
	}
	switch r.URL.Path {
	case "/Update":
		if r.Method != http.MethodPost {
			err = errorf(405, "method", "POST only")
			break
		}
		var req api.UpdateRequest
		if err = decode(w, r, &req); err != nil {
			break
		}
		var resp *api.UpdateResponse
		resp, err = s.Submit(&req)
		if e, ok := err.(*Error); ok && e.Status == 504 && resp != nil {
			writeJSON(w, 504, resp)
			return
		}
		v = resp
	case "/Lookup":
		var k int
		if k, err = quorum(); err != nil {
			break
		}
		if q.Has("epoch") {
			var n uint64
			if n, err = u64("epoch"); err != nil {
				break
			}
			v, err = s.LookupAt(q.Get("user"), n)
		} else {
			v, err = s.Lookup(q.Get("user"), k)
		}
	case "/History":
		var k int
		if k, err = quorum(); err != nil {
			break
		}
		v, err = s.History(q.Get("user"), k)
	case "/Checkpoint":
		switch {
		case q.Has("realm"):
			b, _ := s.cfg.Marshal()
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
			return
		case q.Has("from") || q.Has("to"):
			var from, to uint64
			if from, err = u64("from"); err != nil {
				break
			}
			if to, err = u64("to"); err != nil {
				break
			}
			v, err = s.Consistency(from, to)
		case q.Has("epoch"):
			var n, size uint64
			if n, err = u64("epoch"); err != nil {
				break
			}
			if q.Has("size") {
				if size, err = u64("size"); err != nil {
					break
				}
			}
			v, err = s.Head(n, size)
		default:
			s.mu.Lock()
			b := slices.Clone(s.epochs[len(s.epochs)-1].note)
			s.mu.Unlock()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(b)
			return
		}
	case "/Feed":
		var n, part uint64
		if n, err = u64("epoch"); err != nil {
			break
		}
		if q.Has("part") {
			if part, err = u64("part"); err != nil {
				break
			}
		}
		v, err = s.Feed(n, uint32(part))
	case "/Ratify":
		var req api.RatifyRequest
		if err = decode(w, r, &req); err != nil {
			break
		}
		v, err = s.Ratify(&req)
	default:
		err = errorf(404, "not_found", "no function %s", r.URL.Path)
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = errorf(500, "internal", "%v", err)
		}
		if e.Status == 503 {
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(w, e.Status, &api.Error{Code: e.Code, Message: e.Msg})
		return
	}
	writeJSON(w, 200, v)
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxRequestBytes))
	if err != nil {
		return errorf(413, "too_large", "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(400, "malformed", "%v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"code":"internal","error":"couldn't encode"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
