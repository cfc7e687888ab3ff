package checkpoint

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Size limits of a checkpoint body. They are far above anything a log
// produces and keep a hostile input from costing more than a few kilobytes.
const (
	// MaxOriginLen is the longest origin line accepted, in bytes. It is the
	// limit the ML-DSA-44 variant of c2sp.org/tlog-cosignature can carry
	// (opaque log_origin<1..2^8-1>), so every checkpoint we accept can be
	// cosigned by any standard cosigner.
	MaxOriginLen = 255
	// MaxExtensions is the largest number of extension lines accepted.
	MaxExtensions = 16
	// MaxTextLen is the longest checkpoint body accepted, in bytes,
	// including every newline.
	MaxTextLen = 4096
)

// ErrMalformed is wrapped by every error about a checkpoint body that is
// not a canonical c2sp.org/tlog-checkpoint text. The concrete error is a
// *ParseError naming the offending field.
var ErrMalformed = errors.New("malformed checkpoint")

// ParseError reports which field of a checkpoint body is not canonical.
// It unwraps to [ErrMalformed].
type ParseError struct {
	// Field is "text", "origin", "size", "hash" or "extension".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("malformed checkpoint: invalid %s: %s", e.Field, e.Reason)
}

// Unwrap returns [ErrMalformed].
func (e *ParseError) Unwrap() error { return ErrMalformed }

func parseErr(field, format string, args ...any) error {
	return &ParseError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Checkpoint is the body of a c2sp.org/tlog-checkpoint signed note: the
// head of an RFC 6962 Merkle log at some size.
//
// Encoding (every line ends in U+000A, no other control characters):
//
//	checkpoint = origin LF size LF hash LF *( extension LF )
//	origin     = 1*255 bytes of UTF-8, no control characters
//	size       = "0" / ( %x31-39 *DIGIT )           ; decimal, no leading zeros, < 2^64
//	hash       = 44 characters of base64 (RFC 4648 §4, padded, canonical) of 32 bytes
//	extension  = 1* bytes of UTF-8, no control characters ; at most 16 lines
//
// The whole body is at most [MaxTextLen] bytes.
type Checkpoint struct {
	// Origin identifies the log. For Conifer it is the realm name.
	Origin string
	// Size is the number of leaves in the log.
	Size uint64
	// Hash is the RFC 6962 root hash of the log at Size.
	Hash [32]byte
	// Extensions are the opaque extension lines, without their newlines.
	// Conifer never produces them; nil when there are none.
	Extensions []string
}

// Marshal returns the canonical text of c. It fails if c contains
// something Parse would reject, so that Parse(Marshal(c)) == c always holds.
func (c Checkpoint) Marshal() ([]byte, error) {
	if err := checkLine("origin", c.Origin); err != nil {
		return nil, err
	}
	if len(c.Origin) > MaxOriginLen {
		return nil, parseErr("origin", "longer than %d bytes", MaxOriginLen)
	}
	if len(c.Extensions) > MaxExtensions {
		return nil, parseErr("extension", "more than %d extension lines", MaxExtensions)
	}
	for _, e := range c.Extensions {
		if err := checkLine("extension", e); err != nil {
			return nil, err
		}
	}
	b := make([]byte, 0, len(c.Origin)+20+45+2)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Size, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Hash[:])
	b = append(b, '\n')
	for _, e := range c.Extensions {
		b = append(b, e...)
		b = append(b, '\n')
	}
	if len(b) > MaxTextLen {
		return nil, parseErr("text", "longer than %d bytes", MaxTextLen)
	}
	return b, nil
}

// Parse parses a checkpoint body (the text of a signed note, without the
// blank line and signatures). It accepts only the canonical encoding
// described on [Checkpoint]: exactly one way to write each value, a final
// newline, and no trailing bytes. Errors are *ParseError values wrapping
// [ErrMalformed].
func Parse(text []byte) (Checkpoint, error) {
	var c Checkpoint
	if len(text) > MaxTextLen {
		return c, parseErr("text", "longer than %d bytes", MaxTextLen)
	}
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return c, parseErr("text", "does not end with a newline")
	}
	lines := bytes.Split(text[:len(text)-1], []byte("\n"))
	if len(lines) < 3 {
		return c, parseErr("text", "has %d lines, want at least 3", len(lines))
	}
	if err := checkLine("origin", string(lines[0])); err != nil {
		return c, err
	}
	if len(lines[0]) > MaxOriginLen {
		return c, parseErr("origin", "longer than %d bytes", MaxOriginLen)
	}
	c.Origin = string(lines[0])

	size, err := parseSize(lines[1])
	if err != nil {
		return c, err
	}
	c.Size = size

	hash, err := parseHash(lines[2])
	if err != nil {
		return c, err
	}
	c.Hash = hash

	ext := lines[3:]
	if len(ext) > MaxExtensions {
		return c, parseErr("extension", "more than %d extension lines", MaxExtensions)
	}
	for _, e := range ext {
		if err := checkLine("extension", string(e)); err != nil {
			return c, err
		}
		c.Extensions = append(c.Extensions, string(e))
	}
	return c, nil
}

// checkLine reports whether s can be one line of a signed note: non-empty,
// valid UTF-8, and free of control characters (which includes newlines).
func checkLine(field, s string) error {
	if s == "" {
		return parseErr(field, "empty line")
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return parseErr(field, "invalid UTF-8 at byte %d", i)
			}
		}
		if r < 0x20 {
			return parseErr(field, "control character %#02x at byte %d", r, i)
		}
	}
	return nil
}

func parseSize(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, parseErr("size", "empty line")
	}
	if len(b) > 1 && b[0] == '0' {
		return 0, parseErr("size", "leading zero")
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, parseErr("size", "not a decimal number")
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, parseErr("size", "does not fit in 64 bits")
	}
	return n, nil
}

// hashB64Len is the length of the padded base64 encoding of 32 bytes.
const hashB64Len = 44

func parseHash(b []byte) ([32]byte, error) {
	var h [32]byte
	if len(b) != hashB64Len {
		return h, parseErr("hash", "%d characters, want %d", len(b), hashB64Len)
	}
	var buf [33]byte // DecodedLen(44)
	n, err := base64.StdEncoding.Strict().Decode(buf[:], b)
	if err != nil || n != len(h) {
		return h, parseErr("hash", "not canonical base64 of 32 bytes")
	}
	copy(h[:], buf[:n])
	// The decoder skips CR and LF; re-encoding makes sure there were none.
	if base64.StdEncoding.EncodeToString(h[:]) != string(b) {
		return h, parseErr("hash", "not canonical base64 of 32 bytes")
	}
	return h, nil
}
