package format

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every parse or validation failure is an *Error whose Kind
// is one of ErrTruncated, ErrTrailingData, ErrTooLarge, ErrNotCanonical or
// ErrInvalid, all of which wrap ErrMalformed, so
// errors.Is(err, ErrMalformed) holds for any bad encoding or value (an edge
// maps it to "400 Bad Request").
var (
	// ErrMalformed is wrapped by every parse and validation error.
	ErrMalformed = errors.New("malformed")
	// ErrTruncated means the input ended inside a field.
	ErrTruncated = fmt.Errorf("%w: truncated", ErrMalformed)
	// ErrTrailingData means bytes followed a complete encoding.
	ErrTrailingData = fmt.Errorf("%w: trailing data", ErrMalformed)
	// ErrTooLarge means a length, count or total size exceeds its cap.
	ErrTooLarge = fmt.Errorf("%w: too large", ErrMalformed)
	// ErrNotCanonical means the value is meaningful but not in its single
	// canonical form (order, duplicates, padding, boolean bytes other than
	// 0 and 1, non-canonical key encodings).
	ErrNotCanonical = fmt.Errorf("%w: not canonical", ErrMalformed)
	// ErrInvalid means a value breaks a rule of its format (charset, range,
	// a field that must or must not be zero, an impossible threshold).
	ErrInvalid = fmt.Errorf("%w: invalid", ErrMalformed)

	// ErrInvalidTransition means an entry cannot follow the previous entry
	// of the same user (see CheckTransition). It is not an ErrMalformed:
	// both entries may be well-formed.
	ErrInvalidTransition = errors.New("invalid transition")
	// ErrQuorumNotMet means the signatures do not satisfy a policy (see
	// Policy.Verify and VerifyUpdateSignatures).
	ErrQuorumNotMet = errors.New("quorum not met")
	// ErrRegistrationNotAuthorized means a registrar authorisation is not a
	// valid signature by one of the realm's registrar keys.
	ErrRegistrationNotAuthorized = errors.New("registration not authorized")
)

// Error is a parse, validation or transition error. It names the field at
// fault as a path from the outermost format, e.g.
//
//	format: entry.policy.keys[2]: keys not in strictly increasing key-id order
type Error struct {
	// Field is the dotted path of the offending field, starting with the
	// name of the outermost format ("entry", "log_record", "bundle", ...).
	Field string
	// Reason says what is wrong, in words.
	Reason string
	// Kind is the sentinel the error wraps: ErrTruncated, ErrTrailingData,
	// ErrTooLarge, ErrNotCanonical, ErrInvalid or ErrInvalidTransition.
	Kind error
}

// Error returns "format: <field>: <reason>".
func (e *Error) Error() string {
	return "format: " + e.Field + ": " + e.Reason
}

// Unwrap returns e.Kind, so errors.Is matches the kind and ErrMalformed.
func (e *Error) Unwrap() error { return e.Kind }

// newError returns an *Error. Field paths are relative to the format being
// parsed; callers add their own prefix with within.
func newError(kind error, field, reason string, args ...any) *Error {
	if len(args) > 0 {
		reason = fmt.Sprintf(reason, args...)
	}
	return &Error{Field: field, Reason: reason, Kind: kind}
}

func truncated(field string) *Error {
	return newError(ErrTruncated, field, "input ends inside the field")
}

func trailing(field string, n int) *Error {
	return newError(ErrTrailingData, field, "trailing data after the encoding (%d bytes)", n)
}

// within prefixes the field of an *Error with prefix ("entry" turns
// "policy.keys[2]" into "entry.policy.keys[2]"). Other errors pass through.
func within(err error, prefix string) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	field := prefix
	if e.Field != "" {
		field = prefix + "." + e.Field
	}
	return &Error{Field: field, Reason: e.Reason, Kind: e.Kind}
}
