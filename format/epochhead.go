package format

import "encoding/binary"

// MaxEpochHeadSize is the longest encoded EpochHead: the tag (1 + 21), the
// longest realm (1 + 128) and 88 bytes of fixed fields: 239 bytes.
const MaxEpochHeadSize = 1 + len(tagEpochHead) + 1 + MaxRealmLen + 8 + 8 + 32 + 8 + 32

// emptyUpdatesRoot is UpdatesRoot(nil) = SHA-256("").
var emptyUpdatesRoot = UpdatesRoot(nil)

// EpochHead summarises one epoch of a realm. The encoded head of epoch N is
// leaf N of the realm's epoch log (RFC 6962 hashing), whose checkpoints the
// keyserver signs and verifiers co-sign. Because RFC 6962 hashes leaves with
// no tag of ours, the encoding starts with its own tag, which makes it
// self-describing and keeps it apart from any other leaf format.
//
// Rules (Validate): Realm as in Entry; if UpdateCount is 0 then UpdatesRoot
// is SHA-256(""); epoch 0, the genesis, has no updates; UpdateCount is at
// most MaxBundleRecords. Whether TreeRoot and UpdatesRoot are right is for
// the statemachine to decide by replay.
type EpochHead struct {
	// Realm is the realm's name (the checkpoint origin).
	Realm string
	// Epoch numbers the epoch from 0 (the genesis: empty tree, no updates).
	Epoch uint64
	// Time is when the epoch was cut, in Unix milliseconds.
	Time uint64
	// TreeRoot is the root hash of the user tree after the epoch.
	TreeRoot [32]byte
	// UpdateCount is the number of log records in the epoch.
	UpdateCount uint64
	// UpdatesRoot is UpdatesRoot of the epoch's encoded log records.
	UpdatesRoot [32]byte
}

// Marshal validates h and returns its canonical encoding:
//
//	struct {
//	    uint8  tag_len;    opaque tag[tag_len];     /* = "conifer/epoch-head/v1" */
//	    uint8  realm_len;  opaque realm[realm_len]; /* 1..128 bytes of [A-Za-z0-9._/:-] */
//	    uint64 epoch;                               /* 0 = genesis */
//	    uint64 time;                                /* Unix milliseconds */
//	    opaque tree_root[32];
//	    uint64 update_count;                        /* 0 when epoch == 0; <= 2^20 */
//	    opaque updates_root[32];                    /* SHA-256("") when update_count == 0 */
//	} EpochHead;                                    /* total <= 239 bytes */
func (h *EpochHead) Marshal() ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, within(err, "epoch_head")
	}
	b := make([]byte, 0, 1+len(tagEpochHead)+1+len(h.Realm)+88)
	b = append(b, byte(len(tagEpochHead)))
	b = append(b, tagEpochHead...)
	b = append(b, byte(len(h.Realm)))
	b = append(b, h.Realm...)
	b = binary.BigEndian.AppendUint64(b, h.Epoch)
	b = binary.BigEndian.AppendUint64(b, h.Time)
	b = append(b, h.TreeRoot[:]...)
	b = binary.BigEndian.AppendUint64(b, h.UpdateCount)
	return append(b, h.UpdatesRoot[:]...), nil
}

// ParseEpochHead parses a canonical encoded EpochHead.
func ParseEpochHead(b []byte) (*EpochHead, error) {
	h, err := parseEpochHead(b)
	if err != nil {
		return nil, within(err, "epoch_head")
	}
	return h, nil
}

func parseEpochHead(b []byte) (*EpochHead, error) {
	if len(b) > MaxEpochHeadSize {
		return nil, newError(ErrTooLarge, "", "%d bytes, more than %d", len(b), MaxEpochHeadSize)
	}
	r := reader{b}
	if err := readTag(&r, tagEpochHead); err != nil {
		return nil, err
	}
	h := &EpochHead{}
	var realmLen uint8
	var realm []byte
	if !r.u8(&realmLen) || !r.bytes(&realm, int(realmLen)) {
		return nil, truncated("realm")
	}
	h.Realm = string(realm)
	switch {
	case !r.u64(&h.Epoch):
		return nil, truncated("epoch")
	case !r.u64(&h.Time):
		return nil, truncated("time")
	case !r.copyTo(h.TreeRoot[:]):
		return nil, truncated("tree_root")
	case !r.u64(&h.UpdateCount):
		return nil, truncated("update_count")
	case !r.copyTo(h.UpdatesRoot[:]):
		return nil, truncated("updates_root")
	case !r.empty():
		return nil, trailing("", len(r.b))
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// readTag reads a uint8-length-prefixed tag that must equal want.
func readTag(r *reader, want string) error {
	var n uint8
	var tag []byte
	if !r.u8(&n) || !r.bytes(&tag, int(n)) {
		return truncated("tag")
	}
	if string(tag) != want {
		return newError(ErrInvalid, "tag", "tag %q, want %q", tag, want)
	}
	return nil
}

// Validate checks the rules of the EpochHead grammar.
func (h *EpochHead) Validate() error {
	if err := checkRealm(h.Realm); err != nil {
		return within(err, "realm")
	}
	if h.Epoch == 0 && h.UpdateCount != 0 {
		return newError(ErrInvalid, "update_count", "%d updates in epoch 0; the genesis has none", h.UpdateCount)
	}
	if h.UpdateCount > MaxBundleRecords {
		return newError(ErrTooLarge, "update_count", "%d updates, more than %d", h.UpdateCount, MaxBundleRecords)
	}
	if h.UpdateCount == 0 && h.UpdatesRoot != emptyUpdatesRoot {
		return newError(ErrInvalid, "updates_root", "an epoch with no updates must have the empty root SHA-256(\"\")")
	}
	return nil
}
