package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// The key file holds the verifier's Ed25519 cosigning key as its 32-byte
// seed, on one line, in the same form as the conifer CLI's key files:
//
//	keyfile = "CONIFER-PRIVATE-KEY " base64(seed[32]) [LF]
//
// with canonical standard padded base64 (44 characters). The file must
// not be readable or writable by anyone but its owner (mode 0600 or
// stricter); --init-key creates it so.
const (
	keyPrefix  = "CONIFER-PRIVATE-KEY "
	maxKeyFile = 4096
)

// errKeyFile is wrapped by every key file error.
var errKeyFile = errors.New("malformed key file")

// formatKey returns the key file text of the seed.
func formatKey(seed []byte) []byte {
	return []byte(keyPrefix + base64.StdEncoding.EncodeToString(seed) + "\n")
}

// parseKey parses a key file's contents and returns the private key.
func parseKey(b []byte) (ed25519.PrivateKey, error) {
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: longer than %d bytes", errKeyFile, maxKeyFile)
	}
	line, _ := bytes.CutSuffix(b, []byte("\n"))
	s, ok := strings.CutPrefix(string(line), keyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %q", errKeyFile, keyPrefix)
	}
	seed, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(seed) != s {
		return nil, fmt.Errorf("%w: the seed is not canonical base64", errKeyFile)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: the seed is %d bytes, want %d", errKeyFile, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// loadKey reads the key file at path, refusing one that others may read.
func loadKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("couldn't open key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("couldn't open key file: %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: it must be readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read key file: %w", err)
	}
	k, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("couldn't read key file %s: %w", path, err)
	}
	return k, nil
}

// createKey writes a new key file at path (mode 0600, never replacing a
// file) from 32 bytes of rand and returns the key.
func createKey(path string, rand io.Reader) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("couldn't make a key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("couldn't create key file: %w", err)
	}
	if _, err := f.Write(formatKey(seed)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("couldn't write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("couldn't write key file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("couldn't write key file: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
