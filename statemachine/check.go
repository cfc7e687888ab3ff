package statemachine

import (
	"bytes"
	"fmt"

	"github.com/conifer-kt/conifer/format"
)

// Decision is a record Check accepted, with what the caller needs to store
// it.
type Decision struct {
	// Index is the entry's index: the user's tree key.
	Index [32]byte
	// Version is the entry's version.
	Version uint64
	// EntryHash is format.EntryHash of the entry: the next version's Prev.
	EntryHash [32]byte
	// Tombstone is set if the entry erases the user.
	Tombstone bool
	// SignedEntry is the record's encoded format.SignedEntry (the record
	// without its registration); it does not alias the record.
	SignedEntry []byte
	// Record and Entry are the parsed record and entry.
	Record *format.LogRecord
	Entry  *format.Entry
}

// Check decides one record against a user's newest entry without touching
// the tree, by exactly the rules Apply uses: the update function runs it
// before logging a record, so that what it accepts the epoch accepts too
// (given the same previous entry). prev is the encoded format.SignedEntry
// of the user's newest entry, nil if the index has none.
//
// Check does not know which index the caller looked prev up by; it checks
// that the record's entry has prev's index (else WrongIndex), and the
// caller must check that prev belongs to the index it means (for the
// update function: the VRF index of the user id), and, for a user with no
// entry, that the record's index is that index.
//
// A refused record returns a *Rejection (errors.Is(err, ErrRejected)).
// Invalid rules return an error wrapping ErrInvalidInput, a prev that is
// not a canonical signed entry one wrapping ErrInconsistent.
func Check(rules Rules, prev []byte, record []byte) (*Decision, error) {
	rs, err := newRuleSet(rules)
	if err != nil {
		return nil, err
	}
	var cur *current
	if prev != nil {
		s, e, err := format.ParseSignedEntry(prev)
		if err != nil {
			return nil, fmt.Errorf("%w: couldn't parse previous signed entry: %w", ErrInconsistent, err)
		}
		cur = &current{entry: e, hash: format.EntryHash(s.Entry)}
	}
	r := parseRecord(0, record)
	if rej := rs.decide(cur, r); rej != nil {
		return nil, rej
	}
	return &Decision{
		Index:       r.entry.Index,
		Version:     r.entry.Version,
		EntryHash:   r.hash,
		Tombstone:   r.entry.Tombstone,
		SignedEntry: bytes.Clone(r.signed),
		Record:      r.lr,
		Entry:       r.entry,
	}, nil
}
