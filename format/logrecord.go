package format

import (
	"crypto/sha256"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// MaxLogRecordSize is the longest possible encoded LogRecord:
// 6257 + 259 = 6516 bytes (well under the 16 KiB budget of the design).
const MaxLogRecordSize = MaxSignedEntrySize + MaxRegistrationSize

// LogRecord is one sequenced update: the unit an epoch replays, that
// verifiers receive, and whose encodings UpdatesRoot commits to.
type LogRecord struct {
	// SignedEntry is the update as submitted.
	SignedEntry SignedEntry
	// Registration authorises a registration; it is present if and only if
	// the entry's version is 1.
	Registration *Registration
}

// Marshal validates l and returns its canonical encoding:
//
//	struct {
//	    SignedEntry signed_entry;
//	    select (signed_entry.entry.version) {
//	        case 1:  Registration registration;
//	        default: struct {};               /* nothing */
//	    };
//	} LogRecord;                              /* total <= 6516 bytes */
//
// The presence of the registration follows from the entry's version, so no
// flag byte encodes it.
func (l *LogRecord) Marshal() ([]byte, error) {
	if _, err := l.validate(); err != nil {
		return nil, within(err, "log_record")
	}
	n := l.SignedEntry.size()
	if l.Registration != nil {
		n += l.Registration.size()
	}
	b := l.SignedEntry.appendTo(make([]byte, 0, n))
	if l.Registration != nil {
		b = l.Registration.appendTo(b)
	}
	return b, nil
}

// ParseLogRecord parses a canonical encoded LogRecord and returns it with its
// parsed entry. The results do not alias b.
func ParseLogRecord(b []byte) (*LogRecord, *Entry, error) {
	l, e, err := parseLogRecord(clone(b))
	if err != nil {
		return nil, nil, within(err, "log_record")
	}
	return l, e, nil
}

// parseLogRecord parses and validates b, which it may alias.
func parseLogRecord(b []byte) (*LogRecord, *Entry, error) {
	if len(b) > MaxLogRecordSize {
		return nil, nil, newError(ErrTooLarge, "", "%d bytes, more than %d", len(b), MaxLogRecordSize)
	}
	r := reader{b}
	s, e, err := parseSignedEntry(&r)
	if err != nil {
		return nil, nil, within(err, "signed_entry")
	}
	l := &LogRecord{SignedEntry: *s}
	if e.Version == 1 {
		reg, err := parseRegistration(&r)
		if err != nil {
			return nil, nil, within(err, "registration")
		}
		l.Registration = reg
	}
	if !r.empty() {
		return nil, nil, trailing("", len(r.b))
	}
	return l, e, nil
}

// validate checks l and returns its parsed entry.
func (l *LogRecord) validate() (*Entry, error) {
	e, err := l.SignedEntry.validate()
	if err != nil {
		return nil, within(err, "signed_entry")
	}
	switch {
	case e.Version == 1 && l.Registration == nil:
		return nil, newError(ErrInvalid, "registration", "missing for a version 1 entry")
	case e.Version != 1 && l.Registration != nil:
		return nil, newError(ErrInvalid, "registration", "present for a version %d entry; only registrations carry one", e.Version)
	}
	if l.Registration != nil {
		if err := l.Registration.Validate(); err != nil {
			return nil, within(err, "registration")
		}
	}
	return e, nil
}

// Validate checks l: its signed entry is valid, and it carries a valid
// registration if and only if the entry's version is 1. It checks no
// signature.
func (l *LogRecord) Validate() error {
	_, err := l.validate()
	return err
}

// UpdatesRoot returns the RFC 6962 Merkle tree hash of the encoded log
// records of an epoch, in log order: leaves hashed as SHA-256(0x00 || record),
// interior nodes as SHA-256(0x01 || left || right). An empty epoch has the
// root SHA-256("") = e3b0c442...b855, as RFC 6962 section 2.1 defines.
func UpdatesRoot(records [][]byte) [32]byte {
	var root [32]byte
	if len(records) == 0 {
		return sha256.Sum256(nil)
	}
	h := rfc6962.DefaultHasher
	f := compact.RangeFactory{Hash: h.HashChildren}
	rng := f.NewEmptyRange(0)
	for _, rec := range records {
		if err := rng.Append(h.HashLeaf(rec), nil); err != nil {
			panic("format: compact range append: " + err.Error())
		}
	}
	r, err := rng.GetRootHash(nil)
	if err != nil || len(r) != len(root) {
		panic("format: compact range has no root")
	}
	copy(root[:], r)
	return root
}
