package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/conifer-kt/conifer/api"
)

// ErrVerification is wrapped by every sentinel below: errors.Is(err,
// ErrVerification) holds exactly when the server's answer failed a check
// (as opposed to a network, server or usage error).
var ErrVerification = errors.New("verification failed")

// Verification sentinels, one per check. VerifyLookup, VerifyHistory and the
// Client return them inside an *Error, in the order the package
// documentation lists the checks.
var (
	// ErrWrongRealm: the answer names another realm, or its checkpoint has
	// another origin.
	ErrWrongRealm = fmt.Errorf("%w: wrong realm", ErrVerification)
	// ErrWrongUser: the answer names another user id than the one asked
	// for.
	ErrWrongUser = fmt.Errorf("%w: wrong user", ErrVerification)
	// ErrCheckpointSignature: the checkpoint note is malformed, or not
	// validly signed by the pinned keyserver key.
	ErrCheckpointSignature = fmt.Errorf("%w: checkpoint signature", ErrVerification)
	// ErrCosignature: a co-signature by a pinned verifier key does not
	// verify (a forged co-signature rejects the whole note).
	ErrCosignature = fmt.Errorf("%w: invalid co-signature", ErrVerification)
	// ErrVerifierQuorum: fewer distinct pinned verifiers co-signed the
	// checkpoint than the quorum demanded.
	ErrVerifierQuorum = fmt.Errorf("%w: verifier quorum not met", ErrVerification)
	// ErrHeadInclusion: the epoch head is not proven to be leaf Epoch of
	// the checkpoint's epoch log (bad proof, epoch beyond the log, or a
	// checkpoint size that disagrees with the note).
	ErrHeadInclusion = fmt.Errorf("%w: epoch head not in the checkpoint", ErrVerification)
	// ErrHead: the (included) epoch head is malformed, of another realm, or
	// of another epoch than claimed or asked for.
	ErrHead = fmt.Errorf("%w: wrong epoch head", ErrVerification)
	// ErrHeadTooOld: the epoch head is older than the realm's MaxHeadAge.
	ErrHeadTooOld = fmt.Errorf("%w: epoch head too old", ErrVerification)
	// ErrHeadInFuture: the epoch head's time is more than MaxClockSkew
	// ahead of the client's clock.
	ErrHeadInFuture = fmt.Errorf("%w: epoch head from the future", ErrVerification)
	// ErrVRF: the VRF proof does not verify for (realm, user id), or its
	// output is not the claimed index.
	ErrVRF = fmt.Errorf("%w: VRF proof", ErrVerification)
	// ErrTreeProof: the tree proof is malformed or does not prove the leaf
	// record's hash (or the index's absence) under the head's tree root.
	ErrTreeProof = fmt.Errorf("%w: tree proof", ErrVerification)
	// ErrLeafRecord: the leaf record is malformed or dated after the head.
	ErrLeafRecord = fmt.Errorf("%w: leaf record", ErrVerification)
	// ErrEntry: the signed entry is malformed, missing, present for an
	// absent user, not the entry the leaf record names, or of another realm
	// or index.
	ErrEntry = fmt.Errorf("%w: entry", ErrVerification)
	// ErrProfileCommitment: the profile and opening do not match the
	// entry's commitment (or are present for a tombstone or an absent
	// user), or the committed profile is malformed.
	ErrProfileCommitment = fmt.Errorf("%w: profile commitment", ErrVerification)
	// ErrHistoryChain: the history records do not form the chain that ends
	// in the proven leaf record: a malformed record, a broken previous-record
	// hash, a version or previous-entry mismatch, epochs out of order, or a
	// missing or extra record.
	ErrHistoryChain = fmt.Errorf("%w: history chain", ErrVerification)
	// ErrHistorySignature: a version in the history is not signed by the
	// quorums of the previous and its own update policy.
	ErrHistorySignature = fmt.Errorf("%w: history signatures", ErrVerification)
	// ErrRollback: the server answered with a checkpoint older than the
	// newest one this client verified and could not prove it a prefix of it.
	ErrRollback = fmt.Errorf("%w: rollback", ErrVerification)
	// ErrFork: two checkpoints signed by the keyserver cannot both be true:
	// the same size with different roots, or a newer checkpoint the server
	// could not prove consistent with the one this client remembers.
	ErrFork = fmt.Errorf("%w: fork", ErrVerification)
)

// ErrUpdateNotApplied means a waited-for update's verified lookup shows an
// older version, or a different entry at the update's version: the update
// lost a race or was rejected when its epoch was cut. It is not evidence of
// misbehaviour.
var ErrUpdateNotApplied = errors.New("update not applied")

// Error is a verification failure: Check is the sentinel of the check that
// failed (it wraps ErrVerification), Err the underlying cause if any, and
// Evidence what the server sent, for reporting.
type Error struct {
	Check    error
	Err      error
	Evidence *Evidence
	// EvidenceFile is where the Client wrote Evidence, if it was
	// configured to (WithEvidenceDir).
	EvidenceFile string
}

// Error returns "client: <check>: <cause>".
func (e *Error) Error() string {
	if e.Err == nil {
		return "client: " + e.Check.Error()
	}
	return "client: " + e.Check.Error() + ": " + e.Err.Error()
}

// Unwrap returns the check's sentinel and the cause, so errors.Is matches
// both (e.g. ErrTreeProof and tree.ErrProofMismatch).
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Check}
	}
	return []error{e.Check, e.Err}
}

// fail returns an *Error for check with a formatted cause.
func fail(check error, ev *Evidence, format string, args ...any) *Error {
	return &Error{Check: check, Err: fmt.Errorf(format, args...), Evidence: ev}
}

// Evidence is what a client keeps when an answer fails verification: the
// signed material it received, so that a user can show others what the
// keyserver signed. It is JSON (bytes as base64) and self-contained.
type Evidence struct {
	// Time is the client's clock when the failure was seen.
	Time time.Time `json:"time"`
	// Realm is the pinned realm name; Server the base URL asked, if any.
	Realm  string `json:"realm"`
	Server string `json:"server,omitempty"`
	// Check and Error are the failed check's sentinel text and the full
	// error message.
	Check string `json:"check"`
	Error string `json:"error"`
	// Checkpoints are the signed checkpoint notes involved: for a fork or
	// rollback, the remembered one first, then the new one.
	Checkpoints [][]byte `json:"checkpoints,omitempty"`
	// ConsistencyFrom, ConsistencyTo and ConsistencyProof are the
	// consistency proof the server gave, if any.
	ConsistencyFrom  uint64   `json:"consistency_from,omitempty"`
	ConsistencyTo    uint64   `json:"consistency_to,omitempty"`
	ConsistencyProof [][]byte `json:"consistency_proof,omitempty"`
	// Lookup, History and Head are the answer that failed, when the check
	// was about one.
	Lookup  *api.LookupProof     `json:"lookup,omitempty"`
	History *api.HistoryResponse `json:"history,omitempty"`
	Head    *api.HeadResponse    `json:"head,omitempty"`
	// Note is free text added by the caller (e.g. the conifer monitor's
	// record of its own updates).
	Note string `json:"note,omitempty"`
}

// Marshal encodes the evidence as indented JSON.
func (ev *Evidence) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("couldn't encode evidence: %w", err)
	}
	return append(b, '\n'), nil
}

// ServerError is a non-2xx answer from the server (an api.Error document),
// or an answer the client could not decode.
type ServerError struct {
	// URL is the request URL; Status the HTTP status (0 if the body, not
	// the status, was at fault).
	URL    string
	Status int
	// Code and Message come from the api.Error body, if there was one.
	Code    string
	Message string
	// RetryAfter is the Retry-After of a 429 or 503.
	RetryAfter time.Duration
	// Receipt is set when an update that asked to wait timed out (504)
	// after being appended to the log.
	Receipt *api.Receipt
}

// Error describes the failure.
func (e *ServerError) Error() string {
	var b strings.Builder
	b.WriteString("server error")
	if e.Status != 0 {
		fmt.Fprintf(&b, " %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.URL != "" {
		b.WriteString(" [" + e.URL + "]")
	}
	return b.String()
}

// Server status sentinels, matched by errors.Is against a *ServerError.
var (
	// ErrNotFound: 404, an unknown user, epoch or history.
	ErrNotFound = errors.New("not found")
	// ErrStaleVersion: 409, the update's version is not the next one.
	ErrStaleVersion = errors.New("stale version")
	// ErrUnauthorized: 403, signatures or registration not accepted.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrWaitTimeout: 504, the server gave up waiting for an epoch; the
	// update is in the log (see ServerError.Receipt).
	ErrWaitTimeout = errors.New("wait timed out")
)

// Is reports whether e has the status target stands for.
func (e *ServerError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrStaleVersion:
		return e.Status == http.StatusConflict
	case ErrUnauthorized:
		return e.Status == http.StatusForbidden
	case ErrWaitTimeout:
		return e.Status == http.StatusGatewayTimeout
	}
	return false
}
