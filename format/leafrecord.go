package format

import "encoding/binary"

// LeafRecordSize is the length of every encoded LeafRecord.
const LeafRecordSize = 32 + 8 + 32

// LeafRecord is what the tree commits to for a user: the current entry, the
// epoch it took effect, and the hash of the user's previous leaf record, so
// the records of one user form a hash chain of their whole history. Only the
// statemachine makes leaf records; clients never submit them. The tree leaf
// value is LeafRecordHash of the encoding.
type LeafRecord struct {
	// EntryHash is EntryHash of the user's current entry.
	EntryHash [32]byte
	// Epoch is the epoch in which that entry was applied; >= 1 (epoch 0 is
	// the empty genesis).
	Epoch uint64
	// Prev is LeafRecordHash of the user's previous leaf record, all zero
	// for the first.
	Prev [32]byte
}

// Marshal validates l and returns its encoding:
//
//	struct {
//	    opaque entry_hash[32];   /* EntryHash of the current entry */
//	    uint64 epoch;            /* >= 1 */
//	    opaque prev[32];         /* LeafRecordHash of the previous record, or zero */
//	} LeafRecord;                /* exactly 72 bytes */
func (l *LeafRecord) Marshal() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, within(err, "leaf_record")
	}
	b := make([]byte, 0, LeafRecordSize)
	b = append(b, l.EntryHash[:]...)
	b = binary.BigEndian.AppendUint64(b, l.Epoch)
	return append(b, l.Prev[:]...), nil
}

// ParseLeafRecord parses an encoded LeafRecord.
func ParseLeafRecord(b []byte) (*LeafRecord, error) {
	l := &LeafRecord{}
	r := reader{b}
	var err error
	switch {
	case !r.copyTo(l.EntryHash[:]):
		err = truncated("entry_hash")
	case !r.u64(&l.Epoch):
		err = truncated("epoch")
	case !r.copyTo(l.Prev[:]):
		err = truncated("prev")
	case !r.empty():
		err = trailing("", len(r.b))
	default:
		err = l.Validate()
	}
	if err != nil {
		return nil, within(err, "leaf_record")
	}
	return l, nil
}

// Validate checks that the epoch is at least 1.
func (l *LeafRecord) Validate() error {
	if l.Epoch == 0 {
		return newError(ErrInvalid, "epoch", "epoch 0 is the empty genesis and has no leaf records")
	}
	return nil
}
