package verifier

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// EvidenceDir is the directory, inside the data directory, that holds
// evidence files.
const EvidenceDir = "evidence"

// Evidence is the JSON document the verifier writes when a check fails.
// Byte fields are standard base64 (Go's encoding of []byte). A reader
// can check it without trusting the verifier: Checkpoint is the
// keyserver's signed note (verify it with the realm's log key; when
// LogSignatureValid is true it verifies), Bundle the whole offending
// bundle (head, the same note, and every record), and the previous or
// conflicting checkpoint and head are the keyserver's own signed
// statements the verifier had accepted.
type Evidence struct {
	// Realm is the realm name, Verifier the cosigner name.
	Realm    string `json:"realm"`
	Verifier string `json:"verifier"`
	// Epoch is the epoch of the offending bundle.
	Epoch uint64 `json:"epoch"`
	// Check is the check that failed, Detail what was wrong.
	Check  Check  `json:"check"`
	Detail string `json:"detail"`
	// Time is when the verifier found it (its clock, RFC 3339).
	Time string `json:"time"`
	// LogSignatureValid says whether Checkpoint carries a valid
	// signature by the realm's log key, i.e. whether the keyserver
	// signed what is shown.
	LogSignatureValid bool `json:"log_signature_valid"`
	// Checkpoint is the signed note in the offending bundle (nil if the
	// bundle could not be split into its fields).
	Checkpoint []byte `json:"checkpoint,omitempty"`
	// Head is the encoded epoch head in the offending bundle.
	Head []byte `json:"head,omitempty"`
	// Bundle is the offending encoded format.Bundle, records included.
	Bundle []byte `json:"bundle"`
	// ReplayedHead is the head the verifier computed by replaying the
	// records, when the failure came from the replay.
	ReplayedHead []byte `json:"replayed_head,omitempty"`
	// Rejections lists the records the statemachine refused in the
	// replay (a keyserver that applied one of them has a wrong tree root).
	Rejections []Rejection `json:"rejections,omitempty"`
	// PreviousCheckpoint and PreviousHead are the newest epoch the
	// verifier had verified before this bundle (epoch-1): the log the
	// offending checkpoint must extend.
	PreviousCheckpoint []byte `json:"previous_checkpoint,omitempty"`
	PreviousHead       []byte `json:"previous_head,omitempty"`
	// VerifiedCheckpoint and VerifiedHead are, for an equivocation, what
	// the verifier verified for the same epoch.
	VerifiedCheckpoint []byte `json:"verified_checkpoint,omitempty"`
	VerifiedHead       []byte `json:"verified_head,omitempty"`
}

// Rejection is a record the statemachine refused during a replay.
type Rejection struct {
	Position int    `json:"position"`
	Code     string `json:"code"`
	Reason   string `json:"reason"`
}

// writeEvidence writes e durably to a new file under dir/evidence and
// returns its path relative to dir.
func writeEvidence(dir string, e *Evidence, now time.Time) (string, error) {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return "", fmt.Errorf("couldn't encode evidence: %w", err)
	}
	b = append(b, '\n')
	edir := filepath.Join(dir, EvidenceDir)
	if err := os.MkdirAll(edir, 0o755); err != nil {
		return "", fmt.Errorf("couldn't create evidence directory: %w", err)
	}
	name := fmt.Sprintf("epoch-%d-%s-%d.json", e.Epoch, e.Check, now.UnixNano())
	tmp, err := os.CreateTemp(edir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("couldn't write evidence: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return "", fmt.Errorf("couldn't write evidence: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("couldn't write evidence: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("couldn't write evidence: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("couldn't write evidence: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(edir, name)); err != nil {
		return "", fmt.Errorf("couldn't write evidence: %w", err)
	}
	if d, err := os.Open(edir); err == nil {
		d.Sync()
		d.Close()
	}
	return filepath.Join(EvidenceDir, name), nil
}

// listEvidence returns the evidence files under dir, relative to dir, sorted.
func listEvidence(dir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, EvidenceDir))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't list evidence: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(EvidenceDir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}
