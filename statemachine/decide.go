package statemachine

import (
	"crypto/ed25519"
	"fmt"
	"strconv"
	"strings"

	"github.com/conifer-kt/conifer/format"
)

// record is one log record, parsed once, with its memoised signature
// verdicts.
type record struct {
	pos int
	err error // why the record is malformed; the fields below are then zero

	lr    *format.LogRecord
	entry *format.Entry
	hash  [32]byte // EntryHash(entry)
	// signed is the encoded SignedEntry: the prefix of the record before
	// its registration. It aliases the caller's bytes.
	signed []byte
	// entryMsg is format.SigningMessage(hash), signed by policy keys.
	entryMsg []byte
	// verdicts memoises signature checks. Apply fills it for every pair
	// it can foresee, in parallel, before deciding; check adds the rest.
	verdicts []verdict
}

// regSig is the signature index of the registration's registrar
// signature in a verdict.
const regSig = -1

// verdict is the outcome of verifying one signature of a record (its
// index, or regSig) under one public key.
type verdict struct {
	sig  int
	key  [ed25519.PublicKeySize]byte
	done bool
	ok   bool
}

// parseRecord parses raw. A record that is not a canonical LogRecord gets
// err set and is rejected as Malformed.
func parseRecord(pos int, raw []byte) *record {
	r := &record{pos: pos}
	lr, e, err := format.ParseLogRecord(raw)
	if err != nil {
		r.err = err
		return r
	}
	r.lr, r.entry = lr, e
	r.hash = format.EntryHash(lr.SignedEntry.Entry)
	r.entryMsg = format.SigningMessage(r.hash)
	// SignedEntry grammar: uint16 entry_len, entry, uint8 count, 72-byte
	// signatures; the registration (if any) follows.
	n := 2 + len(lr.SignedEntry.Entry) + 1 + len(lr.SignedEntry.Signatures)*(format.KeyIDSize+ed25519.SignatureSize)
	if n > len(raw) {
		panic("statemachine: parsed signed entry is longer than its record")
	}
	r.signed = raw[:n:n]
	return r
}

// message returns what signature sig (an index, or regSig) signs.
func (r *record) message(sig int) []byte {
	if sig == regSig {
		return format.RegistrationMessage(r.hash)
	}
	return r.entryMsg
}

// signature returns signature sig (an index, or regSig).
func (r *record) signature(sig int) *format.Signature {
	if sig == regSig {
		return &r.lr.Registration.Registrar
	}
	return &r.lr.SignedEntry.Signatures[sig]
}

// want adds a pending verdict for (sig, key) unless one is already there.
func (r *record) want(sig int, key ed25519.PublicKey) {
	var k [ed25519.PublicKeySize]byte
	copy(k[:], key)
	for i := range r.verdicts {
		if r.verdicts[i].sig == sig && r.verdicts[i].key == k {
			return
		}
	}
	r.verdicts = append(r.verdicts, verdict{sig: sig, key: k})
}

// run computes verdict i.
func (r *record) run(i int) {
	v := &r.verdicts[i]
	v.ok = verifySignature(v.key[:], r.message(v.sig), &r.signature(v.sig).Sig)
	v.done = true
}

// verified reports whether signature sig is valid under key, using the
// memoised verdict if there is one.
func (r *record) verified(sig int, key ed25519.PublicKey) bool {
	var k [ed25519.PublicKeySize]byte
	copy(k[:], key)
	for i := range r.verdicts {
		if v := &r.verdicts[i]; v.sig == sig && v.key == k {
			if !v.done {
				r.run(i)
			}
			return v.ok
		}
	}
	r.verdicts = append(r.verdicts, verdict{sig: sig, key: k})
	r.run(len(r.verdicts) - 1)
	return r.verdicts[len(r.verdicts)-1].ok
}

// sigIndex returns the index of the signature by key id, or -1. A signed
// entry has at most one per key ID (they are strictly increasing).
func (r *record) sigIndex(id format.KeyID) int {
	for i := range r.lr.SignedEntry.Signatures {
		if r.lr.SignedEntry.Signatures[i].KeyID == id {
			return i
		}
	}
	return -1
}

// keyState is what one policy key contributes to a quorum.
type keyState uint8

const (
	unsigned keyState = iota
	badSig
	goodSig
)

// keyState reports whether key signed r's entry: a key counts if the
// signature carrying its KeyID verifies under that very key. (Two policies
// may hold different keys with one KeyID; the verdict is per key.)
func (r *record) keyState(key ed25519.PublicKey) keyState {
	if len(key) != ed25519.PublicKeySize {
		return unsigned
	}
	i := r.sigIndex(format.KeyIDOf(key))
	switch {
	case i < 0:
		return unsigned
	case r.verified(i, key):
		return goodSig
	}
	return badSig
}

// satisfied reports whether r's signatures meet policy p: at each level at
// least Threshold members satisfied, a key by its valid signature, a
// subpolicy by its own quorum. It accepts exactly what format's
// Policy.Verify accepts.
func (r *record) satisfied(p *format.Policy) bool {
	if p == nil || p.Threshold == 0 {
		return false
	}
	need, have := int(p.Threshold), 0
	for _, k := range p.Keys {
		if r.keyState(k) == goodSig {
			if have++; have >= need {
				return true
			}
		}
	}
	for _, s := range p.Subpolicies {
		if r.satisfied(s) {
			if have++; have >= need {
				return true
			}
		}
	}
	return false
}

// explain describes why p is not satisfied: "need T of M, have N [key
// <id>: <state>; subpolicies[i]: ...]". Every verdict it needs has been
// computed by satisfied, except inside satisfied subpolicies.
func (r *record) explain(sb *strings.Builder, p *format.Policy) {
	have := 0
	var parts []string
	for _, k := range p.Keys {
		what := "no signature"
		switch r.keyState(k) {
		case goodSig:
			have++
			what = "valid signature"
		case badSig:
			what = "invalid signature"
		}
		parts = append(parts, "key "+format.KeyIDOf(k).String()+": "+what)
	}
	for i, s := range p.Subpolicies {
		name := "subpolicies[" + strconv.Itoa(i) + "]: "
		if r.satisfied(s) {
			have++
			parts = append(parts, name+"satisfied")
			continue
		}
		var sub strings.Builder
		r.explain(&sub, s)
		parts = append(parts, name+sub.String())
	}
	fmt.Fprintf(sb, "need %d of %d, have %d [%s]", p.Threshold, len(p.Keys)+len(p.Subpolicies), have, strings.Join(parts, "; "))
}

// requireQuorum returns nil if r's signatures meet p, else a rejection
// with code and an explanation naming which policy ("old"/"new").
func (r *record) requireQuorum(p *format.Policy, code RejectCode, which string) *Rejection {
	if r.satisfied(p) {
		return nil
	}
	var sb strings.Builder
	r.explain(&sb, p)
	return reject(code, "the signatures do not meet the %s policy's quorum: %s", which, sb.String())
}

// current is a user's newest entry, against which the next is decided.
type current struct {
	entry *format.Entry
	hash  [32]byte // EntryHash of the entry
}

// ruleSet is Rules prepared for deciding many records.
type ruleSet struct {
	Rules
	registrarIDs []format.KeyID
}

func newRuleSet(rules Rules) (*ruleSet, error) {
	if err := rules.Validate(); err != nil {
		return nil, err
	}
	rs := &ruleSet{Rules: rules}
	for _, k := range rules.Registrars {
		rs.registrarIDs = append(rs.registrarIDs, format.KeyIDOf(k))
	}
	return rs, nil
}

// decide applies the rules to record r for a user whose newest entry is
// cur (nil if the index has none). It returns nil if r is accepted. The
// checks run in the order of the reject codes' documentation; the first
// that fails decides the code.
func (rs *ruleSet) decide(cur *current, r *record) *Rejection {
	if r.err != nil {
		return reject(Malformed, "%v", r.err)
	}
	e := r.entry
	if e.Realm != rs.Realm {
		return reject(WrongRealm, "entry realm %q is not the realm %q", e.Realm, rs.Realm)
	}
	if cur == nil {
		return rs.decideRegistration(r)
	}
	old := cur.entry
	if old.Realm != e.Realm {
		return reject(WrongRealm, "the previous entry is in realm %q, not %q", old.Realm, e.Realm)
	}
	if old.Index != e.Index {
		return reject(WrongIndex, "entry index %x is not the previous entry's index %x", e.Index[:], old.Index[:])
	}
	switch {
	case e.Version == 1:
		return reject(AlreadyRegistered, "a registration (version 1) for an index that already has version %d", old.Version)
	case e.Version <= old.Version:
		return reject(StaleVersion, "version %d, but the current version is already %d", e.Version, old.Version)
	case e.Version-1 != old.Version:
		return reject(VersionGap, "version %d skips ahead of the current version %d (want %d)", e.Version, old.Version, old.Version+1)
	case e.Prev != cur.hash:
		return reject(WrongPrev, "prev %x is not the hash %x of the current entry (version %d)", e.Prev[:], cur.hash[:], old.Version)
	}
	if rej := r.requireQuorum(&old.Policy, QuorumOld, "old"); rej != nil {
		return rej
	}
	return r.requireQuorum(&e.Policy, QuorumNew, "new")
}

// decideRegistration decides a record for an index with no entry.
func (rs *ruleSet) decideRegistration(r *record) *Rejection {
	e := r.entry
	if e.Version != 1 {
		return reject(NotRegistered, "version %d for an index with no entry; a registration has version 1", e.Version)
	}
	if e.Tombstone {
		return reject(RegistrationTombstone, "a registration cannot be a tombstone")
	}
	reg := r.lr.Registration
	switch reg.Kind {
	case format.RegistrationRegistrar:
		named := false
		for i, k := range rs.Registrars {
			if rs.registrarIDs[i] != reg.Registrar.KeyID {
				continue
			}
			named = true
			if r.verified(regSig, k) {
				return r.requireQuorum(&e.Policy, QuorumNew, "new")
			}
		}
		if named {
			return reject(Registration, "the registrar signature by key %s is invalid", reg.Registrar.KeyID)
		}
		return reject(Registration, "key %s is not a registrar of the realm", reg.Registrar.KeyID)
	case format.RegistrationOIDC:
		if !rs.acceptsIssuer(reg.Issuer) {
			return reject(Registration, "OIDC issuer %q is not accepted by the realm", reg.Issuer)
		}
		return r.requireQuorum(&e.Policy, QuorumNew, "new")
	}
	// format.ParseLogRecord accepts no other kind.
	panic("statemachine: parsed registration of unknown kind " + reg.Kind.String())
}
