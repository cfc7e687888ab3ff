package client_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"testing"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/client"
	"github.com/conifer-kt/conifer/format"
)

// historyFixture gives alice six versions: registration, profile update,
// device key rotation, a policy change to 2-of-{device2, recovery}, a
// tombstone and a revival. Every signature on every version is necessary.
type historyFixture struct {
	*env
	pinned   *client.Pinned
	device2  ed25519.PrivateKey
	recovery ed25519.PrivateKey
	hist     *api.HistoryResponse
}

func newHistoryFixture(t *testing.T) *historyFixture {
	t.Helper()
	e := newEnv(t, envOpts{verifiers: 2, quorum: 1, seed: 3})
	h := &historyFixture{env: e}
	var err error
	h.device2, _ = client.GenerateKey(e.rand)
	h.recovery, _ = client.GenerateKey(e.rand)
	user := "alice@example.com"
	cur := e.register(user, profileOf(t, "pgp", "p1"))
	e.change(user, client.Change{Profile: profileOf(t, "pgp", "p2")}, e.device)
	rotated, err := client.RotateKey(&cur.Entry.Policy, pub(e.device), pub(h.device2))
	if err != nil {
		t.Fatal(err)
	}
	e.change(user, client.Change{Policy: rotated}, e.device, h.device2)
	two, err := client.KeyPolicy(2, pub(h.device2), pub(h.recovery))
	if err != nil {
		t.Fatal(err)
	}
	e.change(user, client.Change{Policy: two}, h.device2, h.recovery)
	e.change(user, client.Change{Tombstone: true}, h.device2, h.recovery)
	e.change(user, client.Change{Profile: profileOf(t, "pgp", "p6")}, h.device2, h.recovery)
	if h.hist, err = e.srv.History(user, 1); err != nil {
		t.Fatal(err)
	}
	if h.pinned, err = client.NewPinned(e.cfg, 1); err != nil {
		t.Fatal(err)
	}
	return h
}

func cloneHistory(h *api.HistoryResponse) *api.HistoryResponse {
	c := &api.HistoryResponse{Lookup: *cloneProof(&h.Lookup)}
	for _, r := range h.Records {
		c.Records = append(c.Records, api.HistoryRecord{LeafRecord: slices.Clone(r.LeafRecord), SignedEntry: slices.Clone(r.SignedEntry)})
	}
	return c
}

func TestVerifyHistoryHonest(t *testing.T) {
	h := newHistoryFixture(t)
	got, err := h.pinned.VerifyHistory("alice@example.com", h.hist, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Versions) != 6 {
		t.Fatalf("%d versions", len(got.Versions))
	}
	for i, v := range got.Versions {
		if v.Entry.Version != uint64(i+1) {
			t.Errorf("version %d at position %d", v.Entry.Version, i)
		}
		if i > 0 && (v.Entry.Prev != got.Versions[i-1].EntryHash || v.LeafRecord.Prev != got.Versions[i-1].LeafRecordHash) {
			t.Errorf("version %d does not chain", i+1)
		}
	}
	if !got.Versions[4].Entry.Tombstone || got.Versions[5].Entry.Tombstone {
		t.Error("tombstone not where it was put")
	}
	if want := []format.KeyID{format.KeyIDOf(pub(h.device)), format.KeyIDOf(pub(h.device2))}; !sameIDs(got.Versions[2].Signers, want) {
		t.Errorf("rotation signers %v, want %v", got.Versions[2].Signers, want)
	}
	if got.Versions[5].EntryHash != got.Lookup.EntryHash {
		t.Error("history does not end in the lookup")
	}
	if _, err := client.VerifyHistory(h.cfg, "alice@example.com", h.hist, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
}

func sameIDs(a, b []format.KeyID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	cmp := func(x, y format.KeyID) int { return bytes.Compare(x[:], y[:]) }
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

// TestVerifyHistoryBitFlips flips one bit per byte (every bit without
// -short) of every record. A flip in an entry or a leaf record breaks the
// hash chain (ErrHistoryChain); a flip in a signature leaves the chain but
// loses a necessary signature (ErrHistorySignature).
func TestVerifyHistoryBitFlips(t *testing.T) {
	h := newHistoryFixture(t)
	user := "alice@example.com"
	flips := 0
	for i, rec := range h.hist.Records {
		for _, field := range []string{"leaf_record", "signed_entry"} {
			orig := rec.LeafRecord
			if field == "signed_entry" {
				orig = rec.SignedEntry
			}
			for pos := range orig {
				bits := []int{pos % 8}
				if !testing.Short() {
					bits = []int{0, 1, 2, 3, 4, 5, 6, 7}
				}
				for _, bit := range bits {
					c := cloneHistory(h.hist)
					b := c.Records[i].LeafRecord
					if field == "signed_entry" {
						b = c.Records[i].SignedEntry
					}
					b[pos] ^= 1 << bit
					want := client.ErrHistoryChain
					if field == "signed_entry" {
						se, _, err := format.ParseSignedEntry(b)
						orig, _, _ := format.ParseSignedEntry(rec.SignedEntry)
						if err == nil && bytes.Equal(se.Entry, orig.Entry) {
							want = client.ErrHistorySignature
						}
					}
					_, err := h.pinned.VerifyHistory(user, c, h.clock.Now())
					if !errors.Is(err, want) {
						t.Fatalf("record %d %s byte %d bit %d: %v, want %v", i, field, pos, bit, err, want)
					}
					checkErr(t, err, want)
					flips++
				}
			}
		}
	}
	t.Logf("%d bit flips", flips)
}

func TestVerifyHistoryTampered(t *testing.T) {
	h := newHistoryFixture(t)
	user := "alice@example.com"
	bob, err := h.srv.Lookup("bob@example.com", 1)
	if err != nil {
		t.Fatal(err)
	}
	// An alternative version 6, validly signed, chained to version 5, but
	// not the one published.
	r5 := h.hist.Records[4]
	_, e5, _ := format.ParseSignedEntry(r5.SignedEntry)
	se5, _, _ := format.ParseSignedEntry(r5.SignedEntry)
	alt := *e5
	alt.Version, alt.Prev, alt.Tombstone = 6, format.EntryHash(se5.Entry), false
	alt.Commitment = format.CommitProfile([16]byte{42}, []byte{0})
	altSE := signedEntry(t, &alt, h.device2, h.recovery)
	altParsed, _, _ := format.ParseSignedEntry(altSE)
	leaf6, _ := format.ParseLeafRecord(h.hist.Records[5].LeafRecord)
	altLeaf := leafRecord(t, &format.LeafRecord{EntryHash: format.EntryHash(altParsed.Entry), Epoch: leaf6.Epoch, Prev: format.LeafRecordHash(r5.LeafRecord)})

	cases := []struct {
		name   string
		mutate func(c *api.HistoryResponse)
		want   error
	}{
		{"honest", func(*api.HistoryResponse) {}, nil},
		{"first record missing", func(c *api.HistoryResponse) { c.Records = c.Records[1:] }, client.ErrHistoryChain},
		{"middle record missing", func(c *api.HistoryResponse) { c.Records = slices.Delete(c.Records, 2, 3) }, client.ErrHistoryChain},
		{"last record missing", func(c *api.HistoryResponse) { c.Records = c.Records[:5] }, client.ErrHistoryChain},
		{"record repeated instead of another", func(c *api.HistoryResponse) { c.Records[3] = c.Records[2] }, client.ErrHistoryChain},
		{"records swapped", func(c *api.HistoryResponse) { c.Records[1], c.Records[2] = c.Records[2], c.Records[1] }, client.ErrHistoryChain},
		{"extra record", func(c *api.HistoryResponse) { c.Records = append(c.Records, c.Records[5]) }, client.ErrHistoryChain},
		{"no records", func(c *api.HistoryResponse) { c.Records = nil }, client.ErrHistoryChain},
		{"signatures of another version", func(c *api.HistoryResponse) {
			se, _, _ := format.ParseSignedEntry(c.Records[1].SignedEntry)
			other, _, _ := format.ParseSignedEntry(c.Records[0].SignedEntry)
			se.Signatures = other.Signatures
			c.Records[1].SignedEntry, _ = se.Marshal()
		}, client.ErrHistorySignature},
		{"rotation without the old key's signature", func(c *api.HistoryResponse) {
			se, _, _ := format.ParseSignedEntry(c.Records[2].SignedEntry)
			id := format.KeyIDOf(pub(h.device))
			se.Signatures = slices.DeleteFunc(se.Signatures, func(s format.Signature) bool { return s.KeyID == id })
			c.Records[2].SignedEntry, _ = se.Marshal()
		}, client.ErrHistorySignature},
		{"rotation without the new key's signature", func(c *api.HistoryResponse) {
			se, _, _ := format.ParseSignedEntry(c.Records[2].SignedEntry)
			id := format.KeyIDOf(pub(h.device2))
			se.Signatures = slices.DeleteFunc(se.Signatures, func(s format.Signature) bool { return s.KeyID == id })
			c.Records[2].SignedEntry, _ = se.Marshal()
		}, client.ErrHistorySignature},
		{"a validly signed version 6 that was not published", func(c *api.HistoryResponse) {
			c.Records[5] = api.HistoryRecord{LeafRecord: altLeaf, SignedEntry: altSE}
		}, client.ErrHistoryChain},
		{"records for an absent user", func(c *api.HistoryResponse) { c.Lookup = *cloneProof(bob) }, client.ErrWrongUser},
		{"lookup failure reported with the history", func(c *api.HistoryResponse) { c.Lookup.Opening = nil }, client.ErrProfileCommitment},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cloneHistory(h.hist)
			tc.mutate(c)
			_, err := h.pinned.VerifyHistory(user, c, h.clock.Now())
			checkErr(t, err, tc.want)
			var e *client.Error
			if errors.As(err, &e) && (e.Evidence.History == nil || e.Evidence.Lookup != nil) {
				t.Error("history failure does not carry the history as evidence")
			}
		})
	}
	// An absent user with records.
	c := &api.HistoryResponse{Lookup: *cloneProof(bob), Records: h.hist.Records}
	_, err = h.pinned.VerifyHistory("bob@example.com", c, h.clock.Now())
	checkErr(t, err, client.ErrHistoryChain)
	c.Records = nil
	got, err := h.pinned.VerifyHistory("bob@example.com", c, h.clock.Now())
	if err != nil || got.Lookup.Present || len(got.Versions) != 0 {
		t.Fatalf("absent user's empty history: %v %+v", err, got)
	}
}

// TestVerifyHistoryForged covers the history checks a lying keyserver can
// reach with a chain whose hashes all match: epochs out of order and
// entries of another index.
func TestVerifyHistoryForged(t *testing.T) {
	e := newEnv(t, envOpts{verifiers: 1, quorum: 1, seed: 5})
	fg := &forger{t: t, keys: e.keys, cfg: e.cfg, now: e.clock.Now()}
	p, _ := client.NewPinned(e.cfg, 1)
	user := "alice@example.com"
	ai, _ := e.srv.Index(user)
	bi, _ := e.srv.Index("bob@example.com")
	pol, _ := client.KeyPolicy(1, pub(e.device))

	// chain builds versions with the given indexes and leaf epochs, forges
	// the lookup of the last, and returns the history.
	chain := func(indexes [][32]byte, epochs []uint64) *api.HistoryResponse {
		var (
			recs     []api.HistoryRecord
			prevE    [32]byte
			prevL    [32]byte
			lastLeaf []byte
			lastSE   []byte
		)
		for i := range indexes {
			// Earlier versions commit to something; the last is a tombstone
			// so the forged lookup needs no profile.
			en := &format.Entry{Realm: e.cfg.Realm, Index: indexes[i], Version: uint64(i + 1), Prev: prevE, Policy: *pol, Commitment: [32]byte{1}}
			if i == len(indexes)-1 {
				en.Tombstone, en.Commitment = true, [32]byte{}
			}
			se := signedEntry(t, en, e.device)
			parsed, _, _ := format.ParseSignedEntry(se)
			leaf := leafRecord(t, &format.LeafRecord{EntryHash: format.EntryHash(parsed.Entry), Epoch: epochs[i], Prev: prevL})
			recs = append(recs, api.HistoryRecord{LeafRecord: leaf, SignedEntry: se})
			prevE, prevL = format.EntryHash(parsed.Entry), format.LeafRecordHash(leaf)
			lastLeaf, lastSE = leaf, se
		}
		lp := fg.forge(forgery{userID: user, epoch: 3, leaves: map[[32]byte][]byte{ai: lastLeaf}, leaf: lastLeaf, signedEntry: lastSE})
		return &api.HistoryResponse{Lookup: *lp, Records: recs}
	}
	for _, tc := range []struct {
		name    string
		indexes [][32]byte
		epochs  []uint64
		want    error
	}{
		{"consistent forgery", [][32]byte{ai, ai, ai}, []uint64{1, 2, 2}, nil},
		{"epochs out of order", [][32]byte{ai, ai, ai}, []uint64{2, 1, 3}, client.ErrHistoryChain},
		{"first entry of another index", [][32]byte{bi, ai}, []uint64{1, 2}, client.ErrHistoryChain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.VerifyHistory(user, chain(tc.indexes, tc.epochs), e.clock.Now())
			checkErr(t, err, tc.want)
		})
	}
	// A chain that starts at version 2: record 0 is well-formed and its
	// leaf record names it, but no registration is version 2.
	mk := func(prev [32]byte, tomb bool) (*format.Entry, []byte, [32]byte) {
		en := &format.Entry{Realm: e.cfg.Realm, Index: ai, Version: 2, Prev: prev, Policy: *pol, Commitment: [32]byte{1}}
		if tomb {
			en.Tombstone, en.Commitment = true, [32]byte{}
		}
		se := signedEntry(t, en, e.device)
		parsed, _, _ := format.ParseSignedEntry(se)
		return en, se, format.EntryHash(parsed.Entry)
	}
	_, se0, h0 := mk([32]byte{1}, false)
	_, se1, h1 := mk(h0, true)
	leaf0 := leafRecord(t, &format.LeafRecord{EntryHash: h0, Epoch: 1})
	leaf1 := leafRecord(t, &format.LeafRecord{EntryHash: h1, Epoch: 2, Prev: format.LeafRecordHash(leaf0)})
	lp := fg.forge(forgery{userID: user, epoch: 3, leaves: map[[32]byte][]byte{ai: leaf1}, leaf: leaf1, signedEntry: se1})
	h := &api.HistoryResponse{Lookup: *lp, Records: []api.HistoryRecord{{LeafRecord: leaf0, SignedEntry: se0}, {LeafRecord: leaf1, SignedEntry: se1}}}
	_, err := p.VerifyHistory(user, h, e.clock.Now())
	checkErr(t, err, client.ErrHistoryChain)
	if !errors.Is(err, format.ErrInvalidTransition) {
		t.Errorf("error %v is not the transition check's", err)
	}
}
