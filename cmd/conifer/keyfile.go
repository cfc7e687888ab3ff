package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
)

// Key files hold one key on one line:
//
//	private = "CONIFER-PRIVATE-KEY " base64(seed[32]) [LF]
//	public  = "CONIFER-PUBLIC-KEY " base64(key[32]) [LF]
//
// with standard padded base64 (44 characters). The typed prefix keeps a
// private key from being read where a public key is expected, and the
// reverse. For keys made by other tools, ParsePrivateKey also accepts a
// bare base64 seed (32 bytes) or Ed25519 private key (64 bytes, whose public
// half must match), and ParsePublicKey a bare base64 public key.
const (
	privatePrefix = "CONIFER-PRIVATE-KEY "
	publicPrefix  = "CONIFER-PUBLIC-KEY "
	maxKeyFile    = 4096
)

// errKeyFile is wrapped by every key file parse error.
var errKeyFile = errors.New("malformed key file")

// FormatPrivateKey returns the key file text of k.
func FormatPrivateKey(k ed25519.PrivateKey) []byte {
	return []byte(privatePrefix + base64.StdEncoding.EncodeToString(k.Seed()) + "\n")
}

// FormatPublicKey returns the public key file text of k.
func FormatPublicKey(k ed25519.PublicKey) []byte {
	return []byte(publicPrefix + base64.StdEncoding.EncodeToString(k) + "\n")
}

// keyLine strips one optional final newline and checks the rest is one
// line of printable ASCII.
func keyLine(b []byte) (string, error) {
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("%w: longer than %d bytes", errKeyFile, maxKeyFile)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("%w: not one line of printable ASCII", errKeyFile)
		}
	}
	return string(b), nil
}

// decodeB64 decodes canonical standard base64.
func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("%w: not canonical base64", errKeyFile)
	}
	return b, nil
}

// ParsePrivateKey parses a private key file.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	line, err := keyLine(b)
	if err != nil {
		return nil, err
	}
	if len(line) >= len(publicPrefix) && line[:len(publicPrefix)] == publicPrefix {
		return nil, fmt.Errorf("%w: this is a public key file, a private key is needed", errKeyFile)
	}
	typed := len(line) >= len(privatePrefix) && line[:len(privatePrefix)] == privatePrefix
	if typed {
		line = line[len(privatePrefix):]
	}
	raw, err := decodeB64(line)
	if err != nil {
		return nil, err
	}
	switch {
	case len(raw) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case len(raw) == ed25519.PrivateKeySize && !typed:
		k := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(k[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
			return nil, fmt.Errorf("%w: the private key's public half does not match its seed", errKeyFile)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: a private key is a 32-byte seed, got %d bytes", errKeyFile, len(raw))
}

// ParsePublicKey parses a public key file.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	line, err := keyLine(b)
	if err != nil {
		return nil, err
	}
	if len(line) >= len(privatePrefix) && line[:len(privatePrefix)] == privatePrefix {
		return nil, fmt.Errorf("%w: this is a private key file; give its public key (conifer init prints it)", errKeyFile)
	}
	if len(line) >= len(publicPrefix) && line[:len(publicPrefix)] == publicPrefix {
		line = line[len(publicPrefix):]
	}
	raw, err := decodeB64(line)
	if err != nil {
		return nil, err
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: a public key is 32 bytes, got %d", errKeyFile, len(raw))
	}
	return ed25519.PublicKey(raw), nil
}

// readPrivateKey reads a private key file, refusing files other users can
// read.
func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't read key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("couldn't read key: %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't read key: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("couldn't read key %s: %w", path, err)
	}
	return k, nil
}
