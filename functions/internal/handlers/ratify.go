package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/functions/internal/storage"
)

// maxCosignatureSkew is how far in the future a co-signature's timestamp
// may be: a verifier's clock a little ahead is tolerated, a signature
// dated days ahead is refused (clients may reject it).
const maxCosignatureSkew = 10 * time.Minute

// sigLine is a parsed note signature line "— <name> <base64>\n".
type sigLine struct {
	name string
	hash uint32
	sig  []byte // after the 4-byte key hash
	line string // canonical, with its newline
}

// parseSigLine parses one signature line strictly: the em dash and single
// spaces, a valid key name, canonical padded base64 of at least the 4-byte
// key hash, an optional final newline, nothing else.
func parseSigLine(s string) (*sigLine, error) {
	s = strings.TrimSuffix(s, "\n")
	rest, ok := strings.CutPrefix(s, "— ")
	if !ok {
		return nil, errorf(http.StatusBadRequest, CodeMalformed, "signature is not a note signature line (\"— name base64\")")
	}
	name, b64, ok := strings.Cut(rest, " ")
	if !ok || strings.Contains(b64, " ") || strings.ContainsAny(b64, "\n\r") {
		return nil, errorf(http.StatusBadRequest, CodeMalformed, "signature line must be \"— name base64\"")
	}
	if !checkpoint.ValidKeyName(name) {
		return nil, errorf(http.StatusBadRequest, CodeMalformed, "signature line names an invalid key name")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || base64.StdEncoding.EncodeToString(raw) != b64 {
		return nil, errorf(http.StatusBadRequest, CodeMalformed, "signature is not canonical base64")
	}
	if len(raw) < 4 {
		return nil, errorf(http.StatusBadRequest, CodeMalformed, "signature is shorter than its key hash")
	}
	return &sigLine{name: name, hash: binary.BigEndian.Uint32(raw), sig: raw[4:], line: "— " + name + " " + b64 + "\n"}, nil
}

// ratify answers POST /Ratify: a verifier's tlog-cosignature/v1 line for
// epoch N's checkpoint (size N+1). The key (name and key hash) must be one
// of the realm's verifiers (403 unknown_verifier), the signature must
// verify over the stored checkpoint text and be dated at most 10 minutes
// ahead (400 bad_signature). Storing is idempotent; the answer counts the
// realm verifiers that have co-signed the epoch.
func (s *Server) ratify(c *call) error {
	var req api.RatifyRequest
	if err := readBody(c, &req); err != nil {
		return err
	}
	sl, err := parseSigLine(req.Signature)
	if err != nil {
		return err
	}
	var v *checkpoint.CosignatureVerifier
	for _, cv := range s.cosigners {
		if cv.Name() == sl.name && cv.KeyHash() == sl.hash {
			v = cv
		}
	}
	if v == nil {
		return errorf(http.StatusForbidden, CodeUnknownVerifier, "key %q (hash %08x) is not a verifier of the realm", sl.name, sl.hash)
	}
	c.log = c.log.With("verifier", sl.name, "epoch", req.Epoch)
	ep, err := s.store.GetEpoch(c.ctx, req.Epoch)
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusNotFound, CodeNotFound, "epoch %d is not committed", req.Epoch)
	}
	if err != nil {
		return err
	}
	text, _, ok := bytes.Cut(ep.Checkpoint, []byte("\n\n"))
	if !ok {
		return errors.New("stored checkpoint is not a signed note")
	}
	text = append(text, '\n')
	ts, ok := v.VerifyTimestamp(text, sl.sig)
	if !ok {
		return errorf(http.StatusBadRequest, CodeBadSignature, "the co-signature does not verify over epoch %d's checkpoint", req.Epoch)
	}
	if time.Unix(int64(ts), 0).After(s.now().Add(maxCosignatureSkew)) {
		return errorf(http.StatusBadRequest, CodeBadSignature, "the co-signature is dated %s, in the future", time.Unix(int64(ts), 0).UTC().Format(time.RFC3339))
	}
	ep, err = s.store.AddCosignature(c.ctx, req.Epoch, sl.name, []byte(sl.line))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, &api.RatifyResponse{Epoch: req.Epoch, Cosigners: s.cosigned(ep)})
	return nil
}
