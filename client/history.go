package client

import (
	"bytes"
	"errors"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
)

// History is a user's verified history: every version ever published,
// oldest first, ending in the version proven by Lookup.
type History struct {
	// Lookup is the verified lookup the history ends in.
	Lookup *Result
	// Versions are the user's versions 1..Lookup.Version(), in order.
	Versions []Version
	// Response is the answer as received, for evidence.
	Response *api.HistoryResponse
}

// Version is one verified version of a user's entry.
type Version struct {
	// Entry is the version's entry, EntryHash its hash.
	Entry     *format.Entry
	EntryHash [32]byte
	// LeafRecord is the leaf record that published it (Epoch is when it
	// took effect); LeafRecordHash its hash, the next record's Prev.
	LeafRecord     *format.LeafRecord
	LeafRecordHash [32]byte
	// Signers are the key IDs of the signatures on the entry.
	Signers []format.KeyID
}

// VerifyHistory verifies a history answer for userID against the pinned
// realm config cfg and its quorum (see Pinned.VerifyHistory).
func VerifyHistory(cfg *realm.Config, userID string, h *api.HistoryResponse, now time.Time) (*History, error) {
	p, err := NewPinned(cfg, cfg.Quorum)
	if err != nil {
		return nil, err
	}
	return p.VerifyHistory(userID, h, now)
}

// VerifyHistory verifies a history answer: first its lookup, with every
// check of VerifyLookup; then the records, oldest first, as the package
// documentation lists under "Verifying a history". Failures are *Error
// values with the history as Evidence.
func (p *Pinned) VerifyHistory(userID string, h *api.HistoryResponse, now time.Time) (*History, error) {
	return p.verifyHistory(userID, h, now, nil)
}

func (p *Pinned) verifyHistory(userID string, h *api.HistoryResponse, now time.Time, progress func(done, total int)) (*History, error) {
	if h == nil {
		return nil, errors.New("client: nil history")
	}
	res, err := p.VerifyLookup(userID, &h.Lookup, now)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Evidence != nil {
			e.Evidence.Lookup = nil
			e.Evidence.History = h
		}
		return nil, err
	}
	ev := &Evidence{Time: now, Realm: p.cfg.Realm, History: h}
	out := &History{Lookup: res, Response: h}
	if !res.Present {
		if len(h.Records) != 0 {
			return nil, fail(ErrHistoryChain, ev, "%d history records for an absent user", len(h.Records))
		}
		return out, nil
	}
	// Versions run from 1 with no gap, so there is one record per version.
	if uint64(len(h.Records)) != res.Entry.Version {
		return nil, fail(ErrHistoryChain, ev, "%d records for version %d", len(h.Records), res.Entry.Version)
	}
	out.Versions = make([]Version, 0, len(h.Records))
	var (
		prevEntry     *format.Entry
		prevEntryHash [32]byte
		prevLeafHash  [32]byte
		prevEpoch     uint64
	)
	for i, rec := range h.Records {
		leaf, err := format.ParseLeafRecord(rec.LeafRecord)
		if err != nil {
			return nil, fail(ErrHistoryChain, ev, "record %d: %w", i, err)
		}
		se, entry, err := format.ParseSignedEntry(rec.SignedEntry)
		if err != nil {
			return nil, fail(ErrHistoryChain, ev, "record %d: %w", i, err)
		}
		entryHash := format.EntryHash(se.Entry)
		leafHash := format.LeafRecordHash(rec.LeafRecord)
		if leaf.EntryHash != entryHash {
			return nil, fail(ErrHistoryChain, ev, "record %d: leaf record names entry %x, the record carries %x", i, leaf.EntryHash, entryHash)
		}
		if leaf.Prev != prevLeafHash {
			return nil, fail(ErrHistoryChain, ev, "record %d: previous leaf record hash %x, want %x", i, leaf.Prev, prevLeafHash)
		}
		if leaf.Epoch < prevEpoch || leaf.Epoch > res.Epoch {
			return nil, fail(ErrHistoryChain, ev, "record %d: epoch %d out of order (previous %d, lookup %d)", i, leaf.Epoch, prevEpoch, res.Epoch)
		}
		if entry.Realm != p.cfg.Realm || entry.Index != res.Index {
			return nil, fail(ErrHistoryChain, ev, "record %d: entry of realm %q index %x, not this user's", i, entry.Realm, entry.Index)
		}
		if err := format.CheckTransition(prevEntry, prevEntryHash, entry); err != nil {
			return nil, fail(ErrHistoryChain, ev, "record %d: %w", i, err)
		}
		if err := format.VerifyUpdateSignatures(prevEntry, entry, entryHash, se.Signatures); err != nil {
			return nil, fail(ErrHistorySignature, ev, "version %d: %w", entry.Version, err)
		}
		signers := make([]format.KeyID, len(se.Signatures))
		for j, s := range se.Signatures {
			signers[j] = s.KeyID
		}
		out.Versions = append(out.Versions, Version{
			Entry: entry, EntryHash: entryHash,
			LeafRecord: leaf, LeafRecordHash: leafHash,
			Signers: signers,
		})
		prevEntry, prevEntryHash, prevLeafHash, prevEpoch = entry, entryHash, leafHash, leaf.Epoch
		if progress != nil {
			progress(i+1, len(h.Records))
		}
	}
	last := h.Records[len(h.Records)-1]
	if !bytes.Equal(last.LeafRecord, h.Lookup.LeafRecord) || prevEntryHash != res.EntryHash {
		return nil, fail(ErrHistoryChain, ev, "the last record is not the leaf record proven by the lookup")
	}
	return out, nil
}
