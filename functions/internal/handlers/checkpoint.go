package handlers

import (
	"errors"
	"net/http"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/functions/internal/storage"
)

// checkpoint answers GET /Checkpoint in one of four forms (no other
// parameter combination is accepted):
//
//	(no parameters)    the newest checkpoint note, text/plain, with every co-signature so far
//	?realm=1           the server's copy of the realm config (JSON)
//	?epoch=N[&size=S]  api.HeadResponse: head N, its inclusion proof in the log of size S
//	                   (default: the newest size) and the checkpoint of size S
//	?from=A&to=B       api.ConsistencyResponse between log sizes A ≤ B
//
// Sizes beyond the newest committed epoch + 1 are 404.
func (s *Server) checkpoint(c *call) error {
	q, err := parseQuery(c.r, "realm", "epoch", "size", "from", "to")
	if err != nil {
		return err
	}
	switch {
	case len(q.v) == 0:
		ep, err := s.newest(c)
		if err != nil {
			return err
		}
		c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		c.w.Header().Set("Cache-Control", "no-store")
		c.w.Write(ep.Checkpoint)
		return nil
	case q.has("realm") && len(q.v) == 1:
		if q.str("realm") != "1" {
			return errorf(http.StatusBadRequest, CodeMalformed, "realm must be 1")
		}
		c.w.Header().Set("Content-Type", "application/json")
		c.w.Write(s.realmDoc)
		return nil
	case q.has("epoch") && !q.has("realm") && !q.has("from") && !q.has("to"):
		return s.head(c, q)
	case q.has("from") && q.has("to") && len(q.v) == 2:
		return s.consistency(c, q)
	}
	return errorf(http.StatusBadRequest, CodeMalformed, "use no parameters, realm=1, epoch=N[&size=S] or from=A&to=B")
}

func (s *Server) newest(c *call) (*storage.Epoch, error) {
	ep, err := s.store.NewestEpoch(c.ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, CodeNotFound, "no epoch has been committed yet")
	}
	return ep, err
}

func (s *Server) head(c *call, q query) error {
	n, err := q.uint("epoch")
	if err != nil {
		return err
	}
	ep, err := s.store.GetEpoch(c.ctx, n)
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusNotFound, CodeNotFound, "epoch %d is not committed", n)
	}
	if err != nil {
		return err
	}
	var size uint64
	if q.has("size") {
		if size, err = q.uint("size"); err != nil {
			return err
		}
	} else {
		newest, err := s.newest(c)
		if err != nil {
			return err
		}
		size = newest.Epoch + 1
	}
	if size <= n {
		return errorf(http.StatusBadRequest, CodeMalformed, "epoch %d is not in a log of size %d", n, size)
	}
	resp := &api.HeadResponse{Epoch: n, Head: ep.Head, Size: size}
	if size == n+1 {
		resp.Proof, resp.Checkpoint = hashes(ep.HeadProof), ep.Checkpoint
	} else {
		last, err := s.store.GetEpoch(c.ctx, size-1)
		if errors.Is(err, storage.ErrNotFound) {
			return errorf(http.StatusNotFound, CodeNotFound, "the log has no size %d yet", size)
		}
		if err != nil {
			return err
		}
		p, err := checkpoint.InclusionProof(n, size, s.store.LogHashes())
		if err != nil {
			return err
		}
		resp.Proof, resp.Checkpoint = hashes(p), last.Checkpoint
	}
	writeJSON(c.w, http.StatusOK, resp)
	return nil
}

func (s *Server) consistency(c *call, q query) error {
	from, err := q.uint("from")
	if err != nil {
		return err
	}
	to, err := q.uint("to")
	if err != nil {
		return err
	}
	if from > to {
		return errorf(http.StatusBadRequest, CodeMalformed, "from %d is after to %d", from, to)
	}
	newest, err := s.newest(c)
	if err != nil {
		return err
	}
	if to > newest.Epoch+1 {
		return errorf(http.StatusNotFound, CodeNotFound, "the log has size %d, not %d", newest.Epoch+1, to)
	}
	p, err := checkpoint.ConsistencyProof(from, to, s.store.LogHashes())
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, &api.ConsistencyResponse{From: from, To: to, Proof: hashes(p)})
	return nil
}
