package spantest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/functions/internal/storage"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/statemachine"
)

// Key returns the test key named name: seed SHA-256("conifer/spantest/key/" ‖ name).
func Key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("conifer/spantest/key/" + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// Realm is a test realm: its public config and the private keys behind it.
type Realm struct {
	Config    *realm.Config
	Rules     statemachine.Rules
	Registrar ed25519.PrivateKey
	// Cosigners are the realm's verifiers, with a fixed clock.
	Cosigners []*checkpoint.Cosigner
}

// CosignTime is the fixed clock of the test cosigners.
var CosignTime = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// NewRealm returns a realm named name whose checkpoints are signed by the
// key logKey (a verifier key string) and co-signed by verifiers test
// cosigners, quorum of them required.
func NewRealm(name, logKey string, verifiers, quorum int) (*Realm, error) {
	r := &Realm{Registrar: Key(name + "/registrar")}
	vrfKey := Key(name + "/vrf").Public().(ed25519.PublicKey)
	cfg := &realm.Config{
		Realm:            name,
		VRFPublicKey:     vrfKey,
		LogKey:           logKey,
		Quorum:           quorum,
		MinEpochInterval: realm.Duration{Duration: time.Second},
		MaxEpochInterval: realm.Duration{Duration: time.Minute},
		MaxHeadAge:       realm.Duration{Duration: 10 * time.Minute},
		Registration: realm.Registration{
			Registrars: [][]byte{r.Registrar.Public().(ed25519.PublicKey)},
		},
	}
	for i := range verifiers {
		ks, err := checkpoint.NewKeySigner(Key(fmt.Sprintf("%s/verifier/%d", name, i)))
		if err != nil {
			return nil, err
		}
		c, err := checkpoint.NewCosigner(fmt.Sprintf("verifier%d.example/%s", i, name), ks, func() time.Time { return CosignTime })
		if err != nil {
			return nil, err
		}
		r.Cosigners = append(r.Cosigners, c)
		cfg.Verifiers = append(cfg.Verifiers, c.VerifierKey())
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rules, err := statemachine.RulesFromRealm(cfg)
	if err != nil {
		return nil, err
	}
	r.Config, r.Rules = cfg, rules
	return r, nil
}

// LogSigner returns an in-memory keyserver signer for realm name (tests
// that do not go through KMS) and its verifier key string.
func LogSigner(name string) (*checkpoint.LogSigner, error) {
	ks, err := checkpoint.NewKeySigner(Key(name + "/log"))
	if err != nil {
		return nil, err
	}
	return checkpoint.NewLogSigner(name, ks)
}

// User is a test user: its index, its device key and its newest entry.
type User struct {
	Name    string
	Index   [32]byte
	Key     ed25519.PrivateKey
	Version uint64   // of the newest entry built (0: none)
	Hash    [32]byte // EntryHash of the newest entry built
}

// NewUser returns user name of a realm: index SHA-256("conifer/spantest/index/" ‖ name).
func NewUser(name string) *User {
	return &User{
		Name:  name,
		Index: sha256.Sum256([]byte("conifer/spantest/index/" + name)),
		Key:   Key("user/" + name),
	}
}

// Register builds the user's registration, authorised by registrar, and
// advances the user to it.
func (u *User) Register(realmName string, registrar ed25519.PrivateKey) (storage.Append, error) {
	return u.build(realmName, 1, [32]byte{}, false, u.Key, registrar, true)
}

// Update builds the next version of the user (a new profile), signed by
// its key, and advances the user to it.
func (u *User) Update(realmName string) (storage.Append, error) {
	return u.build(realmName, u.Version+1, u.Hash, false, u.Key, nil, true)
}

// Tombstone builds the next version as a tombstone (erasure) and advances
// the user to it.
func (u *User) Tombstone(realmName string) (storage.Append, error) {
	return u.build(realmName, u.Version+1, u.Hash, true, u.Key, nil, true)
}

// Forged builds a next version signed by a key that is not in the user's
// policy (the statemachine rejects it: QuorumOld) without advancing the
// user.
func (u *User) Forged(realmName string) (storage.Append, error) {
	return u.build(realmName, u.Version+1, u.Hash, false, Key("forger/"+u.Name), nil, false)
}

// Opening returns the commitment opening of version v.
func (u *User) Opening(v uint64) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "conifer/spantest/opening/%s/%d", u.Name, v))
	return h[:format.OpeningSize]
}

// Profile returns the encoded profile of version v.
func (u *User) Profile(v uint64) []byte {
	var p format.Profile
	if err := p.Set("pgp", fmt.Appendf(nil, "key of %s, version %d", u.Name, v)); err != nil {
		panic(err)
	}
	b, err := p.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

func (u *User) build(realmName string, v uint64, prev [32]byte, tombstone bool, signer, registrar ed25519.PrivateKey, advance bool) (storage.Append, error) {
	pol := &format.Policy{Threshold: 1, Keys: []ed25519.PublicKey{u.Key.Public().(ed25519.PublicKey)}}
	e := &format.Entry{Realm: realmName, Index: u.Index, Version: v, Prev: prev, Policy: *pol, Tombstone: tombstone}
	var profile, opening []byte
	if !tombstone {
		profile, opening = u.Profile(v), u.Opening(v)
		e.Commitment = format.CommitProfile([format.OpeningSize]byte(opening), profile)
	}
	enc, err := e.Marshal()
	if err != nil {
		return storage.Append{}, err
	}
	h := format.EntryHash(enc)
	se := format.SignedEntry{Entry: enc, Signatures: []format.Signature{format.SignEntry(signer, h)}}
	seBytes, err := se.Marshal()
	if err != nil {
		return storage.Append{}, err
	}
	lr := format.LogRecord{SignedEntry: se}
	if v == 1 {
		lr.Registration = &format.Registration{Kind: format.RegistrationRegistrar, Registrar: format.SignRegistration(registrar, h)}
	}
	rec, err := lr.Marshal()
	if err != nil {
		return storage.Append{}, err
	}
	if advance {
		u.Version, u.Hash = v, h
	}
	return storage.Append{
		Index: u.Index, Record: rec, Version: v, EntryHash: h, SignedEntry: seBytes,
		Profile: profile, Opening: opening,
	}, nil
}
