package handlers

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/vrf"
)

// update answers POST /Update. The order of checks (the first failure
// answers):
//
//  1. body ≤ api.MaxRequestBytes (413), strict JSON (400);
//  2. the user id is 1..1024 bytes of text (400); its VRF index is
//     computed; the user's update bucket has a token (429);
//  3. the signed entry is canonical (400), of this realm (400
//     wrong_realm) and at the user id's index (400 wrong_index);
//  4. a non-tombstone carries a canonical profile and a 16-byte opening
//     that open its commitment; a tombstone carries neither (400);
//  5. a registration (version 1) carries exactly one of a registrar
//     signature and an ID token; an ID token must pass package oidc's
//     checks with nonce format.OIDCNonce(entry hash) (403, or 503 if the
//     provider is unreachable); an update carries neither (400);
//  6. in the log's read-write transaction, statemachine.Check against the
//     user's pending entry (the newest logged one), by the epoch's own
//     rules: 409 for stale versions, wrong prev and the like, 403 for
//     quorum or registrar failures;
//  7. with wait, the answer waits for the newest epoch co-signed by the
//     quorum to contain the update (see wait).
func (s *Server) update(c *call) error {
	var req api.UpdateRequest
	if err := readBody(c, &req); err != nil {
		return err
	}
	quorum, err := s.quorum(req.Quorum)
	if err != nil {
		return err
	}
	index, vproof, err := s.prove(req.UserID)
	if err != nil {
		return err
	}
	c.log = c.log.With("index", hex.EncodeToString(index[:]))
	if ok, wait := s.updateLimit.take(string(index[:]), s.now()); !ok {
		return &httpError{status: http.StatusTooManyRequests, code: CodeRateLimited, msg: "too many updates of this user", retryAfter: retrySeconds(wait)}
	}
	se, entry, err := format.ParseSignedEntry(req.SignedEntry)
	if err != nil {
		return errorf(http.StatusBadRequest, CodeMalformed, "%v", err)
	}
	if entry.Realm != s.realm.Realm {
		return errorf(http.StatusBadRequest, CodeWrongRealm, "the entry is for realm %q, this is %q", entry.Realm, s.realm.Realm)
	}
	if entry.Index != index {
		return errorf(http.StatusBadRequest, CodeWrongIndex, "the entry's index is not the VRF index of the user id")
	}
	if err := checkProfile(entry, req.Profile, req.Opening); err != nil {
		return err
	}
	entryHash := format.EntryHash(se.Entry)
	reg, err := s.registration(c.ctx, entry, entryHash, &req)
	if err != nil {
		return err
	}
	record, err := (&format.LogRecord{SignedEntry: *se, Registration: reg}).Marshal()
	if err != nil {
		return errorf(http.StatusBadRequest, CodeMalformed, "%v", err)
	}
	a := storage.Append{
		Index:       index,
		Record:      record,
		Version:     entry.Version,
		EntryHash:   entryHash,
		SignedEntry: req.SignedEntry,
	}
	if !entry.Tombstone {
		a.Profile, a.Opening = req.Profile, req.Opening
	}
	row, err := s.store.AppendUpdate(c.ctx, a, func(prev *storage.PendingUser) error {
		var prevEntry []byte
		if prev != nil {
			prevEntry = prev.SignedEntry
		}
		d, err := statemachine.Check(s.rules, prevEntry, record)
		if err != nil {
			return err
		}
		if d.Index != index {
			panic("handlers: statemachine accepted an entry at another index")
		}
		return nil
	})
	if err != nil {
		return err
	}
	resp := &api.UpdateResponse{Receipt: api.Receipt{
		Index:         index[:],
		Version:       entry.Version,
		LogTime:       row.CommitTs.UTC().Format(time.RFC3339Nano),
		Seq:           row.Seq[:],
		EpochDeadline: row.CommitTs.Add(s.realm.MaxEpochInterval.Duration).UTC().Format(time.RFC3339Nano),
	}}
	c.log.Info("update logged", "version", entry.Version, "log_time", resp.Receipt.LogTime)
	if !req.Wait {
		writeJSON(c.w, http.StatusOK, resp)
		return nil
	}
	c.release() // waiting costs a poll now and then, not a slot
	proof, err := s.wait(c, req.UserID, index, vproof, entryHash, row.CommitTs, quorum)
	if errors.Is(err, errWaitTimeout) {
		// The body is the UpdateResponse (the receipt), as package api
		// specifies for 504; the header names the code.
		c.w.Header().Set("X-Conifer-Error-Code", CodeWaitTimeout)
		writeJSON(c.w, http.StatusGatewayTimeout, resp)
		return nil
	}
	if err != nil {
		return err
	}
	resp.Proof = proof
	writeJSON(c.w, http.StatusOK, resp)
	return nil
}

// checkProfile checks what the request carries beside the entry.
func checkProfile(entry *format.Entry, profile, opening []byte) error {
	if entry.Tombstone {
		if len(profile) != 0 || len(opening) != 0 {
			return errorf(http.StatusBadRequest, CodeMalformed, "a tombstone carries no profile or opening")
		}
		return nil
	}
	if len(opening) != format.OpeningSize {
		return errorf(http.StatusBadRequest, CodeMalformed, "opening is %d bytes, want %d", len(opening), format.OpeningSize)
	}
	if _, err := format.ParseProfile(profile); err != nil {
		return errorf(http.StatusBadRequest, CodeMalformed, "%v", err)
	}
	if format.CommitProfile([format.OpeningSize]byte(opening), profile) != entry.Commitment {
		return errorf(http.StatusBadRequest, CodeCommitment, "the profile and opening do not open the entry's commitment")
	}
	return nil
}

// registration returns the authorisation a version 1 entry's log record
// carries, or nil for a later version. A registrar signature is checked by
// statemachine.Check (in the append); an ID token here.
func (s *Server) registration(ctx context.Context, entry *format.Entry, entryHash [32]byte, req *api.UpdateRequest) (*format.Registration, error) {
	hasSig, hasTok := len(req.RegistrarSignature) != 0, req.IDToken != ""
	if entry.Version != 1 {
		if hasSig || hasTok {
			return nil, errorf(http.StatusBadRequest, CodeMalformed, "only a registration (version 1) carries a registrar signature or an ID token")
		}
		return nil, nil
	}
	switch {
	case hasSig && hasTok:
		return nil, errorf(http.StatusBadRequest, CodeMalformed, "a registration carries a registrar signature or an ID token, not both")
	case hasSig:
		const n = format.KeyIDSize + 64
		if len(req.RegistrarSignature) != n {
			return nil, errorf(http.StatusBadRequest, CodeMalformed, "registrar_signature is %d bytes, want %d (key id and Ed25519 signature)", len(req.RegistrarSignature), n)
		}
		reg := &format.Registration{Kind: format.RegistrationRegistrar}
		copy(reg.Registrar.KeyID[:], req.RegistrarSignature)
		copy(reg.Registrar.Sig[:], req.RegistrarSignature[format.KeyIDSize:])
		return reg, nil
	case hasTok:
		if s.idTokens == nil || len(s.realm.Registration.OIDC) == 0 {
			return nil, errorf(http.StatusForbidden, CodeIDToken, "this realm accepts no ID tokens")
		}
		iss, err := s.idTokens.Verify(ctx, req.IDToken, req.UserID, format.OIDCNonce(entryHash))
		if err != nil {
			return nil, err
		}
		return &format.Registration{Kind: format.RegistrationOIDC, Issuer: iss}, nil
	}
	return nil, errorf(http.StatusForbidden, CodeRegistration, "a registration needs a registrar signature or an ID token")
}

var errWaitTimeout = errors.New("wait timed out")

// wait polls the newest epoch co-signed by quorum verifiers until its cut
// covers logTime, then answers the lookup proof at that epoch if the
// user's history there contains the update (entryHash), or 409
// update_rejected if the epoch refused it. It gives up after
// Limits.WaitTimeout (errWaitTimeout).
func (s *Server) wait(c *call, userID string, index [32]byte, vproof [vrf.ProofSize]byte, entryHash [32]byte, logTime time.Time, quorum int) (*api.LookupProof, error) {
	ctx, cancel := context.WithTimeout(c.ctx, s.limits.WaitTimeout)
	defer cancel()
	for {
		ep, err := s.store.LatestEpoch(ctx, s.names, quorum)
		switch {
		case err == nil && !ep.Cut.Before(logTime):
			lp, st, err := s.lookupAt(ctx, userID, index, vproof, ep)
			if err != nil {
				return nil, err
			}
			for _, r := range st.Records {
				lr, err := format.ParseLeafRecord(r.LeafRecord)
				if err == nil && lr.EntryHash == entryHash {
					return lp, nil
				}
			}
			return nil, errorf(http.StatusConflict, CodeUpdateRejected, "epoch %d contains the update's log position but did not apply it (another update won, or the state changed)", ep.Epoch)
		case err == nil, errors.Is(err, storage.ErrNotFound):
		case ctx.Err() != nil && c.ctx.Err() == nil:
			return nil, errWaitTimeout
		default:
			return nil, fmt.Errorf("couldn't wait for an epoch: %w", err)
		}
		if err := s.sleep(ctx, s.limits.WaitPoll); err != nil {
			if c.ctx.Err() != nil {
				return nil, c.ctx.Err()
			}
			return nil, errWaitTimeout
		}
	}
}
