package format

import (
	"encoding/binary"
	"math"
)

// Entry limits.
const (
	// MaxRealmLen is the longest realm name, in bytes.
	MaxRealmLen = 128
	// MaxEntrySize is the longest possible encoded entry (derived from
	// MaxRealmLen and MaxPolicySize): 1646 bytes.
	MaxEntrySize = 1 + MaxRealmLen + 32 + 8 + 32 + MaxPolicySize + 1 + 32
)

// Entry is one version of a user's record, signed by the user's devices or
// app backend. The tree stores it only through its hash (in a LeafRecord).
//
// Rules (Validate): Realm is 1..128 bytes of [A-Za-z0-9._/:-]; Version >= 1;
// Prev is all zero if and only if Version is 1; Policy is valid; Commitment
// is all zero if and only if Tombstone is set.
type Entry struct {
	// Realm names the keyserver deployment; it is also the origin line of
	// the realm's checkpoints. Signing it prevents replay across realms.
	Realm string
	// Index is the user's tree key: the first 32 bytes of the VRF output
	// for the user id. Signing it prevents replay across users.
	Index [32]byte
	// Version counts the user's entries from 1 (the registration).
	Version uint64
	// Prev is EntryHash of the previous version, all zero for version 1.
	Prev [32]byte
	// Policy decides who may sign the next version.
	Policy Policy
	// Tombstone marks an erased user: the profile and its opening are
	// deleted and Commitment is all zero. A later version may revive the
	// user; it needs the tombstone's policy quorum like any update.
	Tombstone bool
	// Commitment is CommitProfile(opening, profile), all zero for a
	// tombstone.
	Commitment [32]byte
}

// Marshal validates e and returns its canonical encoding:
//
//	struct {
//	    uint8  realm_len;  opaque realm[realm_len]; /* 1..128 bytes of [A-Za-z0-9._/:-] */
//	    opaque index[32];                           /* VRF-derived tree key */
//	    uint64 version;                             /* >= 1 */
//	    opaque prev[32];                            /* zero iff version == 1 */
//	    Policy policy;                              /* the update policy */
//	    uint8  tombstone;                           /* 0 or 1 */
//	    opaque commitment[32];                      /* zero iff tombstone == 1 */
//	} Entry;                                        /* total <= 1646 bytes */
func (e *Entry) Marshal() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, within(err, "entry")
	}
	return e.appendTo(make([]byte, 0, e.size())), nil
}

func (e *Entry) size() int {
	return 1 + len(e.Realm) + 32 + 8 + 32 + e.Policy.size() + 1 + 32
}

func (e *Entry) appendTo(b []byte) []byte {
	b = append(b, byte(len(e.Realm)))
	b = append(b, e.Realm...)
	b = append(b, e.Index[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Version)
	b = append(b, e.Prev[:]...)
	b = appendPolicy(b, &e.Policy)
	b = append(b, boolByte(e.Tombstone))
	return append(b, e.Commitment[:]...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// ParseEntry parses a canonical encoded entry. The result does not alias b.
func ParseEntry(b []byte) (*Entry, error) {
	e, err := parseEntry(clone(b))
	if err != nil {
		return nil, within(err, "entry")
	}
	return e, nil
}

// parseEntry parses and validates b, which it may alias.
func parseEntry(b []byte) (*Entry, error) {
	if len(b) > MaxEntrySize {
		return nil, newError(ErrTooLarge, "", "%d bytes, more than %d", len(b), MaxEntrySize)
	}
	r := reader{b}
	e := &Entry{}
	var realmLen uint8
	var realm []byte
	if !r.u8(&realmLen) || !r.bytes(&realm, int(realmLen)) {
		return nil, truncated("realm")
	}
	e.Realm = string(realm)
	if !r.copyTo(e.Index[:]) {
		return nil, truncated("index")
	}
	if !r.u64(&e.Version) {
		return nil, truncated("version")
	}
	if !r.copyTo(e.Prev[:]) {
		return nil, truncated("prev")
	}
	p, err := parsePolicy(&r, 1)
	if err != nil {
		return nil, within(err, "policy")
	}
	e.Policy = *p
	ok, bad := r.bool(&e.Tombstone)
	if !ok {
		return nil, truncated("tombstone")
	}
	if bad {
		return nil, newError(ErrNotCanonical, "tombstone", "boolean byte is not 0 or 1")
	}
	if !r.copyTo(e.Commitment[:]) {
		return nil, truncated("commitment")
	}
	if !r.empty() {
		return nil, trailing("", len(r.b))
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// Validate checks the rules of the Entry grammar. Field names in the error
// are relative to the entry.
func (e *Entry) Validate() error {
	if err := checkRealm(e.Realm); err != nil {
		return within(err, "realm")
	}
	if e.Version == 0 {
		return newError(ErrInvalid, "version", "version 0; versions start at 1")
	}
	if e.Version == 1 && !isZero32(e.Prev) {
		return newError(ErrInvalid, "prev", "version 1 (a registration) must have an all-zero prev")
	}
	if e.Version > 1 && isZero32(e.Prev) {
		return newError(ErrInvalid, "prev", "version %d must name its previous entry; prev is all zero", e.Version)
	}
	if err := e.Policy.Validate(); err != nil {
		return within(err, "policy")
	}
	if e.Tombstone && !isZero32(e.Commitment) {
		return newError(ErrInvalid, "commitment", "a tombstone must have an all-zero commitment")
	}
	if !e.Tombstone && isZero32(e.Commitment) {
		return newError(ErrInvalid, "commitment", "all-zero commitment on an entry that is not a tombstone")
	}
	return nil
}

// checkRealm checks that realm is 1..128 bytes of [A-Za-z0-9._/:-].
func checkRealm(realm string) error {
	if len(realm) == 0 {
		return newError(ErrInvalid, "", "empty realm")
	}
	if len(realm) > MaxRealmLen {
		return newError(ErrTooLarge, "", "realm is %d bytes, more than %d", len(realm), MaxRealmLen)
	}
	for i := 0; i < len(realm); i++ {
		c := realm[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '/' || c == ':' || c == '-') {
			return newError(ErrInvalid, "", "byte 0x%02x at offset %d is not in [A-Za-z0-9._/:-]", c, i)
		}
	}
	return nil
}

// CheckTransition checks the rules an entry must follow beyond its own
// validity, except signatures (see VerifyUpdateSignatures) and registration
// authorisation (see Registration):
//
//   - old == nil (no entry yet for this index): next is a registration:
//     Version 1, Prev all zero, not a tombstone.
//   - otherwise: next has the same Realm and Index as old,
//     next.Version == old.Version + 1, and next.Prev == oldHash, where
//     oldHash must be EntryHash of old's encoding.
//
// Both entries must be valid (next is validated here). Transition errors
// wrap ErrInvalidTransition; an invalid next wraps ErrMalformed.
func CheckTransition(old *Entry, oldHash [32]byte, next *Entry) error {
	if err := next.Validate(); err != nil {
		return within(err, "entry")
	}
	if old == nil {
		if next.Version != 1 {
			return newError(ErrInvalidTransition, "entry.version", "version %d for a user with no entry; a registration has version 1", next.Version)
		}
		if next.Tombstone {
			return newError(ErrInvalidTransition, "entry.tombstone", "a registration cannot be a tombstone")
		}
		return nil
	}
	if next.Realm != old.Realm {
		return newError(ErrInvalidTransition, "entry.realm", "realm %q differs from the previous entry's %q", next.Realm, old.Realm)
	}
	if next.Index != old.Index {
		return newError(ErrInvalidTransition, "entry.index", "index differs from the previous entry's")
	}
	if old.Version == math.MaxUint64 {
		return newError(ErrInvalidTransition, "entry.version", "the previous version is the last possible one")
	}
	if next.Version != old.Version+1 {
		return newError(ErrInvalidTransition, "entry.version", "version %d, want %d (previous version + 1)", next.Version, old.Version+1)
	}
	if next.Prev != oldHash {
		return newError(ErrInvalidTransition, "entry.prev", "prev %x is not the previous entry's hash %x", next.Prev[:], oldHash[:])
	}
	return nil
}
