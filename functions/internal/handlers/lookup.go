package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/vrf"
)

// lookup answers GET /Lookup?user=ID[&epoch=N][&quorum=K].
//
// Database round trips: one for the epoch (LatestEpoch or GetEpoch), then
// the tree path (one ReadNodes) and the user's state (User) concurrently.
func (s *Server) lookup(c *call) error {
	q, err := parseQuery(c.r, "user", "epoch", "quorum")
	if err != nil {
		return err
	}
	index, vproof, err := s.prove(q.str("user"))
	if err != nil {
		return err
	}
	ep, err := s.epochFor(c.ctx, q)
	if err != nil {
		return err
	}
	lp, _, err := s.lookupAt(c.ctx, q.str("user"), index, vproof, ep)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, lp)
	return nil
}

// history answers GET /History?user=ID[&epoch=N][&quorum=K]: the lookup
// and every record of the user up to that epoch, oldest first (404 for a
// user with no entry).
func (s *Server) history(c *call) error {
	q, err := parseQuery(c.r, "user", "epoch", "quorum")
	if err != nil {
		return err
	}
	index, vproof, err := s.prove(q.str("user"))
	if err != nil {
		return err
	}
	ep, err := s.epochFor(c.ctx, q)
	if err != nil {
		return err
	}
	lp, st, err := s.lookupAt(c.ctx, q.str("user"), index, vproof, ep)
	if err != nil {
		return err
	}
	if len(st.Records) == 0 {
		return errorf(http.StatusNotFound, CodeNotFound, "the user has no entry at epoch %d", ep.Epoch)
	}
	resp := &api.HistoryResponse{Lookup: *lp, Records: make([]api.HistoryRecord, len(st.Records))}
	for i, r := range st.Records {
		resp.Records[i] = api.HistoryRecord{LeafRecord: r.LeafRecord, SignedEntry: r.SignedEntry}
	}
	writeJSON(c.w, http.StatusOK, resp)
	return nil
}

// epochFor finds the epoch a lookup is bound to: epoch=N if given (then a
// quorum, if given, must be met by it), else the newest epoch co-signed by
// the quorum (default: the realm's).
func (s *Server) epochFor(ctx context.Context, q query) (*storage.Epoch, error) {
	qp, err := q.optInt("quorum")
	if err != nil {
		return nil, err
	}
	quorum, err := s.quorum(qp)
	if err != nil {
		return nil, err
	}
	if q.has("epoch") {
		n, err := q.uint("epoch")
		if err != nil {
			return nil, err
		}
		ep, err := s.store.GetEpoch(ctx, n)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, errorf(http.StatusNotFound, CodeNotFound, "epoch %d is not committed", n)
		}
		if err != nil {
			return nil, err
		}
		if qp != nil && s.cosigned(ep) < quorum {
			return nil, &httpError{status: http.StatusServiceUnavailable, code: CodeNotCosigned,
				msg: fmt.Sprintf("epoch %d has %d of the %d co-signatures asked for", n, s.cosigned(ep), quorum), retryAfter: 5}
		}
		return ep, nil
	}
	ep, err := s.store.LatestEpoch(ctx, s.names, quorum)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &httpError{status: http.StatusServiceUnavailable, code: CodeNotCosigned,
			msg: fmt.Sprintf("no epoch is co-signed by %d verifiers yet", quorum), retryAfter: 5}
	}
	return ep, err
}

// lookupAt builds the lookup proof of a user at epoch ep, reading the tree
// path and the user's state concurrently, and checks it against the head
// before it leaves: a proof that does not verify is a server fault (500),
// never an answer.
func (s *Server) lookupAt(ctx context.Context, userID string, index [32]byte, vproof [vrf.ProofSize]byte, ep *storage.Epoch) (*api.LookupProof, *storage.UserState, error) {
	head, err := format.ParseEpochHead(ep.Head)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't parse stored head of epoch %d: %w", ep.Epoch, err)
	}
	var (
		wg       sync.WaitGroup
		proof    *tree.Proof
		proofErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		proof, proofErr = s.tree.Prove(ctx, ep.Epoch, tree.Key(index))
	}()
	st, err := s.store.User(ctx, ep.Epoch, index)
	wg.Wait()
	if proofErr != nil {
		return nil, nil, fmt.Errorf("couldn't prove index at epoch %d: %w", ep.Epoch, proofErr)
	}
	if errors.Is(err, storage.ErrNotFound) {
		st, err = &storage.UserState{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't read user state at epoch %d: %w", ep.Epoch, err)
	}
	lp := &api.LookupProof{
		Realm:          s.realm.Realm,
		UserID:         userID,
		Epoch:          ep.Epoch,
		Checkpoint:     ep.Checkpoint,
		CheckpointSize: ep.Epoch + 1,
		Head:           ep.Head,
		HeadProof:      hashes(ep.HeadProof),
		VRFProof:       vproof[:],
		Index:          index[:],
		TreeProof:      proof.Marshal(),
	}
	root := tree.Hash(head.TreeRoot)
	if len(st.Records) == 0 {
		if err := tree.VerifyAbsence(root, tree.Key(index), proof); err != nil {
			return nil, nil, fmt.Errorf("store inconsistent: no records but the tree does not prove absence: %w", err)
		}
		return lp, st, nil
	}
	last := st.Records[len(st.Records)-1]
	if err := tree.VerifyInclusion(root, tree.Key(index), tree.Hash(format.LeafRecordHash(last.LeafRecord)), proof); err != nil {
		return nil, nil, fmt.Errorf("store inconsistent: the newest leaf record is not the tree's value: %w", err)
	}
	se, entry, err := format.ParseSignedEntry(last.SignedEntry)
	if err != nil {
		return nil, nil, fmt.Errorf("store inconsistent: stored signed entry: %w", err)
	}
	lr, err := format.ParseLeafRecord(last.LeafRecord)
	if err != nil || lr.EntryHash != format.EntryHash(se.Entry) {
		return nil, nil, errors.New("store inconsistent: the leaf record does not name the stored entry")
	}
	lp.LeafRecord, lp.SignedEntry = last.LeafRecord, last.SignedEntry
	if !entry.Tombstone {
		if len(st.Opening) != format.OpeningSize || st.Profile == nil {
			return nil, nil, errorf(http.StatusGone, CodeErased, "the profile of version %d was erased", entry.Version)
		}
		if format.CommitProfile([format.OpeningSize]byte(st.Opening), st.Profile) != entry.Commitment {
			return nil, nil, errors.New("store inconsistent: the stored profile does not open the entry's commitment")
		}
		lp.Profile, lp.Opening = st.Profile, st.Opening
	}
	return lp, st, nil
}

func hashes(p [][32]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = bytes.Clone(p[i][:])
	}
	return out
}
