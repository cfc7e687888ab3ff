package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/functions/internal/config"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/vrf"
)

// IDTokenVerifier checks the OpenID Connect ID token of a registration
// (package oidc's Verifier). It returns the issuer that vouched for userID;
// a token that fails a check is an *oidc.Error (403), an unreachable
// provider wraps oidc.ErrUnavailable (503).
type IDTokenVerifier interface {
	Verify(ctx context.Context, rawToken, userID, nonce string) (issuer string, err error)
}

// Options are a Server's dependencies. Store and Realm are required; VRF
// only for Update, Lookup and History (without it they answer 503
// not_configured); IDTokens only for OIDC registrations (without it every
// ID token is refused).
type Options struct {
	// Store is the database (package spanstore in production).
	Store storage.Store
	// Realm is the public realm config.
	Realm *realm.Config
	// VRF is the realm's VRF private key; its public key must be the
	// realm's.
	VRF *vrf.PrivateKey
	// IDTokens checks OIDC registrations.
	IDTokens IDTokenVerifier
	// Limits are the instance's limits (config.DefaultLimits if zero).
	Limits config.Limits
	// Project is the Google Cloud project, for the trace field of logs
	// (optional).
	Project string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Sleep waits d or until ctx ends (default: a timer); Update's wait
	// loop polls with it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Log receives one line per request (default: discard).
	Log *slog.Logger
}

// Server serves Conifer's HTTP API. Its methods Update, Lookup, History,
// Checkpoint, Feed and Ratify are the function entry points; Handler
// serves them all under /<Name>. Safe for concurrent use.
type Server struct {
	store    storage.Store
	tree     *tree.Tree
	realm    *realm.Config
	realmDoc []byte
	rules    statemachine.Rules
	vrf      *vrf.PrivateKey
	idTokens IDTokenVerifier
	limits   config.Limits
	project  string
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	log      *slog.Logger

	logVerifier note.Verifier
	cosigners   []*checkpoint.CosignatureVerifier
	names       []string // the cosigners' names, as LatestEpoch takes them

	updateLimit *buckets
	readLimit   *buckets
	gate        gate

	feedMu    sync.Mutex
	feedEpoch uint64
	feedParts [][]byte // encoded chunks of feedEpoch's bundle; nil if none cached
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Realm == nil {
		return nil, errors.New("couldn't create server: Store and Realm are required")
	}
	if err := opts.Realm.Validate(); err != nil {
		return nil, fmt.Errorf("couldn't create server: %w", err)
	}
	s := &Server{
		store:    opts.Store,
		tree:     tree.New(opts.Store.Tree()),
		realm:    opts.Realm,
		vrf:      opts.VRF,
		idTokens: opts.IDTokens,
		limits:   opts.Limits,
		project:  opts.Project,
		now:      opts.Now,
		sleep:    opts.Sleep,
		log:      opts.Log,
	}
	if s.limits == (config.Limits{}) {
		s.limits = config.DefaultLimits()
	}
	l := s.limits
	if !(l.UpdateRate > 0) || l.UpdateBurst < 1 || !(l.LookupRate > 0) || l.LookupBurst < 1 ||
		l.MaxConcurrent < 1 || l.WaitTimeout <= 0 || l.WaitPoll <= 0 || l.TrustedProxies < 0 {
		return nil, fmt.Errorf("couldn't create server: invalid limits %+v", l)
	}
	if _, err := checkFeedChunk(l.FeedChunkBytes); err != nil {
		return nil, fmt.Errorf("couldn't create server: %w", err)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.sleep == nil {
		s.sleep = sleepCtx
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.rules, err = statemachine.RulesFromRealm(opts.Realm); err != nil {
		return nil, fmt.Errorf("couldn't create server: %w", err)
	}
	if s.logVerifier, err = checkpoint.NewVerifier(opts.Realm.LogKey); err != nil {
		return nil, fmt.Errorf("couldn't create server: realm log_key: %w", err)
	}
	for i, vk := range opts.Realm.Verifiers {
		v, err := checkpoint.NewCosignatureVerifier(vk)
		if err != nil {
			return nil, fmt.Errorf("couldn't create server: realm verifiers[%d]: %w", i, err)
		}
		if slices.Contains(s.names, v.Name()) {
			return nil, fmt.Errorf("couldn't create server: realm verifiers[%d]: name %q used twice", i, v.Name())
		}
		s.cosigners = append(s.cosigners, v)
		s.names = append(s.names, v.Name())
	}
	if s.vrf != nil && !bytes.Equal(s.vrf.Public().Bytes(), opts.Realm.VRFPublicKey) {
		return nil, errors.New("couldn't create server: the VRF private key does not match the realm's vrf_public_key")
	}
	if s.realmDoc, err = opts.Realm.Marshal(); err != nil {
		return nil, fmt.Errorf("couldn't create server: %w", err)
	}
	s.updateLimit = newBuckets(l.UpdateRate, l.UpdateBurst, maxBucketKeys)
	s.readLimit = newBuckets(l.LookupRate, l.LookupBurst, maxBucketKeys)
	s.gate = newGate(l.MaxConcurrent)
	return s, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handler serves every endpoint under /<Name> (/Update, /Lookup, ...), as
// the functions framework does without FUNCTION_TARGET; anything else is
// 404.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/Update", s.Update)
	mux.HandleFunc("/Lookup", s.Lookup)
	mux.HandleFunc("/History", s.History)
	mux.HandleFunc("/Checkpoint", s.Checkpoint)
	mux.HandleFunc("/Feed", s.Feed)
	mux.HandleFunc("/Ratify", s.Ratify)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, CodeNotFound, "no function at %q", r.URL.Path))
	})
	return mux
}

// Update is the Update function: POST api.UpdateRequest → api.UpdateResponse.
func (s *Server) Update(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "Update", http.MethodPost, false, s.update)
}

// Lookup is the Lookup function: GET ?user=&epoch=&quorum= → api.LookupProof.
func (s *Server) Lookup(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "Lookup", http.MethodGet, true, s.lookup)
}

// History is the History function: GET ?user=&quorum= → api.HistoryResponse.
func (s *Server) History(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "History", http.MethodGet, true, s.history)
}

// Checkpoint is the Checkpoint function (see package api for its forms).
func (s *Server) Checkpoint(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "Checkpoint", http.MethodGet, true, s.checkpoint)
}

// Feed is the Feed function: GET ?epoch=&part= → api.FeedResponse.
func (s *Server) Feed(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "Feed", http.MethodGet, true, s.feed)
}

// Ratify is the Ratify function: POST api.RatifyRequest → api.RatifyResponse.
func (s *Server) Ratify(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "Ratify", http.MethodPost, true, s.ratify)
}

// call is one request as a handler sees it.
type call struct {
	w   http.ResponseWriter
	r   *http.Request
	ctx context.Context
	log *slog.Logger
	// release gives the request's concurrency slot back early (Update
	// while it waits for an epoch); idempotent.
	release func()
}

// statusWriter records the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// serve is the edge every endpoint goes through: request id and logger,
// concurrency cap (503), method (405), per-caller rate limit for readers
// (429), then the handler; its error is mapped to an HTTP answer here and
// only here. A panic is answered 500 and logged with its stack.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, name, method string, perCaller bool, h func(*call) error) {
	start := s.now()
	log := requestLogger(s.log, s.project, r).With("function", name)
	sw := &statusWriter{ResponseWriter: w}
	var herr *httpError
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if sw.status == 0 {
				writeError(sw, errorf(http.StatusInternalServerError, CodeInternal, "internal error"))
			}
		}
		attrs := []any{"method", r.Method, "status", sw.status, "latency_ms", s.now().Sub(start).Milliseconds()}
		if herr != nil {
			attrs = append(attrs, "code", herr.code, "error", herr.msg)
			if herr.cause != nil {
				attrs = append(attrs, "cause", herr.cause.Error())
			}
		}
		log.Log(r.Context(), logLevel(sw.status), "request", attrs...)
	}()
	fail := func(e *httpError) {
		herr = e
		writeError(sw, e)
	}
	if !s.gate.enter() {
		fail(&httpError{status: http.StatusServiceUnavailable, code: CodeOverloaded, msg: "too many requests in flight on this instance", retryAfter: 1})
		return
	}
	var once sync.Once
	release := func() { once.Do(s.gate.leave) }
	defer release()
	if r.Method != method {
		sw.Header().Set("Allow", method)
		fail(errorf(http.StatusMethodNotAllowed, CodeMethod, "%s takes %s, not %s", name, method, r.Method))
		return
	}
	if perCaller {
		if ok, wait := s.readLimit.take(ClientIP(r, s.limits.TrustedProxies), start); !ok {
			fail(&httpError{status: http.StatusTooManyRequests, code: CodeRateLimited, msg: "too many requests from this address", retryAfter: retrySeconds(wait)})
			return
		}
	}
	c := &call{w: sw, r: r, ctx: r.Context(), log: log, release: release}
	if err := h(c); err != nil {
		fail(classify(err))
	}
}

// readBody reads a request body of at most api.MaxRequestBytes (413
// beyond) and decodes it strictly into v: unknown fields, a second JSON
// value or trailing garbage are 400.
func readBody(c *call, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, api.MaxRequestBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is longer than %d bytes", api.MaxRequestBytes)
	case err != nil:
		return errorf(http.StatusBadRequest, CodeMalformed, "couldn't read the body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, CodeMalformed, "the body is not a valid %T: %v", v, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, CodeMalformed, "data after the JSON object")
	}
	return nil
}

// prove computes the VRF index and proof of a user id.
func (s *Server) prove(userID string) (index [32]byte, proof [vrf.ProofSize]byte, err error) {
	if s.vrf == nil {
		return index, proof, errorf(http.StatusServiceUnavailable, CodeNotConfigured, "this instance has no VRF key")
	}
	if err := checkUserID(userID); err != nil {
		return index, proof, err
	}
	alpha, err := vrf.Input(s.realm.Realm, userID)
	if err != nil {
		return index, proof, errorf(http.StatusBadRequest, CodeMalformed, "user id: %v", err)
	}
	beta, proof := s.vrf.Prove(alpha)
	return vrf.Index(beta), proof, nil
}

// checkUserID accepts 1..vrf.MaxUserIDSize bytes of UTF-8 text without
// control characters.
func checkUserID(id string) error {
	if id == "" {
		return errorf(http.StatusBadRequest, CodeMalformed, "user id is empty")
	}
	if len(id) > vrf.MaxUserIDSize {
		return errorf(http.StatusBadRequest, CodeMalformed, "user id is %d bytes, at most %d", len(id), vrf.MaxUserIDSize)
	}
	for i, r := range id {
		if r == '\uFFFD' || r < 0x20 || r == 0x7f {
			return errorf(http.StatusBadRequest, CodeMalformed, "user id has an invalid or control character at byte %d", i)
		}
	}
	return nil
}

// quorum parses an optional quorum (default: the realm's).
func (s *Server) quorum(q *int) (int, error) {
	if q == nil {
		return s.realm.Quorum, nil
	}
	if *q < 0 || *q > len(s.cosigners) {
		return 0, errorf(http.StatusBadRequest, CodeMalformed, "quorum %d: the realm has %d verifiers", *q, len(s.cosigners))
	}
	return *q, nil
}

// cosigned counts the realm verifiers among an epoch's cosigners.
func (s *Server) cosigned(ep *storage.Epoch) int {
	n := 0
	for _, c := range ep.Cosigners {
		if slices.Contains(s.names, c) {
			n++
		}
	}
	return n
}
