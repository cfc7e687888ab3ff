package format

import (
	"encoding/binary"
	"strconv"
)

// SignedEntry limits.
const (
	// MaxSignatures is the most signatures a SignedEntry carries: enough
	// for an update whose old and new policies share no key and each
	// require all of their MaxPolicyKeys keys.
	MaxSignatures = 2 * MaxPolicyKeys
	// MaxSignedEntrySize is the longest possible encoded SignedEntry:
	// 2 + 1646 + 1 + 64*72 = 6257 bytes.
	MaxSignedEntrySize = 2 + MaxEntrySize + 1 + MaxSignatures*signatureSize
)

// SignedEntry is an update as a client submits it and the log stores it: the
// exact entry bytes and signatures over SigningMessage(EntryHash(Entry)).
// Which signatures are required is decided by the old and the new entry's
// policies (VerifyUpdateSignatures), not by this format.
type SignedEntry struct {
	// Entry is a canonical Entry encoding.
	Entry []byte
	// Signatures are sorted by strictly increasing KeyID (so each key
	// signs at most once); 1..MaxSignatures of them.
	Signatures []Signature
}

// Marshal validates s (including parsing s.Entry) and returns its canonical
// encoding:
//
//	struct {
//	    uint16    entry_len;  opaque entry[entry_len]; /* canonical Entry, 1..1646 bytes */
//	    uint8     signature_count;                     /* 1..64 */
//	    Signature signatures[signature_count];         /* KeyID strictly increasing */
//	} SignedEntry;                                     /* total <= 6257 bytes */
func (s *SignedEntry) Marshal() ([]byte, error) {
	if _, err := s.validate(); err != nil {
		return nil, within(err, "signed_entry")
	}
	return s.appendTo(make([]byte, 0, s.size())), nil
}

func (s *SignedEntry) size() int {
	return 2 + len(s.Entry) + 1 + len(s.Signatures)*signatureSize
}

func (s *SignedEntry) appendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Entry)))
	b = append(b, s.Entry...)
	b = append(b, byte(len(s.Signatures)))
	for i := range s.Signatures {
		b = appendSignature(b, &s.Signatures[i])
	}
	return b
}

// ParseSignedEntry parses a canonical encoded SignedEntry and returns it with
// its parsed entry, so callers need not parse s.Entry again. The results do
// not alias b.
func ParseSignedEntry(b []byte) (*SignedEntry, *Entry, error) {
	if len(b) > MaxSignedEntrySize {
		return nil, nil, newError(ErrTooLarge, "signed_entry", "%d bytes, more than %d", len(b), MaxSignedEntrySize)
	}
	r := reader{clone(b)}
	s, e, err := parseSignedEntry(&r)
	if err == nil && !r.empty() {
		err = trailing("", len(r.b))
	}
	if err != nil {
		return nil, nil, within(err, "signed_entry")
	}
	return s, e, nil
}

// parseSignedEntry reads a SignedEntry from r (whose bytes it may alias),
// leaving whatever follows it.
func parseSignedEntry(r *reader) (*SignedEntry, *Entry, error) {
	s := &SignedEntry{}
	var entryLen uint16
	if !r.u16(&entryLen) || !r.bytes(&s.Entry, int(entryLen)) {
		return nil, nil, truncated("entry")
	}
	var n uint8
	if !r.u8(&n) {
		return nil, nil, truncated("signature_count")
	}
	if n > MaxSignatures {
		return nil, nil, newError(ErrTooLarge, "signature_count", "%d signatures, more than %d", n, MaxSignatures)
	}
	if n > 0 {
		s.Signatures = make([]Signature, n)
	}
	for i := range s.Signatures {
		if !r.signature(&s.Signatures[i]) {
			return nil, nil, truncated(sigField(i))
		}
	}
	e, err := s.validate()
	if err != nil {
		return nil, nil, err
	}
	return s, e, nil
}

func sigField(i int) string {
	return "signatures[" + strconv.Itoa(i) + "]"
}

// validate checks s and returns its parsed entry.
func (s *SignedEntry) validate() (*Entry, error) {
	if len(s.Entry) == 0 {
		return nil, newError(ErrInvalid, "entry", "empty entry")
	}
	e, err := parseEntry(s.Entry)
	if err != nil {
		return nil, within(err, "entry")
	}
	if len(s.Signatures) == 0 {
		return nil, newError(ErrInvalid, "signature_count", "no signatures")
	}
	if len(s.Signatures) > MaxSignatures {
		return nil, newError(ErrTooLarge, "signature_count", "%d signatures, more than %d", len(s.Signatures), MaxSignatures)
	}
	for i := 1; i < len(s.Signatures); i++ {
		prev, id := s.Signatures[i-1].KeyID, s.Signatures[i].KeyID
		if prev == id {
			return nil, newError(ErrNotCanonical, sigField(i)+".key_id", "key %s signs twice", id)
		}
		if !prev.less(id) {
			return nil, newError(ErrNotCanonical, sigField(i)+".key_id", "signatures not in strictly increasing key-id order (%s after %s)", id, prev)
		}
	}
	return e, nil
}

// Validate checks s: its entry is canonical, and it has 1..MaxSignatures
// signatures in strictly increasing KeyID order. It checks no signature.
func (s *SignedEntry) Validate() error {
	_, err := s.validate()
	return err
}

// ParseEntry parses and returns s.Entry.
func (s *SignedEntry) ParseEntry() (*Entry, error) {
	return ParseEntry(s.Entry)
}

// VerifyUpdateSignatures checks that sigs, over SigningMessage(entryHash),
// meet the quorum of next's policy and, unless old is nil (a registration),
// the quorum of old's policy: the old policy authorises the change, the new
// one proves its keys are held. Each signature is verified at most once
// even when both policies name its key. The error wraps ErrQuorumNotMet and
// names "old policy" or "new policy".
func VerifyUpdateSignatures(old, next *Entry, entryHash [32]byte, sigs []Signature) error {
	c := sigChecker{msg: SigningMessage(entryHash), sigs: sigs}
	if old != nil {
		if err := c.require(&old.Policy, "old policy"); err != nil {
			return err
		}
	}
	return c.require(&next.Policy, "new policy")
}
