package client

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/format"
)

// GenerateKey makes a new Ed25519 device key from 32 bytes of rand, which
// must be a cryptographically secure source (crypto/rand.Reader).
func GenerateKey(rand io.Reader) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("couldn't generate key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// KeyPolicy returns the canonical policy "threshold of keys", e.g.
// KeyPolicy(1, device) for a single device or KeyPolicy(1, device,
// recovery) for a device with an app-backend recovery key.
func KeyPolicy(threshold int, keys ...ed25519.PublicKey) (*format.Policy, error) {
	if threshold < 1 || threshold > len(keys) {
		return nil, fmt.Errorf("couldn't build policy: threshold %d of %d keys", threshold, len(keys))
	}
	p := &format.Policy{Threshold: uint16(threshold)}
	for _, k := range keys {
		p.Keys = append(p.Keys, slices.Clone(k))
	}
	p.Normalize()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("couldn't build policy: %w", err)
	}
	return p, nil
}

// ClonePolicy returns a deep copy of p.
func ClonePolicy(p *format.Policy) *format.Policy {
	if p == nil {
		return nil
	}
	q := &format.Policy{Threshold: p.Threshold}
	for _, k := range p.Keys {
		q.Keys = append(q.Keys, slices.Clone(k))
	}
	for _, s := range p.Subpolicies {
		q.Subpolicies = append(q.Subpolicies, ClonePolicy(s))
	}
	return q
}

// RotateKey returns a copy of p with the key old replaced by new wherever it
// appears, in canonical order: the policy change of a key rotation. The
// update must then be signed by old (the current policy) and new (the new
// one).
func RotateKey(p *format.Policy, old, new ed25519.PublicKey) (*format.Policy, error) {
	q := ClonePolicy(p)
	if !replaceKey(q, old, new) {
		return nil, fmt.Errorf("couldn't rotate key: %s is not in the policy", format.KeyIDOf(old))
	}
	q.Normalize()
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("couldn't rotate key: %w", err)
	}
	return q, nil
}

func replaceKey(p *format.Policy, old, new ed25519.PublicKey) bool {
	found := false
	for i, k := range p.Keys {
		if k.Equal(old) {
			p.Keys[i] = slices.Clone(new)
			found = true
		}
	}
	for _, s := range p.Subpolicies {
		if replaceKey(s, old, new) {
			found = true
		}
	}
	return found
}

// Change describes the next version of a user's entry, relative to the
// current one.
type Change struct {
	// Policy is the new update policy; nil keeps the current one. Required
	// for a registration.
	Policy *format.Policy
	// Profile is the new profile; nil keeps the current one (a user
	// revived after a tombstone, or registered, starts from the empty
	// profile). It must be nil with Tombstone.
	Profile *format.Profile
	// Tombstone erases the user: the new entry commits to no profile.
	Tombstone bool
}

// Update is a prepared entry with its profile and opening, collecting
// signatures before it is sent (Client.Submit or Request).
type Update struct {
	// Entry is the new entry; Prev is the current entry (nil for a
	// registration), whose policy must also approve it.
	Entry *format.Entry
	Prev  *format.Entry
	// Profile and Opening open Entry.Commitment (nil and zero for a
	// tombstone).
	Profile *format.Profile
	Opening [format.OpeningSize]byte

	entryBytes   []byte
	hash         [32]byte
	profileBytes []byte
	sigs         []format.Signature
	registrar    *format.Signature
	idToken      string
}

// Prepare builds the next entry of a user from cur, the verified lookup of
// that user (Client.Lookup: for an absent user it carries the proven
// index, for a present one the current entry), applying ch. A fresh
// 16-byte opening is read from rand (crypto/rand.Reader in production).
//
//   - cur absent: a registration (version 1); ch.Policy is required;
//   - cur present: version+1 with Prev = the current entry's hash; the
//     current policy must approve it (sign with its keys), and so must the
//     new policy. A tombstoned user can be revived the same way.
func Prepare(cur *Result, ch Change, rand io.Reader) (*Update, error) {
	if cur == nil {
		return nil, errors.New("couldn't prepare update: no verified lookup")
	}
	if ch.Tombstone && ch.Profile != nil {
		return nil, errors.New("couldn't prepare update: a tombstone has no profile")
	}
	e := &format.Entry{Realm: cur.Checkpoint.Origin, Index: cur.Index, Version: 1}
	u := &Update{Entry: e}
	switch {
	case !cur.Present:
		if ch.Policy == nil {
			return nil, errors.New("couldn't prepare update: a registration needs a policy")
		}
		if ch.Tombstone {
			return nil, errors.New("couldn't prepare update: cannot register a tombstone")
		}
	default:
		if cur.Entry.Version == ^uint64(0) {
			return nil, errors.New("couldn't prepare update: version space exhausted")
		}
		e.Version = cur.Entry.Version + 1
		e.Prev = cur.EntryHash
		u.Prev = cur.Entry
	}
	switch {
	case ch.Policy != nil:
		e.Policy = *ClonePolicy(ch.Policy)
	default:
		e.Policy = *ClonePolicy(&cur.Entry.Policy)
	}
	if !ch.Tombstone {
		profile := ch.Profile
		if profile == nil {
			profile = &format.Profile{}
			if cur.Profile != nil {
				profile = cur.Profile
			}
		}
		pb, err := profile.Marshal()
		if err != nil {
			return nil, fmt.Errorf("couldn't prepare update: %w", err)
		}
		if _, err := io.ReadFull(rand, u.Opening[:]); err != nil {
			return nil, fmt.Errorf("couldn't prepare update: opening: %w", err)
		}
		// Re-parse so that u.Profile never aliases the caller's.
		if u.Profile, err = format.ParseProfile(pb); err != nil {
			return nil, fmt.Errorf("couldn't prepare update: %w", err)
		}
		u.profileBytes = pb
		e.Commitment = format.CommitProfile(u.Opening, pb)
	} else {
		e.Tombstone = true
	}
	eb, err := e.Marshal()
	if err != nil {
		return nil, fmt.Errorf("couldn't prepare update: %w", err)
	}
	if u.Prev != nil {
		if err := format.CheckTransition(u.Prev, cur.EntryHash, e); err != nil {
			return nil, fmt.Errorf("couldn't prepare update: %w", err)
		}
	}
	u.entryBytes = eb
	u.hash = format.EntryHash(eb)
	return u, nil
}

// EntryHash returns the new entry's hash: what policy keys and registrars
// sign, and what an OIDC nonce binds.
func (u *Update) EntryHash() [32]byte { return u.hash }

// EncodedEntry returns the canonical encoding of the new entry.
func (u *Update) EncodedEntry() []byte { return slices.Clone(u.entryBytes) }

// EncodedProfile returns the canonical encoding of the new profile (nil
// for a tombstone).
func (u *Update) EncodedProfile() []byte { return slices.Clone(u.profileBytes) }

// Sign adds each key's approval of the entry. Keys that appear in neither
// the previous nor the new policy are skipped (their signatures would be
// ignored); it returns how many keys signed.
func (u *Update) Sign(keys ...ed25519.PrivateKey) int {
	n := 0
	for _, k := range keys {
		id := format.KeyIDOf(k.Public().(ed25519.PublicKey))
		_, inNew := u.Entry.Policy.Key(id)
		inOld := false
		if u.Prev != nil {
			_, inOld = u.Prev.Policy.Key(id)
		}
		if !inNew && !inOld {
			continue
		}
		if slices.ContainsFunc(u.sigs, func(s format.Signature) bool { return s.KeyID == id }) {
			n++
			continue
		}
		u.sigs = append(u.sigs, format.SignEntry(k, u.hash))
		n++
	}
	format.SortSignatures(u.sigs)
	return n
}

// SignRegistrar adds a realm registrar's authorisation (registrations
// only).
func (u *Update) SignRegistrar(key ed25519.PrivateKey) {
	s := format.SignRegistration(key, u.hash)
	u.registrar = &s
}

// SetIDToken attaches an OpenID Connect ID token authorising the
// registration; its nonce claim must be OIDCNonce().
func (u *Update) SetIDToken(token string) { u.idToken = token }

// OIDCNonce returns the nonce an ID token must carry to authorise this
// registration.
func (u *Update) OIDCNonce() string { return format.OIDCNonce(u.hash) }

// Check verifies locally what the server and verifiers will: the
// signatures meet the quorum of the previous policy and of the new one,
// and a registration carries a registrar signature or an ID token. The
// registrar's key is not checked (the realm config's registrars are).
func (u *Update) Check() error {
	if len(u.sigs) == 0 {
		return fmt.Errorf("couldn't check update: %w: no signatures", format.ErrQuorumNotMet)
	}
	if err := format.VerifyUpdateSignatures(u.Prev, u.Entry, u.hash, u.sigs); err != nil {
		return fmt.Errorf("couldn't check update: %w", err)
	}
	if u.Prev == nil && u.registrar == nil && u.idToken == "" {
		return fmt.Errorf("couldn't check update: %w: a registration needs a registrar signature or an ID token", format.ErrRegistrationNotAuthorized)
	}
	if u.Prev != nil && (u.registrar != nil || u.idToken != "") {
		return errors.New("couldn't check update: only a registration carries a registrar signature or ID token")
	}
	return nil
}

// Request checks the update (Check) and returns the API request for
// userID, waiting for the epoch if wait is set.
func (u *Update) Request(userID string, wait bool) (*api.UpdateRequest, error) {
	if err := u.Check(); err != nil {
		return nil, err
	}
	se := &format.SignedEntry{Entry: u.entryBytes, Signatures: u.sigs}
	seb, err := se.Marshal()
	if err != nil {
		return nil, fmt.Errorf("couldn't build request: %w", err)
	}
	req := &api.UpdateRequest{UserID: userID, SignedEntry: seb, IDToken: u.idToken, Wait: wait}
	if !u.Entry.Tombstone {
		req.Profile = slices.Clone(u.profileBytes)
		req.Opening = slices.Clone(u.Opening[:])
	}
	if u.registrar != nil {
		// The bare format.Signature: key_id[8] || sig[64].
		req.RegistrarSignature = append(slices.Clone(u.registrar.KeyID[:]), u.registrar.Sig[:]...)
	}
	return req, nil
}
