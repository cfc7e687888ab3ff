package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/conifer-kt/conifer/client"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
)

// The configuration directory (--dir, default ~/.config/conifer) holds:
//
//	realm.json                   the pinned realm config (conifer init --realm)
//	server                       the keyserver's base URL (conifer init --server)
//	keys/device.key              this device's Ed25519 key (0600)
//	keys/device.pub              its public key
//	keys/next.key                the key a rotation in progress installs
//	keys/retired/<key id>.key    keys rotated out
//	state/<realm id>.note        the newest checkpoint verified (rollback/fork detection)
//	own/<user id>.json           the updates this device made (conifer monitor)
//	drafts/<user id>.json        a registration waiting for an ID token
//	evidence/                    evidence of every verification failure
//
// where <realm id> and <user id> are the first 16 hex digits of SHA-256 of
// the realm name, a newline and the keyserver's key (so re-pinning a realm
// under a new key starts a new state), and of the realm name, a newline and
// the user id. Every
// file is written atomically with mode 0600 and every directory is 0700.
type store struct {
	dir string
}

func (s *store) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

func (s *store) mkdir(parts ...string) error {
	return os.MkdirAll(s.path(parts...), 0o700)
}

func (s *store) write(data []byte, parts ...string) error {
	if err := s.mkdir(parts[:len(parts)-1]...); err != nil {
		return err
	}
	return client.WriteFileAtomic(s.path(parts...), data, 0o600)
}

func shortID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(h[:8])
}

// realm loads the pinned realm config: from file if given, else
// realm.json.
func (s *store) realm(file string) (*realm.Config, error) {
	if file == "" {
		file = s.path("realm.json")
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			return nil, usageError{fmt.Sprintf("no realm pinned in %s: run conifer init --realm FILE, or pass --realm", s.dir)}
		}
	}
	cfg, err := realm.Load(file)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// server returns the keyserver URL: flag if given, else the stored one.
func (s *store) server(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	b, err := os.ReadFile(s.path("server"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", usageError{"no keyserver: pass --server URL (or run conifer init --server URL)"}
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// keyring is this device's keys.
type keyring struct {
	device ed25519.PrivateKey
	next   ed25519.PrivateKey // nil unless a rotation is in progress
	extra  []ed25519.PrivateKey
}

func (s *store) keyring() (*keyring, error) {
	dev, err := readPrivateKey(s.path("keys", "device.key"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageError{fmt.Sprintf("no device key in %s: run conifer init", s.dir)}
		}
		return nil, err
	}
	k := &keyring{device: dev}
	if next, err := readPrivateKey(s.path("keys", "next.key")); err == nil {
		k.next = next
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return k, nil
}

func (k *keyring) all() []ed25519.PrivateKey {
	ks := []ed25519.PrivateKey{k.device}
	if k.next != nil {
		ks = append(ks, k.next)
	}
	return append(ks, k.extra...)
}

// names gives this device's keys their names for printing policies.
func (k *keyring) names() map[format.KeyID]string {
	m := map[format.KeyID]string{format.KeyIDOf(pubOf(k.device)): "device"}
	if k.next != nil {
		m[format.KeyIDOf(pubOf(k.next))] = "next-device"
	}
	return m
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// startRotation returns the key a rotation installs, creating keys/next.key
// (before anything is sent, so a crash never loses it) unless a previous
// attempt left one.
func (s *store) startRotation(k *keyring, rand io.Reader) (ed25519.PrivateKey, error) {
	if k.next != nil {
		return k.next, nil
	}
	next, err := client.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	if err := s.write(FormatPrivateKey(next), "keys", "next.key"); err != nil {
		return nil, fmt.Errorf("couldn't store the new device key: %w", err)
	}
	k.next = next
	return next, nil
}

// settleRotation finishes a rotation once the verified policy shows it:
// if the policy holds the next key and not the current one, next becomes
// the device key and the old one is retired. It reports whether it did.
func (s *store) settleRotation(k *keyring, policy *format.Policy) (bool, error) {
	if k.next == nil || policy == nil {
		return false, nil
	}
	_, hasNext := policy.Key(format.KeyIDOf(pubOf(k.next)))
	_, hasDev := policy.Key(format.KeyIDOf(pubOf(k.device)))
	if !hasNext || hasDev {
		return false, nil
	}
	old := format.KeyIDOf(pubOf(k.device))
	if err := s.write(FormatPrivateKey(k.device), "keys", "retired", old.String()+".key"); err != nil {
		return false, err
	}
	if err := s.write(FormatPublicKey(pubOf(k.next)), "keys", "device.pub"); err != nil {
		return false, err
	}
	if err := os.Rename(s.path("keys", "next.key"), s.path("keys", "device.key")); err != nil {
		return false, err
	}
	k.device, k.next = k.next, nil
	return true, nil
}

// ownRecord lists the updates this device made for one user, so that
// conifer monitor can tell them from changes made elsewhere.
type ownRecord struct {
	Realm   string      `json:"realm"`
	User    string      `json:"user"`
	Updates []ownUpdate `json:"updates"`
}

// ownUpdate is one update this device sent. It is recorded before the
// update is sent (Confirmed false) and confirmed once a verified lookup
// shows it.
type ownUpdate struct {
	Version   uint64    `json:"version"`
	EntryHash string    `json:"entry_hash"` // 64 lowercase hex digits
	Time      time.Time `json:"time"`
	Confirmed bool      `json:"confirmed"`
}

// maxOwnRecord caps an own-updates file.
const maxOwnRecord = 16 << 20

// parseOwnRecord parses an own-updates file strictly: known fields only,
// one JSON object, entry hashes in lowercase hex, versions ≥ 1 and
// non-decreasing (a stale attempt and its retry share a version).
func parseOwnRecord(b []byte) (*ownRecord, error) {
	if len(b) > maxOwnRecord {
		return nil, errors.New("couldn't parse own updates: file too large")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r ownRecord
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("couldn't parse own updates: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("couldn't parse own updates: trailing data")
	}
	var last uint64
	for i, u := range r.Updates {
		h, err := hex.DecodeString(u.EntryHash)
		if err != nil || len(h) != 32 || hex.EncodeToString(h) != u.EntryHash {
			return nil, fmt.Errorf("couldn't parse own updates: updates[%d].entry_hash is not 64 lowercase hex digits", i)
		}
		if u.Version == 0 || u.Version < last {
			return nil, fmt.Errorf("couldn't parse own updates: updates[%d].version %d out of order", i, u.Version)
		}
		last = u.Version
	}
	return &r, nil
}

func (r *ownRecord) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (s *store) own(realmName, user string) (*ownRecord, error) {
	b, err := os.ReadFile(s.path("own", shortID(realmName, user)+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return &ownRecord{Realm: realmName, User: user}, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := parseOwnRecord(b)
	if err != nil {
		return nil, err
	}
	if r.Realm != realmName || r.User != user {
		return nil, fmt.Errorf("couldn't read own updates: the file is for %q in %q", r.User, r.Realm)
	}
	return r, nil
}

func (s *store) saveOwn(r *ownRecord) error {
	b, err := r.marshal()
	if err != nil {
		return err
	}
	return s.write(b, "own", shortID(r.Realm, r.User)+".json")
}

// recordOwn notes an update about to be sent.
func (s *store) recordOwn(realmName, user string, version uint64, hash [32]byte, now time.Time) error {
	r, err := s.own(realmName, user)
	if err != nil {
		return err
	}
	h := hex.EncodeToString(hash[:])
	if !slices.ContainsFunc(r.Updates, func(u ownUpdate) bool { return u.EntryHash == h }) {
		r.Updates = append(r.Updates, ownUpdate{Version: version, EntryHash: h, Time: now.UTC()})
	}
	return s.saveOwn(r)
}

// confirmOwn marks an update as seen in a verified lookup.
func (s *store) confirmOwn(realmName, user string, hash [32]byte) error {
	r, err := s.own(realmName, user)
	if err != nil {
		return err
	}
	h := hex.EncodeToString(hash[:])
	for i := range r.Updates {
		if r.Updates[i].EntryHash == h {
			r.Updates[i].Confirmed = true
		}
	}
	return s.saveOwn(r)
}

// draft is a registration prepared for an ID token: the token's nonce
// binds the entry, so the same entry (same opening) must be sent with it.
type draft struct {
	Realm   string `json:"realm"`
	User    string `json:"user"`
	Policy  string `json:"policy"`  // canonical policy expression (base64 keys)
	Profile []byte `json:"profile"` // canonical format.Profile
	Opening []byte `json:"opening"` // 16 bytes
	Nonce   string `json:"nonce"`
}

func (s *store) loadDraft(realmName, user string) (*draft, error) {
	b, err := os.ReadFile(s.path("drafts", shortID(realmName, user)+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d draft
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("couldn't read registration draft: %w", err)
	}
	if d.Realm != realmName || d.User != user || len(d.Opening) != format.OpeningSize {
		return nil, errors.New("couldn't read registration draft: it is for another user or malformed")
	}
	return &d, nil
}

func (s *store) saveDraft(d *draft) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return s.write(append(b, '\n'), "drafts", shortID(d.Realm, d.User)+".json")
}

func (s *store) removeDraft(realmName, user string) error {
	err := os.Remove(s.path("drafts", shortID(realmName, user)+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
