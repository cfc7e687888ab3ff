package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
)

// MaxResponseBytes caps every response body the client reads (a history of
// thousands of versions fits).
const MaxResponseBytes = 32 << 20

// Client talks to a Conifer keyserver and verifies every answer against a
// pinned realm config. It remembers the newest checkpoint it verified (in a
// State) and checks every other checkpoint it sees for rollback and fork.
// It is safe for concurrent use.
type Client struct {
	pinned      *Pinned
	base        string
	http        *http.Client
	now         func() time.Time
	state       State
	evidenceDir string
	progress    func(stage string, done, total int)

	mu    sync.Mutex  // serialises state checks and updates
	saved *Checkpoint // cache of the state's checkpoint; nil until loaded
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient sets the HTTP client (default: http.DefaultClient). Give it
// a timeout longer than the realm's MaxEpochInterval if updates wait.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) error {
		if h == nil {
			return errors.New("nil HTTP client")
		}
		c.http = h
		return nil
	}
}

// WithClock sets the clock used for head freshness (default: time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *Client) error {
		if now == nil {
			return errors.New("nil clock")
		}
		c.now = now
		return nil
	}
}

// WithState sets where the newest verified checkpoint is kept (default: a
// MemoryState, which protects one process only). Use a FileState for
// rollback and fork detection across runs.
func WithState(s State) Option {
	return func(c *Client) error {
		if s == nil {
			return errors.New("nil state")
		}
		c.state = s
		return nil
	}
}

// WithQuorum sets how many pinned verifiers must have co-signed every
// checkpoint the client accepts. Default: the realm's quorum; it may be
// raised up to the number of verifiers, never lowered.
func WithQuorum(q int) Option {
	return func(c *Client) error {
		p, err := NewPinned(c.pinned.cfg, q)
		if err != nil {
			return err
		}
		c.pinned = p
		return nil
	}
}

// WithEvidenceDir makes the client write the Evidence of every verification
// failure to a new file in dir (mode 0600), named
// evidence-<unix nanoseconds>-<check>.json. The path is in Error.EvidenceFile.
func WithEvidenceDir(dir string) Option {
	return func(c *Client) error {
		c.evidenceDir = dir
		return nil
	}
}

// WithProgress sets a function told about long work (stage "history": done
// of total versions verified). It is called synchronously.
func WithProgress(f func(stage string, done, total int)) Option {
	return func(c *Client) error {
		c.progress = f
		return nil
	}
}

// New returns a client for the keyserver at baseURL (functions are reached
// at baseURL + "/<Name>", e.g. /Lookup) that verifies answers against the
// pinned realm config cfg.
func New(cfg *realm.Config, baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("couldn't create client: server URL %q must be an http(s) URL without query", baseURL)
	}
	if cfg == nil {
		return nil, errors.New("couldn't create client: nil realm config")
	}
	p, err := NewPinned(cfg, cfg.Quorum)
	if err != nil {
		return nil, fmt.Errorf("couldn't create client: %w", err)
	}
	c := &Client{
		pinned: p,
		base:   strings.TrimSuffix(baseURL, "/"),
		http:   http.DefaultClient,
		now:    time.Now,
		state:  &MemoryState{},
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("couldn't create client: %w", err)
		}
	}
	return c, nil
}

// Pinned returns the client's pinned realm and quorum.
func (c *Client) Pinned() *Pinned { return c.pinned }

// Lookup fetches and verifies userID's current keys (VerifyLookup), then
// checks the answer's checkpoint against the remembered one (rollback and
// fork). An absent user is a Result with Present false, not an error.
func (c *Client) Lookup(ctx context.Context, userID string) (*Result, error) {
	q := url.Values{"user": {userID}, "quorum": {strconv.Itoa(c.pinned.quorum)}}
	var proof api.LookupProof
	if err := c.getJSON(ctx, "/Lookup", q, &proof); err != nil {
		return nil, err
	}
	res, err := c.pinned.VerifyLookup(userID, &proof, c.now())
	if err != nil {
		return nil, c.report(err)
	}
	if err := c.observe(ctx, res.Checkpoint); err != nil {
		return nil, err
	}
	return res, nil
}

// LookupAt fetches and verifies userID's keys as of a past epoch
// (VerifyLookupAt), and checks its checkpoint like Lookup.
func (c *Client) LookupAt(ctx context.Context, userID string, epoch uint64) (*Result, error) {
	q := url.Values{"user": {userID}, "epoch": {strconv.FormatUint(epoch, 10)}, "quorum": {strconv.Itoa(c.pinned.quorum)}}
	var proof api.LookupProof
	if err := c.getJSON(ctx, "/Lookup", q, &proof); err != nil {
		return nil, err
	}
	res, err := c.pinned.VerifyLookupAt(userID, epoch, &proof)
	if err != nil {
		return nil, c.report(err)
	}
	if err := c.observe(ctx, res.Checkpoint); err != nil {
		return nil, err
	}
	return res, nil
}

// History fetches and verifies every published version of userID
// (VerifyHistory). The server answers 404 (ErrNotFound) for a user who was
// never registered; use Lookup to verify the absence.
func (c *Client) History(ctx context.Context, userID string) (*History, error) {
	q := url.Values{"user": {userID}, "quorum": {strconv.Itoa(c.pinned.quorum)}}
	var h api.HistoryResponse
	if err := c.getJSON(ctx, "/History", q, &h); err != nil {
		return nil, err
	}
	var progress func(done, total int)
	if c.progress != nil {
		progress = func(done, total int) { c.progress("history", done, total) }
	}
	hist, err := c.pinned.verifyHistory(userID, &h, c.now(), progress)
	if err != nil {
		return nil, c.report(err)
	}
	if err := c.observe(ctx, hist.Lookup.Checkpoint); err != nil {
		return nil, err
	}
	return hist, nil
}

// Checkpoint fetches the newest checkpoint, verifies it with the client's
// quorum and checks it against the remembered one. A checkpoint that is not
// yet co-signed by the quorum fails with ErrVerifierQuorum.
func (c *Client) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	b, err := c.get(ctx, "/Checkpoint", nil, checkpoint.MaxNoteLen)
	if err != nil {
		return nil, err
	}
	cp, err := c.pinned.verifyCheckpoint(b, c.pinned.quorum, &Evidence{Realm: c.pinned.cfg.Realm, Time: c.now()})
	if err != nil {
		return nil, c.report(err)
	}
	if err := c.observe(ctx, cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// Head is a verified epoch head and the checkpoint that includes it.
type Head struct {
	Head       *format.EpochHead
	Checkpoint *Checkpoint
}

// Head fetches epoch's head with its inclusion proof in the log of size
// size (0: the server's newest), and verifies the checkpoint (with the
// client's quorum), the inclusion, and the head's realm and epoch. The
// checkpoint is checked against the remembered one.
func (c *Client) Head(ctx context.Context, epoch, size uint64) (*Head, error) {
	q := url.Values{"epoch": {strconv.FormatUint(epoch, 10)}}
	if size != 0 {
		q.Set("size", strconv.FormatUint(size, 10))
	}
	var hr api.HeadResponse
	if err := c.getJSON(ctx, "/Checkpoint", q, &hr); err != nil {
		return nil, err
	}
	h, err := c.pinned.verifyHead(epoch, size, &hr, c.now())
	if err != nil {
		return nil, c.report(err)
	}
	if err := c.observe(ctx, h.Checkpoint); err != nil {
		return nil, err
	}
	return h, nil
}

// verifyHead checks a HeadResponse for epoch (and size, if not 0).
func (p *Pinned) verifyHead(epoch, size uint64, hr *api.HeadResponse, now time.Time) (*Head, error) {
	ev := &Evidence{Time: now, Realm: p.cfg.Realm, Head: hr}
	cp, err := p.verifyCheckpoint(hr.Checkpoint, p.quorum, ev)
	if err != nil {
		return nil, err
	}
	if hr.Size != cp.Size || (size != 0 && cp.Size != size) {
		return nil, fail(ErrHeadInclusion, ev, "answer for size %d (checkpoint %d), asked for %d", hr.Size, cp.Size, size)
	}
	if hr.Epoch != epoch || epoch >= cp.Size {
		return nil, fail(ErrHeadInclusion, ev, "answer for epoch %d in a log of size %d, asked for epoch %d", hr.Epoch, cp.Size, epoch)
	}
	proof, err := logProof(hr.Proof)
	if err != nil {
		return nil, &Error{Check: ErrHeadInclusion, Err: err, Evidence: ev}
	}
	if err := checkpoint.VerifyInclusion(checkpoint.LeafHash(hr.Head), epoch, cp.Size, proof, cp.Hash); err != nil {
		return nil, &Error{Check: ErrHeadInclusion, Err: err, Evidence: ev}
	}
	head, err := format.ParseEpochHead(hr.Head)
	if err != nil {
		return nil, &Error{Check: ErrHead, Err: err, Evidence: ev}
	}
	if head.Realm != p.cfg.Realm || head.Epoch != epoch {
		return nil, fail(ErrHead, ev, "head of realm %q epoch %d, asked for epoch %d", head.Realm, head.Epoch, epoch)
	}
	return &Head{Head: head, Checkpoint: cp}, nil
}

// Consistency fetches and verifies the consistency proof between two
// verified checkpoints (old.Size ≤ new.Size). A proof that does not verify
// is ErrFork.
func (c *Client) Consistency(ctx context.Context, old, new *Checkpoint) error {
	if old.Size > new.Size {
		return fmt.Errorf("couldn't prove consistency: size %d is larger than %d", old.Size, new.Size)
	}
	return c.consistency(ctx, old, new, ErrFork)
}

// consistency proves that a (smaller or equal) is a prefix of b, failing
// with check (ErrFork or ErrRollback) when the server cannot.
func (c *Client) consistency(ctx context.Context, a, b *Checkpoint, check error) error {
	ev := &Evidence{
		Time: c.now(), Realm: c.pinned.cfg.Realm,
		Checkpoints:     [][]byte{a.Note, b.Note},
		ConsistencyFrom: a.Size, ConsistencyTo: b.Size,
	}
	if a.Size == b.Size {
		if a.Hash != b.Hash {
			return c.report(fail(check, ev, "two checkpoints of size %d with different roots", a.Size))
		}
		return nil
	}
	q := url.Values{"from": {strconv.FormatUint(a.Size, 10)}, "to": {strconv.FormatUint(b.Size, 10)}}
	var cr api.ConsistencyResponse
	if err := c.getJSON(ctx, "/Checkpoint", q, &cr); err != nil {
		var se *ServerError
		if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && se.Status != http.StatusTooManyRequests {
			// The server refuses to relate two checkpoints it signed.
			return c.report(&Error{Check: check, Err: fmt.Errorf("server refused the consistency proof: %w", err), Evidence: ev})
		}
		return err
	}
	ev.ConsistencyProof = cr.Proof
	if cr.From != a.Size || cr.To != b.Size {
		return c.report(fail(check, ev, "consistency proof for %d→%d, asked for %d→%d", cr.From, cr.To, a.Size, b.Size))
	}
	proof, err := logProof(cr.Proof)
	if err != nil {
		return c.report(&Error{Check: check, Err: err, Evidence: ev})
	}
	if err := checkpoint.VerifyConsistency(a.Size, b.Size, proof, a.Hash, b.Hash); err != nil {
		return c.report(&Error{Check: check, Err: err, Evidence: ev})
	}
	return nil
}

// observe checks a verified checkpoint against the remembered one and
// remembers it if it is newer:
//
//   - nothing remembered: remember cp (trust on first use of the state);
//   - same size: the roots must be equal (else ErrFork);
//   - larger: the server must prove the remembered checkpoint a prefix of
//     cp (else ErrFork), then cp is remembered;
//   - smaller: the server must prove cp a prefix of the remembered one
//     (else ErrRollback); the remembered one stays.
func (c *Client) observe(ctx context.Context, cp *Checkpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.saved == nil {
		b, err := c.state.Load()
		if err != nil {
			return err
		}
		if len(b) > 0 {
			// Re-verify what was stored (only the signatures: the quorum may
			// have been raised since), so a corrupt file is noticed.
			saved, err := c.pinned.verifyCheckpoint(b, 0, nil)
			if err != nil {
				return fmt.Errorf("couldn't load client state: the stored checkpoint does not verify under the pinned realm (corrupt, or another realm's): %v", err)
			}
			c.saved = saved
		}
	}
	old := c.saved
	switch {
	case old == nil:
	case cp.Size == old.Size:
		return c.consistency(ctx, old, cp, ErrFork)
	case cp.Size > old.Size:
		if err := c.consistency(ctx, old, cp, ErrFork); err != nil {
			return err
		}
	default:
		return c.consistency(ctx, cp, old, ErrRollback)
	}
	if err := c.state.Store(cp.Note); err != nil {
		return err
	}
	c.saved = cp
	return nil
}

// Remembered returns the newest checkpoint the client has verified (from
// its State), or nil.
func (c *Client) Remembered() (*Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.saved != nil {
		return c.saved, nil
	}
	b, err := c.state.Load()
	if err != nil || len(b) == 0 {
		return nil, err
	}
	saved, err := c.pinned.verifyCheckpoint(b, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't load client state: the stored checkpoint does not verify under the pinned realm (corrupt, or another realm's): %v", err)
	}
	c.saved = saved
	return saved, nil
}

// UpdateResult is the answer to an update.
type UpdateResult struct {
	// Receipt says the update is in the log.
	Receipt api.Receipt
	// Lookup is the verified lookup showing the update (or a later version)
	// when the request asked to wait; nil otherwise.
	Lookup *Result
}

// Update sends an update request. The receipt must name the entry's index
// and version. If req.Wait is set, the returned lookup proof is verified
// like Lookup's and must show the update applied: the entry's version with
// the same entry hash, or a later version (ErrUpdateNotApplied otherwise).
func (c *Client) Update(ctx context.Context, req *api.UpdateRequest) (*UpdateResult, error) {
	se, entry, err := format.ParseSignedEntry(req.SignedEntry)
	if err != nil {
		return nil, fmt.Errorf("couldn't send update: %w", err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("couldn't send update: %w", err)
	}
	if len(body) > api.MaxRequestBytes {
		return nil, fmt.Errorf("couldn't send update: request of %d bytes exceeds the server's %d", len(body), api.MaxRequestBytes)
	}
	var resp api.UpdateResponse
	if err := c.do(ctx, http.MethodPost, "/Update", nil, body, &resp); err != nil {
		return nil, err
	}
	if !bytes.Equal(resp.Receipt.Index, entry.Index[:]) || resp.Receipt.Version != entry.Version {
		return nil, &ServerError{URL: c.base + "/Update", Message: fmt.Sprintf("receipt for index %x version %d, sent index %x version %d",
			resp.Receipt.Index, resp.Receipt.Version, entry.Index, entry.Version)}
	}
	out := &UpdateResult{Receipt: resp.Receipt}
	if !req.Wait {
		return out, nil
	}
	if resp.Proof == nil {
		return nil, &ServerError{URL: c.base + "/Update", Message: "waited update answered without a proof"}
	}
	p := c.pinned
	if req.Quorum != nil && *req.Quorum != p.quorum {
		if p, err = NewPinned(p.cfg, max(*req.Quorum, p.quorum)); err != nil {
			return nil, err
		}
	}
	res, err := p.VerifyLookup(req.UserID, resp.Proof, c.now())
	if err != nil {
		return nil, c.report(err)
	}
	if err := c.observe(ctx, res.Checkpoint); err != nil {
		return nil, err
	}
	out.Lookup = res
	hash := format.EntryHash(se.Entry)
	switch {
	case !res.Present || res.Entry.Version < entry.Version:
		return out, fmt.Errorf("%w: epoch %d shows version %d, the update was version %d", ErrUpdateNotApplied, res.Epoch, res.Version(), entry.Version)
	case res.Entry.Version == entry.Version && res.EntryHash != hash:
		return out, fmt.Errorf("%w: epoch %d shows another entry at version %d", ErrUpdateNotApplied, res.Epoch, entry.Version)
	}
	return out, nil
}

// Submit sends a prepared update (see Prepare) for userID, waiting for its
// epoch if wait is set.
func (c *Client) Submit(ctx context.Context, userID string, u *Update, wait bool) (*UpdateResult, error) {
	req, err := u.Request(userID, wait)
	if err != nil {
		return nil, err
	}
	return c.Update(ctx, req)
}

// FeedChunk fetches one chunk of epoch's bundle, unverified but parsed.
func (c *Client) FeedChunk(ctx context.Context, epoch uint64, part uint32) (*format.BundleChunk, error) {
	q := url.Values{"epoch": {strconv.FormatUint(epoch, 10)}, "part": {strconv.FormatUint(uint64(part), 10)}}
	var fr api.FeedResponse
	if err := c.getJSON(ctx, "/Feed", q, &fr); err != nil {
		return nil, err
	}
	ch, err := format.ParseBundleChunk(fr.Chunk)
	if err != nil {
		return nil, &ServerError{URL: c.base + "/Feed", Message: fmt.Sprintf("couldn't parse bundle chunk: %v", err)}
	}
	if ch.Epoch != epoch || ch.Part != part || fr.Epoch != epoch || fr.Part != part || fr.Parts != ch.Parts || ch.Realm != c.pinned.cfg.Realm {
		return nil, &ServerError{URL: c.base + "/Feed", Message: fmt.Sprintf("got chunk %d/%d of %q epoch %d, asked for part %d of epoch %d",
			ch.Part, ch.Parts, ch.Realm, ch.Epoch, part, epoch)}
	}
	return ch, nil
}

// Feed fetches every chunk of epoch's bundle, joins them, and verifies the
// bundle against the log: its checkpoint is signed by the keyserver for
// size epoch+1 (co-signatures are not required: verifiers read the feed
// before they co-sign), and its head is leaf epoch of that log (proven with
// the head's inclusion proof from the server).
func (c *Client) Feed(ctx context.Context, epoch uint64) (*format.Bundle, error) {
	first, err := c.FeedChunk(ctx, epoch, 0)
	if err != nil {
		return nil, err
	}
	chunks := []format.BundleChunk{*first}
	for part := uint32(1); part < first.Parts; part++ {
		ch, err := c.FeedChunk(ctx, epoch, part)
		if err != nil {
			return nil, err
		}
		chunks = append(chunks, *ch)
	}
	b, err := format.JoinBundle(chunks)
	if err != nil {
		return nil, &ServerError{URL: c.base + "/Feed", Message: fmt.Sprintf("couldn't join bundle: %v", err)}
	}
	ev := &Evidence{Time: c.now(), Realm: c.pinned.cfg.Realm}
	cp, err := c.pinned.verifyCheckpoint(b.Checkpoint, 0, ev)
	if err != nil {
		return nil, c.report(err)
	}
	if cp.Size != epoch+1 {
		return nil, c.report(fail(ErrHeadInclusion, ev, "bundle checkpoint of size %d for epoch %d", cp.Size, epoch))
	}
	q := url.Values{"epoch": {strconv.FormatUint(epoch, 10)}, "size": {strconv.FormatUint(epoch+1, 10)}}
	var hr api.HeadResponse
	if err := c.getJSON(ctx, "/Checkpoint", q, &hr); err != nil {
		return nil, err
	}
	ev.Head = &hr
	proof, err := logProof(hr.Proof)
	if err != nil {
		return nil, c.report(&Error{Check: ErrHeadInclusion, Err: err, Evidence: ev})
	}
	if err := checkpoint.VerifyInclusion(checkpoint.LeafHash(b.Head), epoch, cp.Size, proof, cp.Hash); err != nil {
		return nil, c.report(&Error{Check: ErrHeadInclusion, Err: err, Evidence: ev})
	}
	return b, nil
}

// ServerRealm fetches the server's copy of the realm config. It is never
// trusted: compare it with the pinned config before acting on a
// difference (for example, to tell a user their app's pinned config is out
// of date).
func (c *Client) ServerRealm(ctx context.Context) (*realm.Config, error) {
	b, err := c.get(ctx, "/Checkpoint", url.Values{"realm": {"1"}}, 1<<20)
	if err != nil {
		return nil, err
	}
	cfg, err := realm.Parse(b)
	if err != nil {
		return nil, &ServerError{URL: c.base + "/Checkpoint?realm=1", Message: err.Error()}
	}
	return cfg, nil
}

// report completes a verification error's evidence, writes it to the
// evidence directory if one is configured, and returns err.
func (c *Client) report(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	if e.Evidence == nil {
		e.Evidence = &Evidence{}
	}
	ev := e.Evidence
	ev.Server = c.base
	ev.Realm = c.pinned.cfg.Realm
	if ev.Time.IsZero() {
		ev.Time = c.now()
	}
	ev.Check = e.Check.Error()
	ev.Error = e.Error()
	if c.evidenceDir == "" || e.EvidenceFile != "" {
		return err
	}
	b, merr := ev.Marshal()
	if merr != nil {
		return err
	}
	if mkerr := os.MkdirAll(c.evidenceDir, 0o700); mkerr != nil {
		return fmt.Errorf("%w (and couldn't write the evidence: %v)", err, mkerr)
	}
	name := filepath.Join(c.evidenceDir, fmt.Sprintf("evidence-%d-%s.json", ev.Time.UnixNano(), slug(e.Check)))
	if werr := WriteFileAtomic(name, b, 0o600); werr != nil {
		return fmt.Errorf("%w (and couldn't write the evidence: %v)", err, werr)
	}
	e.EvidenceFile = name
	return err
}

// slug turns a sentinel's text into a file-name word.
func slug(err error) string {
	s := strings.TrimPrefix(err.Error(), ErrVerification.Error()+": ")
	var b strings.Builder
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			b.WriteRune(r)
		case 'A' <= r && r <= 'Z':
			b.WriteRune(r + 'a' - 'A')
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// get sends a GET and returns the body (at most limit bytes).
func (c *Client) get(ctx context.Context, path string, q url.Values, limit int64) ([]byte, error) {
	return c.roundTrip(ctx, http.MethodGet, path, q, nil, limit)
}

// getJSON sends a GET and decodes the JSON answer strictly into v.
func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, v)
}

// do sends a request and decodes the JSON answer strictly into v.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, v any) error {
	b, err := c.roundTrip(ctx, method, path, q, body, MaxResponseBytes)
	if err != nil {
		return err
	}
	if err := decodeStrict(b, v); err != nil {
		return &ServerError{URL: c.base + path, Message: fmt.Sprintf("couldn't decode answer: %v", err)}
	}
	return nil
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func (c *Client) roundTrip(ctx context.Context, method, path string, q url.Values, body []byte, limit int64) ([]byte, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("couldn't build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("couldn't reach the keyserver: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read the keyserver's answer: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, &ServerError{URL: u, Status: resp.StatusCode, Message: fmt.Sprintf("answer longer than %d bytes", limit)}
	}
	if resp.StatusCode/100 == 2 {
		return b, nil
	}
	se := &ServerError{URL: u, Status: resp.StatusCode}
	if resp.StatusCode == http.StatusGatewayTimeout {
		var ur api.UpdateResponse
		if decodeStrict(b, &ur) == nil && len(ur.Receipt.Index) > 0 {
			se.Receipt = &ur.Receipt
			se.Message = "the server gave up waiting for an epoch; the update is in the log"
			return nil, se
		}
	}
	var ae api.Error
	if json.Unmarshal(b, &ae) == nil {
		se.Code, se.Message = ae.Code, ae.Message
		if ae.RetryAfterSeconds > 0 {
			se.RetryAfter = time.Duration(ae.RetryAfterSeconds) * time.Second
		}
	} else {
		se.Message = strings.TrimSpace(string(b[:min(len(b), 200)]))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		se.RetryAfter = time.Duration(s) * time.Second
	}
	return nil, se
}
