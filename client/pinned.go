package client

import (
	"errors"
	"fmt"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/vrf"
	"golang.org/x/mod/sumdb/note"
)

// Pinned is a realm config parsed once for verification, with the quorum of
// verifiers the client demands. Parsing the keys once makes every
// verification cost only its signatures, VRF and hashes. A Pinned is
// immutable and safe for concurrent use.
type Pinned struct {
	cfg       *realm.Config
	quorum    int
	vrf       *vrf.PublicKey
	log       note.Verifier
	cosigners []*checkpoint.CosignatureVerifier
}

// NewPinned parses cfg's keys and returns a Pinned demanding quorum
// co-signers. The quorum must be at least cfg.Quorum (a client may demand
// more than the realm's minimum, never less) and at most the number of
// verifiers. The config must be valid (realm.Parse output is).
func NewPinned(cfg *realm.Config, quorum int) (*Pinned, error) {
	if cfg == nil {
		return nil, errors.New("couldn't pin realm: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("couldn't pin realm: %w", err)
	}
	if quorum < cfg.Quorum || quorum > len(cfg.Verifiers) {
		return nil, fmt.Errorf("couldn't pin realm: %w: quorum %d must be between the realm's quorum %d and the number of verifiers %d",
			realm.ErrInvalid, quorum, cfg.Quorum, len(cfg.Verifiers))
	}
	vk, err := vrf.ParsePublicKey(cfg.VRFPublicKey)
	if err != nil {
		return nil, fmt.Errorf("couldn't pin realm: vrf_public_key: %w", err)
	}
	name, alg, _, err := checkpoint.ParseVerifierKey(cfg.LogKey)
	if err != nil {
		return nil, fmt.Errorf("couldn't pin realm: log_key: %w", err)
	}
	if alg != checkpoint.AlgEd25519 || name != cfg.Realm {
		return nil, fmt.Errorf("couldn't pin realm: log_key: %w: must be an Ed25519 (type 0x01) key named %q", realm.ErrInvalid, cfg.Realm)
	}
	log, err := checkpoint.NewVerifier(cfg.LogKey)
	if err != nil {
		return nil, fmt.Errorf("couldn't pin realm: log_key: %w", err)
	}
	p := &Pinned{cfg: cfg, quorum: quorum, vrf: vk, log: log}
	for i, v := range cfg.Verifiers {
		cv, err := checkpoint.NewCosignatureVerifier(v)
		if err != nil {
			return nil, fmt.Errorf("couldn't pin realm: verifiers[%d]: %w", i, err)
		}
		p.cosigners = append(p.cosigners, cv)
	}
	// Let the checkpoint package refuse what it refuses (shared public
	// keys, name clashes) now rather than at the first verification.
	if _, err := checkpoint.NewVerifiers(append([]string{cfg.LogKey}, cfg.Verifiers...)...); err != nil {
		return nil, fmt.Errorf("couldn't pin realm: %w", err)
	}
	seen := map[string]bool{}
	for i, c := range p.cosigners {
		if seen[string(c.PublicKey())] {
			return nil, fmt.Errorf("couldn't pin realm: verifiers[%d]: %w: public key shared with another verifier", i, realm.ErrInvalid)
		}
		seen[string(c.PublicKey())] = true
	}
	return p, nil
}

// Config returns the pinned realm config. Callers must not modify it.
func (p *Pinned) Config() *realm.Config { return p.cfg }

// Quorum returns the number of co-signers demanded.
func (p *Pinned) Quorum() int { return p.quorum }

// Checkpoint is a verified checkpoint of the realm's epoch log.
type Checkpoint struct {
	checkpoint.Checkpoint
	// Note is the signed note as received (the keyserver's signature and
	// the co-signatures).
	Note []byte
	// Cosigners are the pinned verifiers whose co-signatures verified, with
	// their claimed signing times.
	Cosigners []checkpoint.Cosignature
}

// VerifyCheckpoint checks a signed checkpoint note against the pinned keys
// with the pinned quorum: signed by the keyserver, origin = realm, no
// extension lines, every pinned signature valid, and at least Quorum
// distinct pinned verifiers co-signed. Errors are *Error with
// ErrCheckpointSignature, ErrWrongRealm, ErrCosignature or
// ErrVerifierQuorum.
func (p *Pinned) VerifyCheckpoint(msg []byte) (*Checkpoint, error) {
	return p.verifyCheckpoint(msg, p.quorum, nil)
}

// verifyCheckpoint is VerifyCheckpoint with a quorum and the evidence to
// attach to failures.
func (p *Pinned) verifyCheckpoint(msg []byte, quorum int, ev *Evidence) (*Checkpoint, error) {
	v, err := checkpoint.Open(msg, p.cfg.Realm, p.log, p.cosigners, quorum)
	if err != nil {
		if ev == nil {
			ev = &Evidence{}
		}
		ev.Checkpoints = append(ev.Checkpoints, msg)
		switch {
		case errors.Is(err, checkpoint.ErrQuorum):
			return nil, &Error{Check: ErrVerifierQuorum, Err: err, Evidence: ev}
		case errors.Is(err, checkpoint.ErrWrongOrigin):
			return nil, &Error{Check: ErrWrongRealm, Err: err, Evidence: ev}
		case errors.Is(err, checkpoint.ErrBadSignature):
			// One bad signature rejects the note; say whose it was. If the
			// keyserver's signature alone verifies, a co-signature is forged.
			if _, lerr := checkpoint.Open(msg, p.cfg.Realm, p.log, nil, 0); lerr == nil {
				return nil, &Error{Check: ErrCosignature, Err: err, Evidence: ev}
			}
			return nil, &Error{Check: ErrCheckpointSignature, Err: err, Evidence: ev}
		default:
			return nil, &Error{Check: ErrCheckpointSignature, Err: err, Evidence: ev}
		}
	}
	return &Checkpoint{Checkpoint: v.Checkpoint, Note: msg, Cosigners: v.Cosignatures}, nil
}
