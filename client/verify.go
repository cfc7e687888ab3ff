package client

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/vrf"
)

// MaxClockSkew is how far an epoch head's time may be ahead of the
// client's clock (Kerberos' classic tolerance): a head further in the future
// fails with ErrHeadInFuture.
const MaxClockSkew = 5 * time.Minute

// maxLogProof caps an RFC 6962 proof of a log below 2^64 leaves.
const maxLogProof = 64

// Result is a verified lookup answer.
type Result struct {
	// UserID and Index are the user looked up and the VRF-derived tree
	// index (proven for UserID).
	UserID string
	Index  [32]byte
	// Epoch and Head are the epoch the answer is bound to; HeadTime is the
	// head's time.
	Epoch    uint64
	Head     *format.EpochHead
	HeadTime time.Time
	// Checkpoint is the verified checkpoint whose log includes Head.
	Checkpoint *Checkpoint
	// Present reports whether the user has an entry. If not, the fields
	// below are zero.
	Present bool
	// Entry is the user's current entry (version, update policy, and
	// whether it is a tombstone); EntryHash its hash (the next entry's
	// Prev).
	Entry     *format.Entry
	EntryHash [32]byte
	// LeafRecord is the proven leaf record: the epoch the entry took
	// effect and the hash chain to the user's history.
	LeafRecord     *format.LeafRecord
	LeafRecordHash [32]byte
	// Profile is the user's keys by application; nil for a tombstone.
	Profile *format.Profile
	// Proof is the answer as received, for evidence and caching.
	Proof *api.LookupProof
}

// Tombstone reports whether the user is present but erased.
func (r *Result) Tombstone() bool { return r.Present && r.Entry.Tombstone }

// Version returns the entry's version, 0 if the user is absent.
func (r *Result) Version() uint64 {
	if !r.Present {
		return 0
	}
	return r.Entry.Version
}

// Key returns the user's key for app.
func (r *Result) Key(app string) ([]byte, bool) {
	if r.Profile == nil {
		return nil, false
	}
	return r.Profile.Get(app)
}

// VerifyLookup verifies a lookup answer for userID against the pinned
// realm config cfg and its quorum, at the client's time now. It is
// Pinned.VerifyLookup with a Pinned made from cfg and cfg.Quorum; clients
// verifying many answers should make one Pinned and reuse it.
func VerifyLookup(cfg *realm.Config, userID string, proof *api.LookupProof, now time.Time) (*Result, error) {
	p, err := NewPinned(cfg, cfg.Quorum)
	if err != nil {
		return nil, err
	}
	return p.VerifyLookup(userID, proof, now)
}

// VerifyLookup verifies an answer to "what are userID's keys now?". The
// checks run in the order of the package documentation ("Verifying a
// lookup"); the first that fails is returned as an *Error carrying the
// answer as Evidence and wrapping the check's sentinel.
func (p *Pinned) VerifyLookup(userID string, proof *api.LookupProof, now time.Time) (*Result, error) {
	return p.verifyLookup(userID, proof, nil, &now)
}

// VerifyLookupAt verifies an answer to "what were userID's keys at epoch?"
// (the API's Lookup with epoch=N): the checks of VerifyLookup, except that
// the head's age is not limited (a past epoch is old by design) and its
// epoch must be the one asked for.
func (p *Pinned) VerifyLookupAt(userID string, epoch uint64, proof *api.LookupProof) (*Result, error) {
	return p.verifyLookup(userID, proof, &epoch, nil)
}

func (p *Pinned) verifyLookup(userID string, proof *api.LookupProof, wantEpoch *uint64, now *time.Time) (*Result, error) {
	if proof == nil {
		return nil, errors.New("client: nil lookup proof")
	}
	ev := &Evidence{Realm: p.cfg.Realm, Lookup: proof}
	if now != nil {
		ev.Time = *now
	}
	cfg := p.cfg

	// 1. Realm and user.
	if proof.Realm != cfg.Realm {
		return nil, fail(ErrWrongRealm, ev, "answer is for realm %q, pinned realm is %q", proof.Realm, cfg.Realm)
	}
	if proof.UserID != userID {
		return nil, fail(ErrWrongUser, ev, "answer is for user %q, asked for %q", proof.UserID, userID)
	}

	// 2–3. The checkpoint: keyserver signature, origin, co-signature quorum.
	cp, err := p.verifyCheckpoint(proof.Checkpoint, p.quorum, ev)
	if err != nil {
		return nil, err
	}

	// 4. The head is leaf Epoch of the checkpoint's log.
	if cp.Size != proof.CheckpointSize {
		return nil, fail(ErrHeadInclusion, ev, "checkpoint_size %d but the checkpoint has size %d", proof.CheckpointSize, cp.Size)
	}
	if proof.Epoch >= cp.Size {
		return nil, fail(ErrHeadInclusion, ev, "epoch %d is not in a log of size %d", proof.Epoch, cp.Size)
	}
	headProof, err := logProof(proof.HeadProof)
	if err != nil {
		return nil, &Error{Check: ErrHeadInclusion, Err: err, Evidence: ev}
	}
	if err := checkpoint.VerifyInclusion(checkpoint.LeafHash(proof.Head), proof.Epoch, cp.Size, headProof, cp.Hash); err != nil {
		return nil, &Error{Check: ErrHeadInclusion, Err: err, Evidence: ev}
	}

	// 5. The head is of this realm and the claimed (or asked-for) epoch.
	head, err := format.ParseEpochHead(proof.Head)
	if err != nil {
		return nil, &Error{Check: ErrHead, Err: err, Evidence: ev}
	}
	if head.Realm != cfg.Realm {
		return nil, fail(ErrHead, ev, "head is of realm %q", head.Realm)
	}
	if head.Epoch != proof.Epoch {
		return nil, fail(ErrHead, ev, "head is of epoch %d, answer claims %d", head.Epoch, proof.Epoch)
	}
	if wantEpoch != nil && head.Epoch != *wantEpoch {
		return nil, fail(ErrHead, ev, "head is of epoch %d, asked for %d", head.Epoch, *wantEpoch)
	}

	// 6. Freshness.
	if head.Time > math.MaxInt64 {
		return nil, fail(ErrHeadInFuture, ev, "head time %d ms is out of range", head.Time)
	}
	headTime := time.UnixMilli(int64(head.Time))
	if now != nil {
		if age := now.Sub(headTime); age > cfg.MaxHeadAge.Duration {
			return nil, fail(ErrHeadTooOld, ev, "head of epoch %d is %v old, the realm allows %v", head.Epoch, age.Round(time.Millisecond), cfg.MaxHeadAge.Duration)
		}
		if ahead := headTime.Sub(*now); ahead > MaxClockSkew {
			return nil, fail(ErrHeadInFuture, ev, "head of epoch %d is %v ahead of the local clock", head.Epoch, ahead.Round(time.Millisecond))
		}
	}

	// 7. The VRF maps (realm, user id) to the index.
	alpha, err := vrf.Input(cfg.Realm, userID)
	if err != nil {
		return nil, &Error{Check: ErrVRF, Err: err, Evidence: ev}
	}
	beta, err := p.vrf.Verify(alpha, proof.VRFProof)
	if err != nil {
		return nil, &Error{Check: ErrVRF, Err: err, Evidence: ev}
	}
	index := vrf.Index(beta)
	if len(proof.Index) != len(index) || subtle.ConstantTimeCompare(proof.Index, index[:]) != 1 {
		return nil, fail(ErrVRF, ev, "index %x is not the VRF output's %x", proof.Index, index)
	}

	r := &Result{
		UserID:     userID,
		Index:      index,
		Epoch:      head.Epoch,
		Head:       head,
		HeadTime:   headTime,
		Checkpoint: cp,
		Proof:      proof,
	}

	// 8. The tree proof: absence, or inclusion of the leaf record's hash.
	tp, err := tree.ParseProof(proof.TreeProof)
	if err != nil {
		return nil, &Error{Check: ErrTreeProof, Err: err, Evidence: ev}
	}
	if len(proof.LeafRecord) == 0 {
		if err := tree.VerifyAbsence(tree.Hash(head.TreeRoot), tree.Key(index), tp); err != nil {
			return nil, &Error{Check: ErrTreeProof, Err: err, Evidence: ev}
		}
		if len(proof.SignedEntry) != 0 {
			return nil, fail(ErrEntry, ev, "signed entry given for an absent user")
		}
		if len(proof.Profile) != 0 || len(proof.Opening) != 0 {
			return nil, fail(ErrProfileCommitment, ev, "profile given for an absent user")
		}
		return r, nil
	}
	leaf, err := format.ParseLeafRecord(proof.LeafRecord)
	if err != nil {
		return nil, &Error{Check: ErrLeafRecord, Err: err, Evidence: ev}
	}
	if leaf.Epoch > head.Epoch {
		return nil, fail(ErrLeafRecord, ev, "leaf record of epoch %d in the head of epoch %d", leaf.Epoch, head.Epoch)
	}
	leafHash := format.LeafRecordHash(proof.LeafRecord)
	if err := tree.VerifyInclusion(tree.Hash(head.TreeRoot), tree.Key(index), tree.Hash(leafHash), tp); err != nil {
		return nil, &Error{Check: ErrTreeProof, Err: err, Evidence: ev}
	}

	// 9. The entry is the one the leaf record names, of this realm and index.
	if len(proof.SignedEntry) == 0 {
		return nil, fail(ErrEntry, ev, "no signed entry for a present user")
	}
	se, entry, err := format.ParseSignedEntry(proof.SignedEntry)
	if err != nil {
		return nil, &Error{Check: ErrEntry, Err: err, Evidence: ev}
	}
	entryHash := format.EntryHash(se.Entry)
	if entryHash != leaf.EntryHash {
		return nil, fail(ErrEntry, ev, "entry hash %x is not the leaf record's %x", entryHash, leaf.EntryHash)
	}
	if entry.Realm != cfg.Realm {
		return nil, fail(ErrEntry, ev, "entry is of realm %q", entry.Realm)
	}
	if entry.Index != index {
		return nil, fail(ErrEntry, ev, "entry is for index %x, not %x", entry.Index, index)
	}

	// 10. The profile opens the commitment.
	var profile *format.Profile
	if entry.Tombstone {
		if len(proof.Profile) != 0 || len(proof.Opening) != 0 {
			return nil, fail(ErrProfileCommitment, ev, "profile given for a tombstone")
		}
	} else {
		if len(proof.Opening) != format.OpeningSize {
			return nil, fail(ErrProfileCommitment, ev, "opening is %d bytes, want %d", len(proof.Opening), format.OpeningSize)
		}
		c := format.CommitProfile([format.OpeningSize]byte(proof.Opening), proof.Profile)
		if c != entry.Commitment {
			return nil, fail(ErrProfileCommitment, ev, "profile and opening commit to %x, the entry to %x", c, entry.Commitment)
		}
		profile, err = format.ParseProfile(proof.Profile)
		if err != nil {
			return nil, &Error{Check: ErrProfileCommitment, Err: err, Evidence: ev}
		}
	}

	r.Present = true
	r.Entry = entry
	r.EntryHash = entryHash
	r.LeafRecord = leaf
	r.LeafRecordHash = leafHash
	r.Profile = profile
	return r, nil
}

// logProof converts an API proof (a list of byte strings) to hashes.
func logProof(p [][]byte) ([][32]byte, error) {
	if len(p) > maxLogProof {
		return nil, fmt.Errorf("proof of %d hashes, at most %d", len(p), maxLogProof)
	}
	out := make([][32]byte, len(p))
	for i, h := range p {
		if len(h) != 32 {
			return nil, fmt.Errorf("proof hash %d is %d bytes, want 32", i, len(h))
		}
		out[i] = [32]byte(h)
	}
	return out, nil
}
