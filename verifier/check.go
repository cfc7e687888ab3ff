package verifier

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
)

// Check names one of the verifier's checks of an epoch bundle. The names
// are stable: they appear in evidence files and status.
type Check string

// The checks, in the order the verifier runs them (see the package doc).
const (
	// CheckBundle: the bytes are not a bundle (framing, size caps,
	// trailing bytes).
	CheckBundle Check = "bundle"
	// CheckLogSignature: the checkpoint is not a well-formed signed note
	// carrying a valid signature by the realm's log key.
	CheckLogSignature Check = "log-signature"
	// CheckOrigin: the checkpoint is for another log (origin ≠ realm).
	CheckOrigin Check = "origin"
	// CheckCheckpoint: the checkpoint text is not a canonical Conifer
	// checkpoint (malformed, extension lines).
	CheckCheckpoint Check = "checkpoint"
	// CheckSize: the checkpoint's size is not epoch+1.
	CheckSize Check = "size"
	// CheckHead: the head is not a canonical format.EpochHead.
	CheckHead Check = "head"
	// CheckRealm: the head is for another realm.
	CheckRealm Check = "realm"
	// CheckEpoch: the head is for another epoch than the one delivered.
	CheckEpoch Check = "epoch"
	// CheckCount: the number of records is not the head's update count.
	CheckCount Check = "count"
	// CheckRecords: a record is not a canonical log record of the realm.
	CheckRecords Check = "records"
	// CheckUpdatesRoot: the records' Merkle root is not the head's
	// updates root (records dropped, added, changed or reordered).
	CheckUpdatesRoot Check = "updates-root"
	// CheckTime: the head's time is before the previous head's.
	CheckTime Check = "time"
	// CheckTreeRoot: replaying the records with the statemachine gives
	// another tree root than the head's (an update applied that the rules
	// reject, or one hidden from the bundle; for the genesis, a non-empty
	// tree).
	CheckTreeRoot Check = "tree-root"
	// CheckReplayedHead: the replayed head differs from the bundle's in
	// some other byte (a safety net: the checks above cover every field).
	CheckReplayedHead Check = "replayed-head"
	// CheckLogRoot: the checkpoint's root is not the root of the
	// verifier's own epoch log with this head appended: the log does not
	// extend what the verifier verified before (a fork or a rollback).
	CheckLogRoot Check = "log-root"
	// CheckEquivocation: a different, validly signed bundle for an epoch
	// already verified.
	CheckEquivocation Check = "equivocation"
)

// Sentinel errors.
var (
	// ErrMisbehaviour is wrapped by every *Misbehaviour: a check failed,
	// evidence was written and signing stopped for good.
	ErrMisbehaviour = errors.New("verifier: keyserver misbehaviour")
	// ErrHalted means the verifier stopped signing earlier (a
	// misbehaviour recorded in its data directory) and will not go on.
	ErrHalted = errors.New("verifier: halted")
	// ErrOutOfOrder means a bundle was offered for an epoch after the
	// next one to verify.
	ErrOutOfOrder = errors.New("verifier: epoch is not the next one")
	// ErrWrongDirectory means the data directory belongs to another realm,
	// log key or cosigner name.
	ErrWrongDirectory = errors.New("verifier: data directory belongs to another realm")
	// ErrConfig means the Config is unusable.
	ErrConfig = errors.New("verifier: invalid configuration")
)

// Misbehaviour is a failed check: the keyserver published a bundle that
// the verifier refuses to co-sign.
type Misbehaviour struct {
	// Epoch is the epoch of the bundle.
	Epoch uint64 `json:"epoch"`
	// Check is the check that failed.
	Check Check `json:"check"`
	// Detail says what was wrong, in words.
	Detail string `json:"detail"`
	// Evidence is the evidence file's path relative to the data directory
	// (empty if it could not be written).
	Evidence string `json:"evidence"`
}

// Error returns "verifier: keyserver misbehaviour at epoch N: check C: detail (evidence FILE)".
func (m *Misbehaviour) Error() string {
	s := fmt.Sprintf("%v at epoch %d: check %s: %s", ErrMisbehaviour, m.Epoch, m.Check, m.Detail)
	if m.Evidence != "" {
		s += " (evidence " + m.Evidence + ")"
	}
	return s
}

// Unwrap returns ErrMisbehaviour.
func (m *Misbehaviour) Unwrap() error { return ErrMisbehaviour }

// failure is a failed check before evidence is written.
type failure struct {
	check  Check
	detail string
	// Extra evidence, where the check produced it.
	replayed   []byte      // the verifier's replayed head
	rejections []Rejection // records the statemachine refused
}

func fail(c Check, format string, args ...any) *failure {
	return &failure{check: c, detail: fmt.Sprintf(format, args...)}
}

// staticBundle is a bundle that passed every check that needs no state
// but the expected epoch.
type staticBundle struct {
	fields *bundleFields
	head   *format.EpochHead
	cp     checkpoint.Checkpoint
	text   []byte // the checkpoint body the keyserver signed
}

// checkStatic runs, in order, the checks of a bundle that need only the
// pinned realm and the epoch it was delivered as: bundle, log-signature,
// origin, checkpoint, size, head, realm, epoch, count, records and
// updates-root. fields is nil only on a framing failure.
func (v *Verifier) checkStatic(epoch uint64, data []byte) (*staticBundle, *failure) {
	f, err := splitBundle(data)
	if err != nil {
		return nil, fail(CheckBundle, "%v", err)
	}
	s := &staticBundle{fields: f}
	vc, err := checkpoint.Open(f.checkpoint, v.realm.Realm, v.logVerifier, nil, 0)
	switch {
	case errors.Is(err, checkpoint.ErrWrongOrigin):
		return s, fail(CheckOrigin, "%v", err)
	case errors.Is(err, checkpoint.ErrExtensions), errors.Is(err, checkpoint.ErrMalformed):
		return s, fail(CheckCheckpoint, "%v", err)
	case err != nil:
		return s, fail(CheckLogSignature, "%v", err)
	}
	s.cp = vc.Checkpoint
	s.text = []byte(vc.Note.Text)
	if s.cp.Size != epoch+1 {
		return s, fail(CheckSize, "checkpoint of size %d for epoch %d, want size %d", s.cp.Size, epoch, epoch+1)
	}
	if s.head, err = format.ParseEpochHead(f.head); err != nil {
		return s, fail(CheckHead, "%v", err)
	}
	h := s.head
	if h.Realm != v.realm.Realm {
		return s, fail(CheckRealm, "head of realm %q, want %q", h.Realm, v.realm.Realm)
	}
	if h.Epoch != epoch {
		return s, fail(CheckEpoch, "head of epoch %d delivered as epoch %d", h.Epoch, epoch)
	}
	if uint64(len(f.records)) != h.UpdateCount {
		return s, fail(CheckCount, "%d records, but the head counts %d updates", len(f.records), h.UpdateCount)
	}
	for i, rec := range f.records {
		_, e, err := format.ParseLogRecord(rec)
		if err != nil {
			return s, fail(CheckRecords, "record %d: %v", i, err)
		}
		if e.Realm != v.realm.Realm {
			return s, fail(CheckRecords, "record %d is an entry of realm %q", i, e.Realm)
		}
	}
	if got := format.UpdatesRoot(f.records); got != h.UpdatesRoot {
		return s, fail(CheckUpdatesRoot, "the records' updates root is %x, the head says %x", got, h.UpdatesRoot)
	}
	// Every rule of format.Bundle is now checked; this is the safety net
	// that keeps the verifier from accepting what the format refuses.
	if _, err := format.ParseBundle(data); err != nil {
		return s, fail(CheckBundle, "%v", err)
	}
	return s, nil
}

// logSigned reports whether noteBytes carries a valid signature by the
// realm's log key, whatever else is wrong with it: evidence is attributable
// to the keyserver only then.
func (v *Verifier) logSigned(noteBytes []byte) bool {
	_, err := note.Open(noteBytes, note.VerifierList(v.logVerifier))
	return err == nil
}
