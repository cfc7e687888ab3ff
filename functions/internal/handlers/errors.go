package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/functions/internal/oidc"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/statemachine"
)

// Error codes (api.Error.Code). They are stable: clients branch on them.
const (
	CodeMalformed         = "malformed"           // 400: a body, parameter or encoding is not valid
	CodeWrongRealm        = "wrong_realm"         // 400: the entry is for another realm
	CodeWrongIndex        = "wrong_index"         // 400: the entry's index is not the VRF index of the user id
	CodeCommitment        = "commitment_mismatch" // 400: profile and opening do not open the entry's commitment
	CodeRegistrationTomb  = "registration_tombstone"
	CodeBadSignature      = "bad_signature"  // 400: a co-signature does not verify
	CodeQuorum            = "quorum_not_met" // 403: the signatures do not meet a policy
	CodeRegistration      = "registration_not_authorized"
	CodeIDToken           = "id_token_rejected"  // 403: the ID token fails a check
	CodeUnknownVerifier   = "unknown_verifier"   // 403: a co-signature by a key not in the realm
	CodeNotFound          = "not_found"          // 404
	CodeMethod            = "method_not_allowed" // 405
	CodeStaleVersion      = "stale_version"      // 409: version ≤ the current one
	CodeVersionGap        = "version_gap"        // 409: version > the current one + 1
	CodeWrongPrev         = "wrong_prev"         // 409: prev is not the current entry's hash
	CodeAlreadyRegistered = "already_registered" // 409
	CodeNotRegistered     = "not_registered"     // 409: an update for a user with no entry
	CodeUpdateRejected    = "update_rejected"    // 409: the epoch refused a logged update
	CodeErased            = "erased"             // 410: the profile of that version was erased
	CodeTooLarge          = "too_large"          // 413
	CodeRateLimited       = "rate_limited"       // 429
	CodeInternal          = "internal"           // 500
	CodeOverloaded        = "overloaded"         // 503: the instance's concurrency cap
	CodeUnavailable       = "unavailable"        // 503: the database or a provider is unreachable
	CodeNotCosigned       = "not_cosigned"       // 503: no epoch has the co-signatures asked for yet
	CodeNotConfigured     = "not_configured"     // 503: the instance lacks what this endpoint needs
	CodeWaitTimeout       = "wait_timeout"       // 504 (the body is the UpdateResponse with the receipt)
)

// httpError is an error with its HTTP answer. Handlers return it; the
// edge (serve) writes it as an api.Error.
type httpError struct {
	status     int
	code       string
	msg        string
	retryAfter int   // seconds, for 429 and 503
	cause      error // logged, never sent
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }
func (e *httpError) Unwrap() error { return e.cause }

func errorf(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// rejection maps a statemachine rejection to its HTTP answer.
func rejection(r *statemachine.Rejection) *httpError {
	status, code := http.StatusBadRequest, CodeMalformed
	switch r.Code {
	case statemachine.Malformed:
	case statemachine.WrongRealm:
		code = CodeWrongRealm
	case statemachine.WrongIndex:
		code = CodeWrongIndex
	case statemachine.RegistrationTombstone:
		code = CodeRegistrationTomb
	case statemachine.Registration:
		status, code = http.StatusForbidden, CodeRegistration
	case statemachine.QuorumOld, statemachine.QuorumNew:
		status, code = http.StatusForbidden, CodeQuorum
	case statemachine.StaleVersion:
		status, code = http.StatusConflict, CodeStaleVersion
	case statemachine.VersionGap:
		status, code = http.StatusConflict, CodeVersionGap
	case statemachine.WrongPrev:
		status, code = http.StatusConflict, CodeWrongPrev
	case statemachine.AlreadyRegistered:
		status, code = http.StatusConflict, CodeAlreadyRegistered
	case statemachine.NotRegistered:
		status, code = http.StatusConflict, CodeNotRegistered
	default:
		status, code = http.StatusBadRequest, "rejected_"+r.Code.String()
	}
	return &httpError{status: status, code: code, msg: r.Reason}
}

// classify turns any error of a handler into its HTTP answer: httpErrors
// as they are, rejections by their rule, ID token failures 403/503, the
// store's sentinels, and transient database or deadline errors 503; the
// rest is 500 (the message sent says nothing about internals; the cause
// is logged).
func classify(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var rej *statemachine.Rejection
	if errors.As(err, &rej) {
		return rejection(rej)
	}
	var tokErr *oidc.Error
	switch {
	case errors.As(err, &tokErr):
		return &httpError{status: http.StatusForbidden, code: CodeIDToken, msg: tokErr.Error()}
	case errors.Is(err, oidc.ErrUnavailable):
		return &httpError{status: http.StatusServiceUnavailable, code: CodeUnavailable, msg: "the OpenID provider could not be reached; try again", retryAfter: 5, cause: err}
	case errors.Is(err, storage.ErrNotFound):
		return &httpError{status: http.StatusNotFound, code: CodeNotFound, msg: "not found", cause: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &httpError{status: http.StatusServiceUnavailable, code: CodeUnavailable, msg: "the request ran out of time", retryAfter: 1, cause: err}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		return &httpError{status: http.StatusServiceUnavailable, code: CodeUnavailable, msg: "the database is busy or unreachable; try again", retryAfter: 1, cause: err}
	}
	return &httpError{status: http.StatusInternalServerError, code: CodeInternal, msg: "internal error", cause: err}
}

// writeError writes e as an api.Error, with Retry-After where it applies.
func writeError(w http.ResponseWriter, e *httpError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, e.status, &api.Error{Code: e.code, Message: e.msg, RetryAfterSeconds: e.retryAfter})
}

// writeJSON writes v as the JSON body of a response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"internal","error":"couldn't encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// logLevel is the level an error answer is logged at: server faults are
// errors, client mistakes info.
func logLevel(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}
