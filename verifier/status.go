package verifier

import (
	"encoding/json"
	"net/http"
	"time"
)

// Status is the verifier's state, as the status endpoint serves it.
type Status struct {
	// Realm is the realm followed; Verifier the cosigner name and
	// VerifierKey its key string.
	Realm       string `json:"realm"`
	Verifier    string `json:"verifier"`
	VerifierKey string `json:"verifier_key"`
	// VerifiedEpochs counts the epochs verified (0..VerifiedEpochs-1);
	// NewestEpoch is the newest, absent before the genesis is verified.
	VerifiedEpochs uint64  `json:"verified_epochs"`
	NewestEpoch    *uint64 `json:"newest_epoch,omitempty"`
	// NewestHeadTime is the newest verified head's time (RFC 3339).
	NewestHeadTime string `json:"newest_head_time,omitempty"`
	// KnownEpochs is one more than the newest epoch seen anywhere (Pub/Sub
	// or the feed); LagEpochs = KnownEpochs - VerifiedEpochs.
	KnownEpochs uint64 `json:"known_epochs"`
	LagEpochs   uint64 `json:"lag_epochs"`
	// LagSeconds is the age of the newest verified head by the verifier's
	// clock.
	LagSeconds float64 `json:"lag_seconds"`
	// CatchingUp is set while Run catches up from the feed.
	CatchingUp bool `json:"catching_up"`
	// Signing is false once a misbehaviour stopped signing for good;
	// Halt says which.
	Signing bool          `json:"signing"`
	Halt    *Misbehaviour `json:"halt,omitempty"`
	// Evidence lists the evidence files, relative to the data directory.
	Evidence []string `json:"evidence"`
	// RatifyQueue counts cosignatures not yet accepted by Ratify;
	// RatifiedEpochs is one more than the newest epoch Ratify accepted in
	// this run (0: none yet).
	RatifyQueue    int    `json:"ratify_queue"`
	RatifiedEpochs uint64 `json:"ratified_epochs"`
	// LastError is the last network or store error (cleared when an epoch
	// is verified).
	LastError string `json:"last_error,omitempty"`
}

// Status returns the verifier's status.
func (v *Verifier) Status() Status {
	now := v.now()
	v.mu.Lock()
	s := Status{
		Realm: v.realm.Realm, Verifier: v.cosigner.Name(), VerifierKey: v.cosigner.VerifierKey(),
		VerifiedEpochs: v.size, KnownEpochs: max(v.known, v.size),
		CatchingUp: v.catchingUp, Signing: v.halt == nil, Halt: v.halt,
		RatifiedEpochs: v.ratified, LastError: v.lastErr,
	}
	if v.size > 0 {
		n := v.size - 1
		s.NewestEpoch = &n
	}
	if h := v.newestHead; h != nil && h.Time <= 1<<62 {
		t := time.UnixMilli(int64(h.Time))
		s.NewestHeadTime = t.UTC().Format(time.RFC3339Nano)
		s.LagSeconds = max(now.Sub(t).Seconds(), 0)
	}
	if !v.closed {
		// Under the lock, so that Close cannot close the database meanwhile.
		s.RatifyQueue, _ = v.db.queueLen()
	}
	v.mu.Unlock()
	s.LagEpochs = s.KnownEpochs - s.VerifiedEpochs
	s.Evidence, _ = listEvidence(v.cfg.Dir)
	if s.Evidence == nil {
		s.Evidence = []string{}
	}
	return s
}

// ServeHTTP serves the status as JSON on GET (any path): 200 while
// signing, 500 once halted, so that a health check sees a halted verifier.
func (v *Verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	s := v.Status()
	b, err := json.MarshalIndent(&s, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !s.Signing {
		w.WriteHeader(http.StatusInternalServerError)
	}
	w.Write(append(b, '\n'))
}
