package statemachine

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
)

// Sentinel errors. Rejections of individual records are not errors of
// Apply (they are listed in Output.Rejected); these are.
var (
	// ErrInvalidInput means Apply or Check was called with arguments that
	// can never produce an epoch: invalid Rules, epoch 0, more records than
	// an epoch head can count.
	ErrInvalidInput = errors.New("statemachine: invalid input")
	// ErrInconsistent means the stored state disagrees with itself or with
	// the tree: Entries returned a user state whose leaf record is not the
	// tree's value at that index (or a user the tree does not hold, or none
	// for one it does), a leaf record that does not name its entry, or an
	// entry at another index or realm. The epoch cannot be made from such a
	// store; nothing is written for it.
	ErrInconsistent = errors.New("statemachine: stored state is inconsistent with the tree")
	// ErrRejected is wrapped by every *Rejection, the error Check returns
	// for a record the rules refuse.
	ErrRejected = errors.New("statemachine: record rejected")
)

// Rules are the parts of the realm config the state machine enforces. The
// keyserver and every verifier must use the same Rules for an epoch, or
// they will decide its records differently.
type Rules struct {
	// Realm is the realm's name: every entry must carry exactly it.
	Realm string
	// Registrars are the Ed25519 public keys whose signature over
	// format.RegistrationMessage authorises a registration. Each must be a
	// canonical, not small-order 32-byte key (as policy keys must be), and
	// none may repeat.
	Registrars []ed25519.PublicKey
	// OIDCIssuers are the issuers whose server-attested OIDC registration
	// markers are accepted, compared byte for byte with the marker's
	// issuer. None may be empty or repeat.
	OIDCIssuers []string
}

// RulesFromRealm returns the rules of a realm config. It fails if the
// config names a registrar key that could never safely verify a signature
// (wrong length, non-canonical or of small order: under a small-order key
// anyone can forge a registration) or repeats a registrar or issuer.
func RulesFromRealm(c *realm.Config) (Rules, error) {
	r := Rules{Realm: c.Realm}
	for _, k := range c.Registration.Registrars {
		r.Registrars = append(r.Registrars, ed25519.PublicKey(bytes.Clone(k)))
	}
	for _, p := range c.Registration.OIDC {
		r.OIDCIssuers = append(r.OIDCIssuers, p.Issuer)
	}
	if err := r.Validate(); err != nil {
		return Rules{}, err
	}
	return r, nil
}

// Validate checks the rules: a valid realm name (the entry grammar's:
// 1..128 bytes of [A-Za-z0-9._/:-]), registrar keys as a policy would
// accept them, no repeated registrar or issuer, no empty issuer. Errors
// wrap ErrInvalidInput.
func (r *Rules) Validate() error {
	if !realm.ValidRealmName(r.Realm) || len(r.Realm) > format.MaxRealmLen {
		return fmt.Errorf("%w: rules: realm %q is not 1..%d bytes of [A-Za-z0-9._/:-]", ErrInvalidInput, r.Realm, format.MaxRealmLen)
	}
	for i, k := range r.Registrars {
		// A one-key policy applies exactly the checks a policy key gets.
		p := format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{k}}
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%w: rules: registrars[%d]: %w", ErrInvalidInput, i, err)
		}
		for j := range i {
			if bytes.Equal(r.Registrars[j], k) {
				return fmt.Errorf("%w: rules: registrars[%d] repeats registrars[%d]", ErrInvalidInput, i, j)
			}
		}
	}
	for i, iss := range r.OIDCIssuers {
		if iss == "" {
			return fmt.Errorf("%w: rules: oidc_issuers[%d] is empty", ErrInvalidInput, i)
		}
		for j := range i {
			if r.OIDCIssuers[j] == iss {
				return fmt.Errorf("%w: rules: oidc_issuers[%d] repeats oidc_issuers[%d]", ErrInvalidInput, i, j)
			}
		}
	}
	return nil
}

// acceptsIssuer reports whether iss is one of the rules' OIDC issuers.
func (r *Rules) acceptsIssuer(iss string) bool {
	for _, a := range r.OIDCIssuers {
		if a == iss {
			return true
		}
	}
	return false
}

// RejectCode says which rule refused a record. The numeric values are
// stable: they are stored and sent to verifiers, and a code's meaning never
// changes (new rules get new codes).
type RejectCode uint8

// Reject codes, in the order the rules are checked (see the package doc).
const (
	// Malformed: the record is not a canonical format.LogRecord.
	Malformed RejectCode = 1
	// WrongRealm: the entry's realm is not the rules' realm.
	WrongRealm RejectCode = 2
	// WrongIndex: the entry's index differs from the previous entry's
	// (only Check can see this; Apply looks users up by the entry's index).
	WrongIndex RejectCode = 3
	// NotRegistered: a version > 1 entry for an index with no entry.
	NotRegistered RejectCode = 4
	// RegistrationTombstone: a registration (version 1) that is a
	// tombstone.
	RegistrationTombstone RejectCode = 5
	// Registration: the registration is not authorised: its registrar
	// signature is not a valid signature by a key in Rules.Registrars, or
	// its OIDC issuer is not in Rules.OIDCIssuers.
	Registration RejectCode = 6
	// AlreadyRegistered: a registration (version 1) for an index that
	// already has an entry (tombstoned users included).
	AlreadyRegistered RejectCode = 7
	// StaleVersion: version ≤ the current version (a replay, or an update
	// that lost a race).
	StaleVersion RejectCode = 8
	// VersionGap: version > the current version + 1.
	VersionGap RejectCode = 9
	// WrongPrev: prev is not the hash of the current entry.
	WrongPrev RejectCode = 10
	// QuorumOld: the signatures do not meet the current entry's policy.
	QuorumOld RejectCode = 11
	// QuorumNew: the signatures do not meet the new entry's own policy.
	QuorumNew RejectCode = 12
)

var rejectCodeNames = [...]string{
	Malformed:             "malformed",
	WrongRealm:            "wrong-realm",
	WrongIndex:            "wrong-index",
	NotRegistered:         "not-registered",
	RegistrationTombstone: "registration-tombstone",
	Registration:          "registration-not-authorized",
	AlreadyRegistered:     "already-registered",
	StaleVersion:          "stale-version",
	VersionGap:            "version-gap",
	WrongPrev:             "wrong-prev",
	QuorumOld:             "quorum-old",
	QuorumNew:             "quorum-new",
}

// String returns the code's stable name ("wrong-prev"), or "code(N)".
func (c RejectCode) String() string {
	if int(c) < len(rejectCodeNames) && rejectCodeNames[c] != "" {
		return rejectCodeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Rejection is why a record was refused: which rule, and a reason in words
// that names the rule and the values involved. Check returns it as its
// error; errors.Is(err, ErrRejected) holds for it.
type Rejection struct {
	Code   RejectCode
	Reason string
}

// Error returns "statemachine: record rejected (<code>): <reason>".
func (r *Rejection) Error() string {
	return fmt.Sprintf("%v (%v): %s", ErrRejected, r.Code, r.Reason)
}

// Unwrap returns ErrRejected.
func (r *Rejection) Unwrap() error { return ErrRejected }

func reject(code RejectCode, reason string, args ...any) *Rejection {
	return &Rejection{Code: code, Reason: fmt.Sprintf(reason, args...)}
}
