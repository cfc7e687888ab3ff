package client_test

import (
	"encoding/json"
	"testing"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/client"
)

// FuzzVerifyLookup feeds VerifyLookup arbitrary answers (JSON-decoded, as a
// client receives them), seeded with the honest answers for a present, an
// absent and an erased user. It must never panic, and any answer it accepts
// must say exactly what the honest server says for that user at that
// epoch: the keyserver signs only one truth per epoch, so no mutation may
// change a verified result.
func FuzzVerifyLookup(f *testing.F) {
	fx := newFixture(f)
	for _, p := range []*api.LookupProof{fx.alice, fx.bob, fx.carol, fx.aliceV1} {
		b, err := json.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p api.LookupProof
		if jsonStrict(data, &p) != nil {
			return
		}
		res, err := fx.pinned.VerifyLookup(p.UserID, &p, fx.clock.Now())
		if err != nil {
			if _, ok := err.(*client.Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		honestProof, err := fx.srv.LookupAt(p.UserID, res.Epoch)
		if err != nil {
			t.Fatalf("accepted an answer for %q at epoch %d the server cannot give: %v", p.UserID, res.Epoch, err)
		}
		honest, err := fx.pinned.VerifyLookupAt(p.UserID, res.Epoch, honestProof)
		if err != nil {
			t.Fatal(err)
		}
		if res.Present != honest.Present || res.EntryHash != honest.EntryHash || res.LeafRecordHash != honest.LeafRecordHash ||
			res.Index != honest.Index || res.Head.TreeRoot != honest.Head.TreeRoot {
			t.Fatalf("accepted a different answer for %q at epoch %d", p.UserID, res.Epoch)
		}
		a, b := []byte(nil), []byte(nil)
		if res.Profile != nil {
			a, _ = res.Profile.Marshal()
		}
		if honest.Profile != nil {
			b, _ = honest.Profile.Marshal()
		}
		if string(a) != string(b) {
			t.Fatalf("accepted another profile for %q", p.UserID)
		}
	})
}
