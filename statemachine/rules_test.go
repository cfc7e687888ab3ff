package statemachine

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
)

// ruleFixture is the state the rule table runs against, committed as
// epoch 1: bob registered (version 1, 1-of-{k1}) and updated in the same
// epoch (version 2, 1-of-{k2}); tom registered (1-of-{k5}) and tombstoned.
type ruleFixture struct {
	env            *env
	bob1, bob2     [32]byte // entry hashes
	tom2           [32]byte
	bobPrev, tomPv []byte // encoded signed entries of the newest versions
}

func newRuleFixture(t *testing.T) *ruleFixture {
	f := &ruleFixture{env: newEnv(t)}
	bob, tom := indexOf("bob"), indexOf("tom")
	r1, h1 := register(t, ent{index: bob, policy: pol(1, []int{1})}, 1)
	r2, h2 := update(t, ent{index: bob, version: 2, prev: h1, policy: pol(1, []int{2}), commit: 2}, 1, 2)
	r3, t1 := register(t, ent{index: tom, policy: pol(1, []int{5})}, 5)
	r4, t2 := update(t, ent{index: tom, version: 2, prev: t1, policy: pol(1, []int{5}), tombstone: true}, 5)
	out := f.env.run(r1, r2, r3, r4)
	if len(out.Rejected) != 0 {
		t.Fatalf("fixture rejected: %+v", out.Rejected)
	}
	f.bob1, f.bob2, f.tom2 = h1, h2, t2
	f.bobPrev, f.tomPv = out.Applied[1].SignedEntry, out.Applied[3].SignedEntry
	return f
}

func flipSig(rec []byte, sigOffsetFromEnd int) []byte {
	b := bytes.Clone(rec)
	b[len(b)-sigOffsetFromEnd] ^= 0x01
	return b
}

func TestRules(t *testing.T) {
	f := newRuleFixture(t)
	bob, tom, nu := indexOf("bob"), indexOf("tom"), indexOf("new")
	other := sha256Tag("other")

	type tc struct {
		name string
		prev string // "bob", "tom" or "" (no entry)
		rec  []byte
		want RejectCode
	}
	var cases []tc
	add := func(name, prev string, rec []byte, want RejectCode) {
		cases = append(cases, tc{name, prev, rec, want})
	}

	// Registrations.
	rec, _ := register(t, ent{index: nu, policy: pol(1, []int{10})}, 10)
	add("registration by registrar A", "", rec, 0)
	{
		s, h := signed(t, ent{index: nu, version: 1, policy: pol(1, []int{10})}.entry(), 10)
		add("registration by registrar B", "", encode(t, s, byRegistrar(registrarB, h)), 0)
		add("registration by OIDC", "", encode(t, s, byOIDC(testIssuer)), 0)
		add("registration by unknown OIDC issuer", "", encode(t, s, byOIDC("https://evil.example")), Registration)
		add("registration by issuer differing in a trailing slash", "", encode(t, s, byOIDC(testIssuer+"/")), Registration)
		add("registration by a key that is not a registrar", "", encode(t, s, byRegistrar(7, h)), Registration)
		bad := byRegistrar(registrarA, h)
		bad.Registrar.Sig[5] ^= 0x40
		add("registration with invalid registrar signature", "", encode(t, s, bad), Registration)
		wrongTag := &format.Registration{Kind: format.RegistrationRegistrar, Registrar: format.SignEntry(key(registrarA), h)}
		add("registrar signature over the entry-signature message", "", encode(t, s, wrongTag), Registration)
		otherHash := sha256Tag("another entry")
		add("registrar signature over another entry", "", encode(t, s, byRegistrar(registrarA, otherHash)), Registration)
		// The entry-signature by k10 must not count as a registrar signature
		// even if k10's signature is moved into the registration.
		moved := &format.Registration{Kind: format.RegistrationRegistrar, Registrar: s.Signatures[0]}
		add("policy signature used as registrar signature", "", encode(t, s, moved), Registration)
	}
	nested := pol(2, []int{10}, pol(1, []int{11, 12}))
	rec, _ = register(t, ent{index: nu, policy: nested}, 10, 12)
	add("registration nested quorum met", "", rec, 0)
	rec, _ = register(t, ent{index: nu, policy: nested}, 11, 12)
	add("registration nested quorum not met", "", rec, QuorumNew)
	rec, _ = register(t, ent{index: nu, policy: pol(1, []int{10})}, 11)
	add("registration signed by a key outside the policy", "", rec, QuorumNew)
	{
		s, h := signed(t, ent{index: nu, version: 1, policy: pol(1, []int{10})}.entry())
		forged := format.SignEntry(key(11), h)
		forged.KeyID = format.KeyIDOf(pub(10))
		s.Signatures = []format.Signature{forged}
		add("signature naming a policy key made by another key", "", encode(t, s, byRegistrar(registrarA, h)), QuorumNew)
	}
	rec, _ = register(t, ent{index: nu, policy: pol(1, []int{10})}, 10)
	add("registration with invalid policy signature", "", flipSig(rec, 1+72+1), QuorumNew)
	rec, _ = register(t, ent{index: nu, policy: pol(1, []int{10}), tombstone: true}, 10)
	add("registration that is a tombstone", "", rec, RegistrationTombstone)
	rec, _ = update(t, ent{index: nu, version: 2, prev: other, policy: pol(1, []int{10})}, 10)
	add("update of an unregistered index", "", rec, NotRegistered)
	rec, _ = register(t, ent{realm: "other.example", index: nu, policy: pol(1, []int{10})}, 10)
	add("registration in another realm", "", rec, WrongRealm)

	// Malformed records.
	rec, _ = register(t, ent{index: nu, policy: pol(1, []int{10})}, 10)
	add("empty record", "", []byte{}, Malformed)
	add("garbage", "", []byte("not a log record at all"), Malformed)
	add("truncated record", "", rec[:len(rec)-1], Malformed)
	add("record with a trailing byte", "", append(bytes.Clone(rec), 0), Malformed)
	{
		s, _ := signed(t, ent{index: nu, version: 1, policy: pol(1, []int{10})}.entry(), 10)
		b, _ := s.Marshal() // a version 1 record without its registration
		add("registration without registration", "", b, Malformed)
	}

	// Updates of bob (version 2, 1-of-{k2}).
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob2, policy: pol(1, []int{3})}, 2, 3)
	add("key rotation", "bob", rec, 0)
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob2, policy: pol(1, []int{2}), commit: 9}, 2)
	add("profile change", "bob", rec, 0)
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob2, policy: pol(1, []int{3})}, 2)
	add("rotation without the new key", "bob", rec, QuorumNew)
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob2, policy: pol(1, []int{3})}, 3)
	add("rotation without the old key", "bob", rec, QuorumOld)
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob2, policy: pol(1, []int{2})}, 2)
	add("update with invalid old signature", "bob", flipSig(rec, 1), QuorumOld)
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob2, policy: pol(2, []int{3, 4})}, 2, 3)
	add("to 2-of-2 with one new key", "bob", rec, QuorumNew)
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob2, policy: pol(2, []int{3, 4})}, 2, 3, 4)
	add("to 2-of-2 with both new keys", "bob", rec, 0)
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob2, policy: pol(1, []int{2}), tombstone: true}, 2)
	add("tombstone", "bob", rec, 0)
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob2, policy: pol(1, []int{9}), tombstone: true}, 9)
	add("tombstone without the old quorum", "bob", rec, QuorumOld)
	rec, _ = update(t, ent{index: bob, version: 2, prev: f.bob1, policy: pol(1, []int{2}), commit: 7}, 1, 2)
	add("stale version", "bob", rec, StaleVersion)
	rec, _ = register(t, ent{index: bob, policy: pol(1, []int{2})}, 2)
	add("registration of a registered user", "bob", rec, AlreadyRegistered)
	rec, _ = update(t, ent{index: bob, version: 4, prev: f.bob2, policy: pol(1, []int{2})}, 2)
	add("version gap", "bob", rec, VersionGap)
	rec, _ = update(t, ent{index: bob, version: 3, prev: f.bob1, policy: pol(1, []int{2})}, 2)
	add("wrong prev", "bob", rec, WrongPrev)
	rec, _ = update(t, ent{realm: "other.example", index: bob, version: 3, prev: f.bob2, policy: pol(1, []int{2})}, 2)
	add("update in another realm", "bob", rec, WrongRealm)

	// Tom is tombstoned (version 2, 1-of-{k5}).
	rec, _ = update(t, ent{index: tom, version: 3, prev: f.tom2, policy: pol(1, []int{6})}, 5, 6)
	add("revival", "tom", rec, 0)
	rec, _ = update(t, ent{index: tom, version: 3, prev: f.tom2, policy: pol(1, []int{6})}, 6)
	add("revival without the tombstone's quorum", "tom", rec, QuorumOld)
	rec, _ = register(t, ent{index: tom, policy: pol(1, []int{6})}, 6)
	add("re-registration after a tombstone", "tom", rec, AlreadyRegistered)

	seen := map[RejectCode]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var prev []byte
			switch c.prev {
			case "bob":
				prev = f.bobPrev
			case "tom":
				prev = f.tomPv
			}
			d, err := Check(f.env.rules, prev, c.rec)
			var rej *Rejection
			switch {
			case c.want == 0 && err != nil:
				t.Fatalf("Check rejected: %v", err)
			case c.want != 0 && (!errors.As(err, &rej) || rej.Code != c.want || !errors.Is(err, ErrRejected)):
				t.Fatalf("Check: got %v, want code %v", err, c.want)
			case c.want == 0:
				_, e, _ := format.ParseLogRecord(c.rec)
				if d.Index != e.Index || d.Version != e.Version || d.EntryHash != format.EntryHash(d.Record.SignedEntry.Entry) || d.Tombstone != e.Tombstone {
					t.Fatalf("decision %+v does not describe the record", d)
				}
				se, _ := d.Record.SignedEntry.Marshal()
				if !bytes.Equal(se, d.SignedEntry) {
					t.Fatalf("decision's signed entry is not the record's")
				}
			}

			out, err := f.env.apply(c.rec)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			checkOutput(t, 2, [][]byte{c.rec}, out)
			if got := codes(out, 1)[0]; got != c.want {
				t.Fatalf("Apply: got code %v (%+v), want %v", got, out.Rejected, c.want)
			}
			if c.want == 0 {
				a := out.Applied[0]
				var prevLeaf [32]byte
				if c.prev != "" {
					l, _ := f.env.entries.Latest(t.Context(), 1, [][32]byte{a.Index})
					prevLeaf = format.LeafRecordHash(l[a.Index].LeafRecord)
				}
				want, _ := (&format.LeafRecord{EntryHash: a.EntryHash, Epoch: 2, Prev: prevLeaf}).Marshal()
				if !bytes.Equal(a.LeafRecord, want) {
					t.Fatalf("leaf record %x, want %x", a.LeafRecord, want)
				}
			}
			seen[c.want] = true
		})
	}

	// Check alone sees the index of prev: a record for another index.
	rec, _ = update(t, ent{index: nu, version: 3, prev: f.bob2, policy: pol(1, []int{2})}, 2)
	if _, err := Check(f.env.rules, f.bobPrev, rec); !isCode(err, WrongIndex) {
		t.Errorf("Check of another index's record: %v, want WrongIndex", err)
	}
	seen[WrongIndex] = true
	for c := Malformed; c <= QuorumNew; c++ {
		if !seen[c] {
			t.Errorf("no test case for code %v", c)
		}
	}
}

func isCode(err error, c RejectCode) bool {
	var rej *Rejection
	return errors.As(err, &rej) && rej.Code == c
}

func sha256Tag(s string) [32]byte { return indexOf("tag/" + s) }

func TestCheckErrors(t *testing.T) {
	rec, _ := register(t, ent{index: indexOf("x"), policy: pol(1, []int{1})}, 1)
	if _, err := Check(testRules(), []byte("garbage"), rec); !errors.Is(err, ErrInconsistent) || errors.Is(err, ErrRejected) {
		t.Errorf("Check with a malformed prev: %v, want ErrInconsistent", err)
	}
	bad := testRules()
	bad.Realm = ""
	if _, err := Check(bad, nil, rec); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Check with invalid rules: %v, want ErrInvalidInput", err)
	}
	var r *Rejection = &Rejection{Code: WrongPrev, Reason: "x"}
	if got := r.Error(); got != "statemachine: record rejected (wrong-prev): x" {
		t.Errorf("Rejection.Error() = %q", got)
	}
	if RejectCode(200).String() != "code(200)" || RejectCode(0).String() != "code(0)" {
		t.Errorf("unknown codes print as %v, %v", RejectCode(200), RejectCode(0))
	}
}

func TestRulesValidate(t *testing.T) {
	smallOrder := make(ed25519.PublicKey, 32) // y = 0: a point of order 4
	nonCanonical := bytes.Repeat([]byte{0xff}, 32)
	nonCanonical[31] = 0x7f
	for _, c := range []struct {
		name string
		mod  func(*Rules)
	}{
		{"empty realm", func(r *Rules) { r.Realm = "" }},
		{"realm with space", func(r *Rules) { r.Realm = "a b" }},
		{"long realm", func(r *Rules) { r.Realm = strings.Repeat("a", 129) }},
		{"short registrar key", func(r *Rules) { r.Registrars[0] = r.Registrars[0][:31] }},
		{"small-order registrar key", func(r *Rules) { r.Registrars[0] = smallOrder }},
		{"non-canonical registrar key", func(r *Rules) { r.Registrars[0] = nonCanonical }},
		{"repeated registrar", func(r *Rules) { r.Registrars[1] = r.Registrars[0] }},
		{"empty issuer", func(r *Rules) { r.OIDCIssuers[0] = "" }},
		{"repeated issuer", func(r *Rules) { r.OIDCIssuers = append(r.OIDCIssuers, testIssuer) }},
	} {
		r := testRules()
		c.mod(&r)
		if err := r.Validate(); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidInput", c.name, err)
		}
	}
	r := testRules()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	r.Registrars, r.OIDCIssuers = nil, nil // a realm nobody can join is still valid rules
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRulesFromRealm(t *testing.T) {
	c := &realm.Config{
		Realm:        testRealm,
		VRFPublicKey: make([]byte, 32),
		LogKey:       "x",
		Registration: realm.Registration{
			Registrars: [][]byte{pub(registrarA), pub(registrarB)},
			OIDC:       []realm.OIDCProvider{{Issuer: testIssuer, Audiences: []string{"a"}}},
		},
	}
	r, err := RulesFromRealm(c)
	if err != nil {
		t.Fatal(err)
	}
	want := testRules()
	if r.Realm != want.Realm || len(r.Registrars) != 2 || !bytes.Equal(r.Registrars[0], want.Registrars[0]) ||
		!bytes.Equal(r.Registrars[1], want.Registrars[1]) || len(r.OIDCIssuers) != 1 || r.OIDCIssuers[0] != testIssuer {
		t.Fatalf("RulesFromRealm = %+v", r)
	}
	c.Registration.Registrars[0][0] ^= 1 // the rules do not alias the config
	if !bytes.Equal(r.Registrars[0], want.Registrars[0]) {
		t.Fatal("rules alias the realm config's keys")
	}
	c.Registration.Registrars = append(c.Registration.Registrars, make([]byte, 32))
	if _, err := RulesFromRealm(c); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("RulesFromRealm with a small-order registrar: %v", err)
	}
}
