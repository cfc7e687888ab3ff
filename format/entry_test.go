package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestHashHelper(t *testing.T) {
	// H(tag, parts...) = SHA-256(uint8(len(tag)) || tag || parts...).
	want := sha256.Sum256([]byte("\x10conifer/entry/v1abc"))
	if got := hash("conifer/entry/v1", []byte("a"), []byte("bc")); got != want {
		t.Fatalf("hash = %x, want %x", got, want)
	}
	if EntryHash([]byte("abc")) != want {
		t.Fatal("EntryHash is not H(\"conifer/entry/v1\", encoding)")
	}
	h := fixedBytes("h")
	if m := SigningMessage(h); !bytes.Equal(m, append([]byte("\x1aconifer/entry-signature/v1"), h[:]...)) || len(m) != 59 {
		t.Fatalf("SigningMessage = %x", m)
	}
	if m := RegistrationMessage(h); !bytes.Equal(m, append([]byte("\x17conifer/registration/v1"), h[:]...)) || len(m) != 56 {
		t.Fatalf("RegistrationMessage = %x", m)
	}
	n := OIDCNonce(h)
	raw, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(n) != 43 || [32]byte(raw) != hash("conifer/oidc-nonce/v1", h[:]) {
		t.Fatalf("OIDCNonce = %q", n)
	}
	var o [OpeningSize]byte
	o[0] = 1
	if CommitProfile(o, []byte{0}) != sha256.Sum256(append(append([]byte("\x1dconifer/profile-commitment/v1"), o[:]...), 0)) {
		t.Fatal("CommitProfile")
	}
	id := KeyIDOf(testPub(0))
	full := sha256.Sum256(append([]byte("\x11conifer/key-id/v1"), testPub(0)...))
	if !bytes.Equal(id[:], full[:8]) || id.String() != strings.ToLower(id.String()) || len(id.String()) != 16 {
		t.Fatalf("KeyIDOf = %s", id)
	}
	if LeafRecordHash([]byte{1}) != sha256.Sum256([]byte("\x16conifer/leaf-record/v1\x01")) {
		t.Fatal("LeafRecordHash")
	}
	// Every tag is distinct: no two hashes can collide by construction.
	tags := []string{tagProfileCommitment, tagKeyID, tagEntry, tagEntrySignature, tagRegistration,
		tagOIDCNonce, tagLeafRecord, tagEpochHead, tagBundle, tagBundleDigest, tagBundleChunk}
	seen := map[string]bool{}
	for _, tag := range tags {
		if seen[tag] || !strings.HasPrefix(tag, "conifer/") || !strings.HasSuffix(tag, "/v1") {
			t.Errorf("bad or duplicate tag %q", tag)
		}
		seen[tag] = true
	}
}

func TestEntryValidate(t *testing.T) {
	f := newFixtures(t)
	base := func() *Entry {
		e := *f.entryUpdate
		e.Policy = *clonePolicy(&f.entryUpdate.Policy)
		return &e
	}
	tests := []struct {
		name          string
		mut           func(*Entry)
		kind          error
		field, reason string
	}{
		{"empty realm", func(e *Entry) { e.Realm = "" }, ErrInvalid, "realm", "empty realm"},
		{"long realm", func(e *Entry) { e.Realm = strings.Repeat("a", 129) }, ErrTooLarge, "realm", "129 bytes"},
		{"realm UTF-8", func(e *Entry) { e.Realm = "exämple" }, ErrInvalid, "realm", "byte 0xc3 at offset 2"},
		{"realm invalid UTF-8", func(e *Entry) { e.Realm = "ex\xff" }, ErrInvalid, "realm", "byte 0xff"},
		{"realm newline", func(e *Entry) { e.Realm = "ex\n" }, ErrInvalid, "realm", "byte 0x0a"},
		{"version 0", func(e *Entry) { e.Version = 0 }, ErrInvalid, "version", "version 0"},
		{"v1 with prev", func(e *Entry) { e.Version = 1 }, ErrInvalid, "prev", "all-zero prev"},
		{"v2 without prev", func(e *Entry) { e.Prev = [32]byte{} }, ErrInvalid, "prev", "must name its previous entry"},
		{"tombstone with commitment", func(e *Entry) { e.Tombstone = true }, ErrInvalid, "commitment", "tombstone"},
		{"zero commitment", func(e *Entry) { e.Commitment = [32]byte{} }, ErrInvalid, "commitment", "all-zero commitment"},
		{"bad policy", func(e *Entry) { e.Policy.Threshold = 9 }, ErrInvalid, "policy.threshold", "exceeds"},
		{"nested bad policy", func(e *Entry) { e.Policy.Subpolicies[0].Threshold = 0 }, ErrInvalid, "policy.subpolicies[0].threshold", "threshold is 0"},
	}
	for _, tt := range tests {
		e := base()
		tt.mut(e)
		err := e.Validate()
		wantField(t, err, tt.kind, tt.field, tt.reason)
		// Parsing the unvalidated encoding fails the same way.
		_, perr := ParseEntry(modelEntry(e).bytes())
		wantField(t, perr, tt.kind, "entry."+tt.field, tt.reason)
		if _, merr := e.Marshal(); merr == nil || merr.Error() != perr.Error() {
			t.Errorf("%s: Marshal error %v, parse error %v", tt.name, merr, perr)
		}
	}
	// Realm charset: every allowed byte, and a realm of 128 bytes.
	ok := base()
	ok.Realm = "AZaz09._/:-" + strings.Repeat("x", MaxRealmLen-11)
	if _, err := ParseEntry(mustMarshal(t, ok)); err != nil {
		t.Fatal(err)
	}
	for c := 0; c < 256; c++ {
		e := base()
		e.Realm = "a" + string(rune(c))
		if c >= 0x80 {
			e.Realm = "a" + string([]byte{byte(c)})
		}
		allowed := strings.ContainsRune("._/:-", rune(c)) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if err := e.Validate(); (err == nil) != allowed {
			t.Errorf("realm byte 0x%02x: %v, allowed %v", c, err, allowed)
		}
	}
}

func TestCheckTransition(t *testing.T) {
	f := newFixtures(t)
	regHash := EntryHash(mustMarshal(t, f.entryReg))
	updHash := EntryHash(mustMarshal(t, f.entryUpdate))
	mod := func(e *Entry, mut func(*Entry)) *Entry {
		c := *e
		mut(&c)
		return &c
	}
	tests := []struct {
		name          string
		old           *Entry
		oldHash       [32]byte
		next          *Entry
		kind          error
		field, reason string
	}{
		{"registration", nil, [32]byte{}, f.entryReg, nil, "", ""},
		{"update", f.entryReg, regHash, f.entryUpdate, nil, "", ""},
		{"tombstone", f.entryUpdate, updHash, f.entryTomb, nil, "", ""},
		{"registration with version 2", nil, [32]byte{}, f.entryUpdate, ErrInvalidTransition, "entry.version", "a registration has version 1"},
		{"registration with non-zero prev", nil, [32]byte{}, mod(f.entryReg, func(e *Entry) { e.Prev[0] = 1 }), ErrInvalid, "entry.prev", "all-zero prev"},
		{"registration as tombstone", nil, [32]byte{}, mod(f.entryReg, func(e *Entry) { e.Tombstone, e.Commitment = true, [32]byte{} }), ErrInvalidTransition, "entry.tombstone", "cannot be a tombstone"},
		{"version skipped", f.entryReg, regHash, mod(f.entryUpdate, func(e *Entry) { e.Version = 3 }), ErrInvalidTransition, "entry.version", "version 3, want 2"},
		{"version repeated", f.entryUpdate, updHash, mod(f.entryTomb, func(e *Entry) { e.Version = 2 }), ErrInvalidTransition, "entry.version", "version 2, want 3"},
		{"re-registration", f.entryReg, regHash, f.entryReg, ErrInvalidTransition, "entry.version", "version 1, want 2"},
		{"wrong prev", f.entryReg, regHash, mod(f.entryUpdate, func(e *Entry) { e.Prev[31] ^= 1 }), ErrInvalidTransition, "entry.prev", "is not the previous entry's hash"},
		{"prev of an older entry", f.entryUpdate, regHash, f.entryTomb, ErrInvalidTransition, "entry.prev", "is not the previous entry's hash"},
		{"other user", f.entryReg, regHash, mod(f.entryUpdate, func(e *Entry) { e.Index[0] ^= 1 }), ErrInvalidTransition, "entry.index", "differs"},
		{"other realm", f.entryReg, regHash, mod(f.entryUpdate, func(e *Entry) { e.Realm = "example.org" }), ErrInvalidTransition, "entry.realm", "differs"},
		{"tombstone with commitment", f.entryUpdate, updHash, mod(f.entryTomb, func(e *Entry) { e.Commitment[0] = 1 }), ErrMalformed, "entry.commitment", "tombstone must have an all-zero commitment"},
		{"last version", mod(f.entryReg, func(e *Entry) { e.Version = math.MaxUint64; e.Prev[0] = 1 }), regHash, f.entryUpdate, ErrInvalidTransition, "entry.version", "last possible"},
	}
	for _, tt := range tests {
		err := CheckTransition(tt.old, tt.oldHash, tt.next)
		if tt.kind == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		wantField(t, err, tt.kind, tt.field, tt.reason)
		if tt.kind == ErrInvalidTransition && errors.Is(err, ErrMalformed) {
			t.Errorf("%s: a transition error claims to be malformed", tt.name)
		}
	}
	// A revived tombstone is an ordinary update.
	tombHash := EntryHash(mustMarshal(t, f.entryTomb))
	revived := &Entry{Realm: fixtureRealm, Index: f.entryTomb.Index, Version: 4, Prev: tombHash, Policy: f.entryTomb.Policy, Commitment: fixedBytes("new")}
	if err := CheckTransition(f.entryTomb, tombHash, revived); err != nil {
		t.Error(err)
	}
}

func TestVerifyUpdateSignatures(t *testing.T) {
	f := newFixtures(t)
	check := func(old *Entry, s *SignedEntry) error {
		next, err := s.ParseEntry()
		if err != nil {
			t.Fatal(err)
		}
		return VerifyUpdateSignatures(old, next, EntryHash(s.Entry), s.Signatures)
	}
	if err := check(nil, f.signedReg); err != nil {
		t.Error(err)
	}
	if err := check(f.entryReg, f.signedUpdate); err != nil {
		t.Error(err)
	}
	if err := check(f.entryUpdate, f.signedTomb); err != nil {
		t.Error(err)
	}
	if err := check(nil, f.signedBob); err != nil {
		t.Error(err)
	}
	// Drop the old policy's key (k0) from the update: the old quorum fails.
	noOld := *f.signedUpdate
	noOld.Signatures = without(f.signedUpdate.Signatures, KeyIDOf(testPub(0)))
	if err := check(f.entryReg, &noOld); !errors.Is(err, ErrQuorumNotMet) || !strings.Contains(err.Error(), "old policy") {
		t.Errorf("update without the old key: %v", err)
	}
	// Drop a new-policy key (k1): the new quorum fails.
	noNew := *f.signedUpdate
	noNew.Signatures = without(f.signedUpdate.Signatures, KeyIDOf(testPub(1)))
	if err := check(f.entryReg, &noNew); !errors.Is(err, ErrQuorumNotMet) || !strings.Contains(err.Error(), "new policy") {
		t.Errorf("update without a new key: %v", err)
	}
	// A registration needs the new policy's quorum too.
	if err := VerifyUpdateSignatures(nil, f.entryBob, EntryHash(f.signedBob.Entry), f.signedBob.Signatures[:2]); !errors.Is(err, ErrQuorumNotMet) {
		t.Errorf("registration with 2 of 3: %v", err)
	}
	// Signatures over the previous entry do not approve the next one.
	if err := check(f.entryUpdate, &SignedEntry{Entry: f.signedTomb.Entry, Signatures: f.signedUpdate.Signatures}); err == nil {
		t.Error("signatures over another entry accepted")
	}
	// Each signature is verified once even though both policies of the
	// tombstone name its keys.
	next, _ := f.signedTomb.ParseEntry()
	c := sigChecker{msg: SigningMessage(EntryHash(f.signedTomb.Entry)), sigs: f.signedTomb.Signatures}
	if c.require(&f.entryUpdate.Policy, "old") != nil || c.require(&next.Policy, "new") != nil {
		t.Fatal("tombstone rejected")
	}
	if len(c.cache) != len(f.signedTomb.Signatures) {
		t.Errorf("%d verifications for %d signatures", len(c.cache), len(f.signedTomb.Signatures))
	}
}

func without(sigs []Signature, id KeyID) []Signature {
	var out []Signature
	for _, s := range sigs {
		if s.KeyID != id {
			out = append(out, s)
		}
	}
	return out
}

func TestSignedEntryValidate(t *testing.T) {
	f := newFixtures(t)
	s := *f.signedUpdate
	tests := []struct {
		name          string
		s             SignedEntry
		kind          error
		field, reason string
	}{
		{"no signatures", SignedEntry{Entry: s.Entry}, ErrInvalid, "signature_count", "no signatures"},
		{"empty entry", SignedEntry{Signatures: s.Signatures}, ErrInvalid, "entry", "empty entry"},
		{"bad entry", SignedEntry{Entry: append(bytes.Clone(s.Entry), 0), Signatures: s.Signatures}, ErrTrailingData, "entry", "trailing"},
		{"out of order", SignedEntry{Entry: s.Entry, Signatures: []Signature{s.Signatures[2], s.Signatures[1]}}, ErrNotCanonical, "signatures[1].key_id", "strictly increasing"},
		{"twice", SignedEntry{Entry: s.Entry, Signatures: []Signature{s.Signatures[1], s.Signatures[1]}}, ErrNotCanonical, "signatures[1].key_id", "signs twice"},
	}
	for _, tt := range tests {
		wantField(t, tt.s.Validate(), tt.kind, tt.field, tt.reason)
		_, _, err := ParseSignedEntry(modelSignedEntry(&tt.s).bytes())
		wantField(t, err, tt.kind, "signed_entry."+tt.field, tt.reason)
	}
	// 65 signatures: rejected by the count cap before anything else.
	b := modelSignedEntry(&s).bytes()
	i := 2 + len(s.Entry)
	b[i] = MaxSignatures + 1
	_, _, err := ParseSignedEntry(b)
	wantField(t, err, ErrTooLarge, "signed_entry.signature_count", "65 signatures")
}

func TestRegistration(t *testing.T) {
	f := newFixtures(t)
	regHash := EntryHash(f.signedReg.Entry)
	registrars := []ed25519.PublicKey{testPub(8), testPub(registrarKey)}
	if err := f.regRegistrar.VerifyRegistrar(regHash, registrars); err != nil {
		t.Fatal(err)
	}
	if err := f.regRegistrar.VerifyRegistrar(regHash, registrars[:1]); !errors.Is(err, ErrRegistrationNotAuthorized) || !strings.Contains(err.Error(), "not a registrar") {
		t.Errorf("unknown registrar: %v", err)
	}
	if err := f.regRegistrar.VerifyRegistrar(EntryHash(f.signedBob.Entry), registrars); !errors.Is(err, ErrRegistrationNotAuthorized) || !strings.Contains(err.Error(), "invalid") {
		t.Errorf("registrar signature over another entry: %v", err)
	}
	// An entry signature is not a registration signature (distinct tags).
	entrySig := SignEntry(testKey(registrarKey), regHash)
	r := &Registration{Kind: RegistrationRegistrar, Registrar: entrySig}
	if err := r.VerifyRegistrar(regHash, registrars); err == nil {
		t.Error("an entry signature authorised a registration")
	}
	if err := f.regOIDC.VerifyRegistrar(regHash, registrars); !errors.Is(err, ErrRegistrationNotAuthorized) {
		t.Errorf("OIDC marker as registrar: %v", err)
	}
	for bit := 0; bit < 8*signatureSize; bit++ {
		enc := appendSignature(nil, &f.regRegistrar.Registrar)
		enc[bit/8] ^= 1 << (bit % 8)
		r := &Registration{Kind: RegistrationRegistrar}
		rd := reader{enc}
		rd.signature(&r.Registrar)
		if r.VerifyRegistrar(regHash, registrars) == nil {
			t.Fatalf("bit %d flipped: still authorised", bit)
		}
	}

	tests := []struct {
		name          string
		r             Registration
		kind          error
		field, reason string
	}{
		{"unknown kind", Registration{Kind: 0}, ErrInvalid, "kind", "unknown registration kind 0"},
		{"registrar with issuer", Registration{Kind: RegistrationRegistrar, Issuer: "https://x"}, ErrInvalid, "issuer", "has no issuer"},
		{"oidc with signature", Registration{Kind: RegistrationOIDC, Issuer: "https://x", Registrar: Signature{KeyID: KeyID{1}}}, ErrInvalid, "registrar", "no registrar signature"},
		{"empty issuer", Registration{Kind: RegistrationOIDC}, ErrInvalid, "issuer", "empty issuer"},
		{"no scheme", Registration{Kind: RegistrationOIDC, Issuer: "accounts.google.com"}, ErrInvalid, "issuer", "not an http(s) URL"},
		{"no host", Registration{Kind: RegistrationOIDC, Issuer: "https://"}, ErrInvalid, "issuer", "not an http(s) URL"},
		{"fragment", Registration{Kind: RegistrationOIDC, Issuer: "https://a#b"}, ErrInvalid, "issuer", "query or fragment"},
		{"space", Registration{Kind: RegistrationOIDC, Issuer: "https://a b"}, ErrInvalid, "issuer", "byte 0x20"},
		{"non-ASCII", Registration{Kind: RegistrationOIDC, Issuer: "https://exämple"}, ErrInvalid, "issuer", "not printable ASCII"},
		{"too long", Registration{Kind: RegistrationOIDC, Issuer: "https://" + strings.Repeat("a", 249)}, ErrTooLarge, "issuer", "257 bytes"},
	}
	for _, tt := range tests {
		wantField(t, tt.r.Validate(), tt.kind, tt.field, tt.reason)
		if tt.name == "oidc with signature" || tt.name == "registrar with issuer" {
			continue // the encoding cannot carry both
		}
		_, err := ParseRegistration(modelRegistration(&tt.r).bytes())
		wantField(t, err, tt.kind, "registration."+tt.field, tt.reason)
	}
	for _, ok := range []string{"http://127.0.0.1:5556/dex", "https://accounts.google.com", "https://" + strings.Repeat("a", 248)} {
		r := &Registration{Kind: RegistrationOIDC, Issuer: ok}
		b := mustMarshal(t, r)
		if got, err := ParseRegistration(b); err != nil || got.Issuer != ok {
			t.Errorf("issuer %q: %v", ok, err)
		}
	}
	if RegistrationRegistrar.String() != "registrar" || RegistrationOIDC.String() != "oidc" || RegistrationKind(7).String() != "kind(7)" {
		t.Error("RegistrationKind.String")
	}
}

func TestLogRecordRules(t *testing.T) {
	f := newFixtures(t)
	noReg := *f.recReg
	noReg.Registration = nil
	wantField(t, noReg.Validate(), ErrInvalid, "registration", "missing for a version 1 entry")
	withReg := *f.recUpdate
	withReg.Registration = f.regOIDC
	wantField(t, withReg.Validate(), ErrInvalid, "registration", "present for a version 2 entry")
	badReg := *f.recBob
	badReg.Registration = &Registration{Kind: RegistrationOIDC, Issuer: "ftp://x"}
	wantField(t, badReg.Validate(), ErrInvalid, "registration.issuer", "not an http(s) URL")
	_, _, err := ParseLogRecord(modelLogRecord(&badReg).bytes())
	wantField(t, err, ErrInvalid, "log_record.registration.issuer", "not an http(s) URL")
	bad := *f.recUpdate
	bad.SignedEntry.Signatures = nil
	_, err = bad.Marshal()
	wantField(t, err, ErrInvalid, "log_record.signed_entry.signature_count", "no signatures")

	// The parsed entry matches the record's entry bytes.
	for _, r := range []*LogRecord{f.recReg, f.recUpdate, f.recTomb, f.recBob} {
		l, e, err := ParseLogRecord(mustMarshal(t, r))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustMarshal(t, e), l.SignedEntry.Entry) {
			t.Error("parsed entry differs from the entry bytes")
		}
	}
}

func TestLeafRecordAndHead(t *testing.T) {
	f := newFixtures(t)
	l := *f.leafFirst
	l.Epoch = 0
	wantField(t, l.Validate(), ErrInvalid, "epoch", "epoch 0")
	valid := mustMarshal(t, f.leafNext)
	for n := 0; n < LeafRecordSize+2; n++ {
		b := append(bytes.Clone(valid), 0, 0)[:n]
		_, err := ParseLeafRecord(b)
		if (err == nil) != (n == LeafRecordSize) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}

	h := *f.headOne
	h.UpdateCount = 0
	wantField(t, h.Validate(), ErrInvalid, "updates_root", "empty root")
	h = *f.headOne
	h.UpdateCount = MaxBundleRecords + 1
	wantField(t, h.Validate(), ErrTooLarge, "update_count", "more than")
	h = *f.headGenesis
	h.UpdateCount = 1
	wantField(t, h.Validate(), ErrInvalid, "update_count", "the genesis has none")
	h = *f.headGenesis
	h.Realm = "bad realm"
	_, err := ParseEpochHead(modelEpochHead(&h).bytes())
	wantField(t, err, ErrInvalid, "epoch_head.realm", "byte 0x20")
	// A head of another format version is rejected by its tag.
	b := modelEpochHead(f.headOne).bytes()
	copy(b[1:], "conifer/epoch-head/v2")
	_, err = ParseEpochHead(b)
	wantField(t, err, ErrInvalid, "epoch_head.tag", "want \"conifer/epoch-head/v1\"")
	if MaxEpochHeadSize != 239 {
		t.Errorf("MaxEpochHeadSize = %d", MaxEpochHeadSize)
	}
	h = *f.headOne
	h.Realm = strings.Repeat("r", MaxRealmLen)
	if n := len(mustMarshal(t, &h)); n != MaxEpochHeadSize {
		t.Errorf("largest head is %d bytes", n)
	}
}
