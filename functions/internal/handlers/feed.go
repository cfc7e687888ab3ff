package handlers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/storage"
)

// checkFeedChunk checks a chunk size: room for a chunk header and data,
// at most format.MaxChunkSize.
func checkFeedChunk(n int) (int, error) {
	if n < 1024 || n > format.MaxChunkSize {
		return 0, fmt.Errorf("feed chunk size %d is not in [1024, %d]", n, format.MaxChunkSize)
	}
	return n, nil
}

// feed answers GET /Feed?epoch=N[&part=P] with chunk P (default 0) of
// epoch N's bundle: the head, the keyserver-signed checkpoint (without
// co-signatures, so the bundle's bytes and digest never change as
// co-signatures arrive: a verifier may fetch the parts in separate
// requests) and the epoch's log records in order — exactly the bundle the
// epoch function publishes.
func (s *Server) feed(c *call) error {
	q, err := parseQuery(c.r, "epoch", "part")
	if err != nil {
		return err
	}
	if !q.has("epoch") {
		return errorf(http.StatusBadRequest, CodeMalformed, "epoch is required")
	}
	n, err := q.uint("epoch")
	if err != nil {
		return err
	}
	var part uint64
	if q.has("part") {
		if part, err = q.uint("part"); err != nil {
			return err
		}
	}
	parts, err := s.bundleChunks(c, n)
	if err != nil {
		return err
	}
	if part >= uint64(len(parts)) {
		return errorf(http.StatusNotFound, CodeNotFound, "epoch %d's bundle has %d parts", n, len(parts))
	}
	writeJSON(c.w, http.StatusOK, &api.FeedResponse{Epoch: n, Part: uint32(part), Parts: uint32(len(parts)), Chunk: parts[part]})
	return nil
}

// bundleChunks returns the encoded chunks of epoch n's bundle, from a
// one-epoch cache (verifiers fetch the parts of one bundle in a row).
func (s *Server) bundleChunks(c *call, n uint64) ([][]byte, error) {
	s.feedMu.Lock()
	if s.feedParts != nil && s.feedEpoch == n {
		p := s.feedParts
		s.feedMu.Unlock()
		return p, nil
	}
	s.feedMu.Unlock()
	ep, err := s.store.GetEpoch(c.ctx, n)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, CodeNotFound, "epoch %d is not committed", n)
	}
	if err != nil {
		return nil, err
	}
	rows, err := s.store.Records(c.ctx, n)
	if err != nil {
		return nil, err
	}
	signed, err := checkpoint.Merge(s.realm.Realm, s.logVerifier, nil, ep.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("couldn't strip co-signatures from epoch %d's checkpoint: %w", n, err)
	}
	b := &format.Bundle{Head: ep.Head, Checkpoint: signed, Records: make([][]byte, len(rows))}
	for i, r := range rows {
		b.Records[i] = r.Record
	}
	enc, err := b.Marshal()
	if err != nil {
		return nil, fmt.Errorf("couldn't encode epoch %d's bundle: %w", n, err)
	}
	chunks, err := format.SplitBundle(enc, s.limits.FeedChunkBytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't split epoch %d's bundle: %w", n, err)
	}
	parts := make([][]byte, len(chunks))
	for i := range chunks {
		if parts[i], err = chunks[i].Marshal(); err != nil {
			return nil, fmt.Errorf("couldn't encode chunk %d of epoch %d: %w", i, n, err)
		}
	}
	s.feedMu.Lock()
	s.feedEpoch, s.feedParts = n, parts
	s.feedMu.Unlock()
	return parts, nil
}
