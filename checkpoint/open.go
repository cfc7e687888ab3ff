package checkpoint

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Size limits of a signed checkpoint note.
const (
	// MaxNoteLen is the longest signed note accepted, in bytes.
	MaxNoteLen = 64 << 10
	// MaxSignatures is the largest number of signature lines accepted in a
	// note (c2sp.org/signed-note requires accepting at least 16).
	MaxSignatures = 32
)

var (
	// ErrMalformedNote is wrapped when a note is not a well-formed,
	// canonical signed note: bad UTF-8 or control characters, no blank line
	// before the signatures, a bad signature line, non-canonical base64,
	// or more than the size limits.
	ErrMalformedNote = errors.New("malformed signed note")
	// ErrDuplicateSignature is wrapped when two signature lines of a note
	// name the same key (name and key ID).
	ErrDuplicateSignature = errors.New("duplicate signature")
	// ErrBadSignature is wrapped when a signature by a known key does not
	// verify. The whole note is rejected, as c2sp.org/signed-note advises.
	ErrBadSignature = errors.New("invalid signature")
	// ErrMissingLogSignature is wrapped when a note carries no signature by
	// the keyserver's key.
	ErrMissingLogSignature = errors.New("missing log signature")
	// ErrWrongOrigin is wrapped when a checkpoint is for another log.
	ErrWrongOrigin = errors.New("wrong checkpoint origin")
	// ErrExtensions is wrapped when a Conifer checkpoint has extension
	// lines. Conifer never produces them and refuses them everywhere it
	// signs or accepts a checkpoint of a realm.
	ErrExtensions = errors.New("checkpoint has extension lines")
	// ErrQuorum is wrapped when fewer distinct cosigners than required
	// signed a checkpoint.
	ErrQuorum = errors.New("cosigner quorum not met")
	// ErrTextMismatch is wrapped when notes given to [Merge] sign
	// different checkpoints.
	ErrTextMismatch = errors.New("notes sign different checkpoints")
	// ErrUnknownSigner is wrapped when a note given to [Merge] carries no
	// signature by any key of the realm.
	ErrUnknownSigner = errors.New("no signature by a known key")
	// ErrConfig is wrapped when the keys or quorum passed in are unusable:
	// nil keys, a log key not named after the origin or of the cosignature
	// type, two keys with the same name and key ID, two cosigners with the
	// same public key, or a quorum out of range.
	ErrConfig = errors.New("invalid verification configuration")
)

// Verified is a checkpoint whose note passed [Open].
type Verified struct {
	// Checkpoint is the parsed note text.
	Checkpoint Checkpoint
	// Note is the note as parsed by note.Open: Sigs holds the keyserver's
	// signature and the valid cosignatures, UnverifiedSigs the signatures
	// by keys not in the configuration (ignored).
	Note *note.Note
	// Cosignatures lists the cosigners whose signatures verified, in the
	// order of the cosigners argument.
	Cosignatures []Cosignature
}

// Cosignature is one valid tlog-cosignature/v1 signature on a checkpoint.
type Cosignature struct {
	// Name and KeyHash identify the cosigner key.
	Name    string
	KeyHash uint32
	// Timestamp is the cosigner's claimed time of signing, POSIX seconds.
	Timestamp uint64
	// Signature is the note signature line's content.
	Signature note.Signature
}

// Open verifies a signed checkpoint note of the realm origin and returns
// its checkpoint. It checks, in order:
//
//   - the note is well-formed: at most [MaxNoteLen] bytes and
//     [MaxSignatures] signature lines, canonical base64, no two signature
//     lines for the same key name and key ID;
//   - every signature by a configured key verifies (else the whole note is
//     rejected), and one of them is by log, the keyserver key, whose name
//     must equal origin;
//   - the text is a canonical checkpoint with Origin == origin and no
//     extension lines;
//   - at least quorum distinct cosigners among cosigners signed it.
//
// Signatures by keys not configured are ignored, as the note specification
// requires; they do not count toward the quorum. The caller decides
// whether the checkpoint is fresh enough (the epoch head inside the log has
// its own time) and may reject cosignature timestamps in its future.
func Open(msg []byte, origin string, log note.Verifier, cosigners []*CosignatureVerifier, quorum int) (*Verified, error) {
	known, err := realmVerifiers(origin, log, cosigners, quorum)
	if err != nil {
		return nil, fmt.Errorf("couldn't open checkpoint: %w", err)
	}
	v, err := open(msg, origin, log, known, true)
	if err != nil {
		return nil, fmt.Errorf("couldn't open checkpoint: %w", err)
	}
	if len(v.Cosignatures) < quorum {
		return nil, fmt.Errorf("couldn't open checkpoint: %w: %d of %d cosigners signed", ErrQuorum, len(v.Cosignatures), quorum)
	}
	return v, nil
}

// realmVerifiers checks the configuration and returns the verifier set.
func realmVerifiers(origin string, log note.Verifier, cosigners []*CosignatureVerifier, quorum int) (*Verifiers, error) {
	if log == nil {
		return nil, fmt.Errorf("%w: nil log key", ErrConfig)
	}
	if _, ok := log.(*CosignatureVerifier); ok {
		return nil, fmt.Errorf("%w: the log key is a cosignature (type 0x04) key", ErrConfig)
	}
	if log.Name() != origin {
		return nil, fmt.Errorf("%w: log key %q is not named after the origin %q", ErrConfig, log.Name(), origin)
	}
	if quorum < 0 || quorum > len(cosigners) {
		return nil, fmt.Errorf("%w: quorum %d of %d cosigners", ErrConfig, quorum, len(cosigners))
	}
	list := make([]note.Verifier, 0, 1+len(cosigners))
	list = append(list, log)
	keys := make(map[string]bool, len(cosigners))
	for _, c := range cosigners {
		if c == nil {
			return nil, fmt.Errorf("%w: nil cosigner key", ErrConfig)
		}
		// The Ed25519 cosigned message does not name the cosigner, so one
		// public key under two names would count one signature twice.
		if keys[string(c.pub)] {
			return nil, fmt.Errorf("%w: cosigner %q reuses another cosigner's public key", ErrConfig, c.name)
		}
		keys[string(c.pub)] = true
		list = append(list, c)
	}
	return NewVerifierList(list...)
}

// open does the work of Open without the quorum check. If requireLog is
// false, a note without the log signature is accepted as long as it has a
// valid signature by some known key.
func open(msg []byte, origin string, log note.Verifier, known *Verifiers, requireLog bool) (*Verified, error) {
	if _, err := scanNote(msg); err != nil {
		return nil, err
	}
	n, err := note.Open(msg, known)
	if err != nil {
		var inv *note.InvalidSignatureError
		var unv *note.UnverifiedNoteError
		switch {
		case errors.As(err, &inv):
			return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
		case errors.As(err, &unv) && requireLog:
			return nil, fmt.Errorf("%w: no signature by a configured key", ErrMissingLogSignature)
		case errors.As(err, &unv):
			return nil, ErrUnknownSigner
		default:
			return nil, fmt.Errorf("%w: %w", ErrMalformedNote, err)
		}
	}
	c, err := Parse([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	if c.Origin != origin {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrWrongOrigin, c.Origin, origin)
	}
	if len(c.Extensions) != 0 {
		return nil, ErrExtensions
	}
	v := &Verified{Checkpoint: c, Note: n}
	haveLog := false
	for _, s := range n.Sigs {
		if s.Name == log.Name() && s.Hash == log.KeyHash() {
			haveLog = true
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(raw) != 4+CosignatureLen {
			// note.Open verified it with a cosignature verifier, which
			// accepts only this length.
			panic("checkpoint: verified cosignature has the wrong length")
		}
		v.Cosignatures = append(v.Cosignatures, Cosignature{
			Name:      s.Name,
			KeyHash:   s.Hash,
			Timestamp: binary.BigEndian.Uint64(raw[4:12]),
			Signature: s,
		})
	}
	if !haveLog && requireLog {
		return nil, fmt.Errorf("%w: %s+%08x did not sign", ErrMissingLogSignature, log.Name(), log.KeyHash())
	}
	order := make(map[nameHash]int, len(known.list))
	for i, k := range known.list {
		order[nameHash{k.Name(), k.KeyHash()}] = i
	}
	slices.SortFunc(v.Cosignatures, func(a, b Cosignature) int {
		return cmp.Compare(order[nameHash{a.Name, a.KeyHash}], order[nameHash{b.Name, b.KeyHash}])
	})
	return v, nil
}

// sigLine is one parsed signature line of a note.
type sigLine struct {
	name string
	hash uint32
	b64  string
}

var (
	sigSplit  = []byte("\n\n")
	sigPrefix = []byte("— ")
)

// scanNote checks what note.Open does not: size limits, canonical base64,
// and no two signatures by the same key. note.Open keeps the first
// signature of a key and skips later ones unverified, so without this check
// a note could carry signature lines nobody verified.
//
// Grammar (c2sp.org/signed-note):
//
//	note      = text LF 1*( sigline )          ; split at the last LF LF
//	text      = 1*( line LF )
//	sigline   = "— " name " " base64( keyID(4) || signature ) LF
func scanNote(msg []byte) ([]sigLine, error) {
	if len(msg) > MaxNoteLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformedNote, MaxNoteLen)
	}
	for i := 0; i < len(msg); {
		r, size := utf8.DecodeRune(msg[i:])
		if r < 0x20 && r != '\n' || r == utf8.RuneError && size == 1 {
			return nil, fmt.Errorf("%w: control character or invalid UTF-8 at byte %d", ErrMalformedNote, i)
		}
		i += size
	}
	split := bytes.LastIndex(msg, sigSplit)
	if split < 0 {
		return nil, fmt.Errorf("%w: no blank line before the signatures", ErrMalformedNote)
	}
	sigs := msg[split+2:]
	if len(sigs) == 0 || sigs[len(sigs)-1] != '\n' {
		return nil, fmt.Errorf("%w: signatures do not end with a newline", ErrMalformedNote)
	}
	var out []sigLine
	seen := make(map[nameHash]bool)
	for len(sigs) > 0 {
		i := bytes.IndexByte(sigs, '\n')
		line := sigs[:i]
		sigs = sigs[i+1:]
		if len(out) == MaxSignatures {
			return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformedNote, MaxSignatures)
		}
		l, err := parseSigLine(line)
		if err != nil {
			return nil, err
		}
		k := nameHash{l.name, l.hash}
		if seen[k] {
			return nil, fmt.Errorf("%w: two signatures by %s+%08x", ErrDuplicateSignature, l.name, l.hash)
		}
		seen[k] = true
		out = append(out, l)
	}
	return out, nil
}

func parseSigLine(line []byte) (sigLine, error) {
	rest, ok := bytes.CutPrefix(line, sigPrefix)
	if !ok {
		return sigLine{}, fmt.Errorf("%w: signature line does not start with an em dash", ErrMalformedNote)
	}
	name, b64, ok := bytes.Cut(rest, []byte(" "))
	if !ok || !ValidKeyName(string(name)) {
		return sigLine{}, fmt.Errorf("%w: invalid key name in signature line", ErrMalformedNote)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(string(b64))
	if err != nil || len(sig) < 5 || base64.StdEncoding.EncodeToString(sig) != string(b64) {
		return sigLine{}, fmt.Errorf("%w: signature of %s is not canonical base64 of at least 5 bytes", ErrMalformedNote, name)
	}
	return sigLine{name: string(name), hash: binary.BigEndian.Uint32(sig), b64: string(b64)}, nil
}

// Merge combines signed notes of one checkpoint into a single note, as the
// ratify function does when a verifier sends its cosignature: typically
// notes[0] is the stored note and notes[1] the verifier's note (the same
// text, signed by its cosigner).
//
// Every note must pass the checks of [Open] except the quorum and the
// presence of the log signature in each; all must have the same text; each
// must carry at least one valid signature by a configured key; and at least
// one must carry the keyserver's signature. Signatures by unconfigured keys
// are dropped. If a cosigner signed more than once, the signature with the
// latest timestamp is kept (ties: the smaller base64 string).
//
// The output is deterministic: the text, a blank line, the keyserver's
// signature, then the cosignatures sorted by key name and key ID.
func Merge(origin string, log note.Verifier, cosigners []*CosignatureVerifier, notes ...[]byte) ([]byte, error) {
	known, err := realmVerifiers(origin, log, cosigners, 0)
	if err != nil {
		return nil, fmt.Errorf("couldn't merge checkpoints: %w", err)
	}
	if len(notes) == 0 {
		return nil, fmt.Errorf("couldn't merge checkpoints: %w: no notes", ErrMalformedNote)
	}
	var text string
	var logSig *note.Signature
	best := make(map[nameHash]Cosignature)
	for i, msg := range notes {
		v, err := open(msg, origin, log, known, false)
		if err != nil {
			return nil, fmt.Errorf("couldn't merge checkpoints: note %d: %w", i, err)
		}
		if i == 0 {
			text = v.Note.Text
		} else if v.Note.Text != text {
			return nil, fmt.Errorf("couldn't merge checkpoints: note %d: %w", i, ErrTextMismatch)
		}
		for _, s := range v.Note.Sigs {
			if s.Name == log.Name() && s.Hash == log.KeyHash() {
				if logSig == nil || s.Base64 < logSig.Base64 {
					logSig = &s
				}
			}
		}
		for _, c := range v.Cosignatures {
			k := nameHash{c.Name, c.KeyHash}
			old, ok := best[k]
			if !ok || c.Timestamp > old.Timestamp ||
				c.Timestamp == old.Timestamp && c.Signature.Base64 < old.Signature.Base64 {
				best[k] = c
			}
		}
	}
	if logSig == nil {
		return nil, fmt.Errorf("couldn't merge checkpoints: %w", ErrMissingLogSignature)
	}
	sigs := []note.Signature{*logSig}
	cos := make([]note.Signature, 0, len(best))
	for _, c := range best {
		cos = append(cos, c.Signature)
	}
	slices.SortFunc(cos, func(a, b note.Signature) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Hash, b.Hash))
	})
	sigs = append(sigs, cos...)
	out, err := note.Sign(&note.Note{Text: text, Sigs: sigs})
	if err != nil {
		return nil, fmt.Errorf("couldn't merge checkpoints: %w", err)
	}
	if len(out) > MaxNoteLen {
		return nil, fmt.Errorf("couldn't merge checkpoints: %w: result longer than %d bytes", ErrMalformedNote, MaxNoteLen)
	}
	return out, nil
}
