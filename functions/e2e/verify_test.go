package e2e

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/vrf"
)

// verified is what an independently checked lookup says.
type verified struct {
	epoch      uint64
	size       uint64
	root       [32]byte // of the checkpoint's epoch log
	head       *format.EpochHead
	present    bool
	entry      *format.Entry
	leafRecord []byte
	profile    *format.Profile
}

// verifyLookup checks a lookup proof from first principles, with the core
// packages only (vrf, tree, checkpoint, format) and the pinned realm
// config: it is the end-to-end test's own client, independent of the
// server's code and of package client.
func verifyLookup(rc *realm.Config, userID string, p *api.LookupProof, quorum int) (*verified, error) {
	if p.Realm != rc.Realm || p.UserID != userID {
		return nil, errors.New("wrong realm or user")
	}
	logV, err := checkpoint.NewVerifier(rc.LogKey)
	if err != nil {
		return nil, err
	}
	var cos []*checkpoint.CosignatureVerifier
	for _, vk := range rc.Verifiers {
		v, err := checkpoint.NewCosignatureVerifier(vk)
		if err != nil {
			return nil, err
		}
		cos = append(cos, v)
	}
	cp, err := checkpoint.Open(p.Checkpoint, rc.Realm, logV, cos, quorum)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	c := cp.Checkpoint
	if c.Size != p.CheckpointSize || p.Epoch >= c.Size {
		return nil, fmt.Errorf("checkpoint size %d, claimed %d, epoch %d", c.Size, p.CheckpointSize, p.Epoch)
	}
	hp := make([][32]byte, len(p.HeadProof))
	for i, h := range p.HeadProof {
		if len(h) != 32 {
			return nil, errors.New("head proof hash length")
		}
		hp[i] = [32]byte(h)
	}
	if err := checkpoint.VerifyInclusion(checkpoint.LeafHash(p.Head), p.Epoch, c.Size, hp, c.Hash); err != nil {
		return nil, fmt.Errorf("head inclusion: %w", err)
	}
	head, err := format.ParseEpochHead(p.Head)
	if err != nil {
		return nil, err
	}
	if head.Realm != rc.Realm || head.Epoch != p.Epoch {
		return nil, errors.New("head of another realm or epoch")
	}
	pub, err := vrf.ParsePublicKey(rc.VRFPublicKey)
	if err != nil {
		return nil, err
	}
	alpha, err := vrf.Input(rc.Realm, userID)
	if err != nil {
		return nil, err
	}
	beta, err := pub.Verify(alpha, p.VRFProof)
	if err != nil {
		return nil, fmt.Errorf("vrf: %w", err)
	}
	index := vrf.Index(beta)
	if !bytes.Equal(index[:], p.Index) {
		return nil, errors.New("index is not the VRF output")
	}
	tp, err := tree.ParseProof(p.TreeProof)
	if err != nil {
		return nil, err
	}
	v := &verified{epoch: p.Epoch, size: c.Size, root: c.Hash, head: head}
	if p.LeafRecord == nil {
		if p.SignedEntry != nil || p.Profile != nil || p.Opening != nil {
			return nil, errors.New("absent user with an entry or profile")
		}
		if err := tree.VerifyAbsence(tree.Hash(head.TreeRoot), tree.Key(index), tp); err != nil {
			return nil, fmt.Errorf("absence: %w", err)
		}
		return v, nil
	}
	if err := tree.VerifyInclusion(tree.Hash(head.TreeRoot), tree.Key(index), tree.Hash(format.LeafRecordHash(p.LeafRecord)), tp); err != nil {
		return nil, fmt.Errorf("inclusion: %w", err)
	}
	lr, err := format.ParseLeafRecord(p.LeafRecord)
	if err != nil || lr.Epoch > head.Epoch {
		return nil, fmt.Errorf("leaf record: %v", err)
	}
	se, e, err := format.ParseSignedEntry(p.SignedEntry)
	if err != nil {
		return nil, err
	}
	if format.EntryHash(se.Entry) != lr.EntryHash || e.Realm != rc.Realm || e.Index != index {
		return nil, errors.New("entry does not match the leaf record")
	}
	v.present, v.entry, v.leafRecord = true, e, p.LeafRecord
	if e.Tombstone {
		if p.Profile != nil || p.Opening != nil {
			return nil, errors.New("tombstone with a profile")
		}
		return v, nil
	}
	if len(p.Opening) != format.OpeningSize || format.CommitProfile([16]byte(p.Opening), p.Profile) != e.Commitment {
		return nil, errors.New("profile does not open the commitment")
	}
	if v.profile, err = format.ParseProfile(p.Profile); err != nil {
		return nil, err
	}
	return v, nil
}

// verifyHistory checks a history response: its lookup, then the chain of
// records from the registration to the proven leaf, every transition and
// its signatures.
func verifyHistory(rc *realm.Config, userID string, h *api.HistoryResponse, quorum int) (*verified, error) {
	v, err := verifyLookup(rc, userID, &h.Lookup, quorum)
	if err != nil {
		return nil, err
	}
	if !v.present || uint64(len(h.Records)) != v.entry.Version {
		return nil, fmt.Errorf("%d records for version %d", len(h.Records), v.entry.Version)
	}
	var (
		prevLeaf  [32]byte
		prevEpoch uint64
		old       *format.Entry
		oldHash   [32]byte
	)
	for i, r := range h.Records {
		lr, err := format.ParseLeafRecord(r.LeafRecord)
		if err != nil {
			return nil, err
		}
		se, e, err := format.ParseSignedEntry(r.SignedEntry)
		if err != nil {
			return nil, err
		}
		eh := format.EntryHash(se.Entry)
		if lr.EntryHash != eh || lr.Prev != prevLeaf || lr.Epoch < prevEpoch || lr.Epoch > v.epoch {
			return nil, fmt.Errorf("record %d does not chain", i)
		}
		if err := format.CheckTransition(old, oldHash, e); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if err := format.VerifyUpdateSignatures(old, e, eh, se.Signatures); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		prevLeaf, prevEpoch, old, oldHash = format.LeafRecordHash(r.LeafRecord), lr.Epoch, e, eh
	}
	if !bytes.Equal(h.Records[len(h.Records)-1].LeafRecord, v.leafRecord) {
		return nil, errors.New("the last record is not the proven one")
	}
	return v, nil
}
