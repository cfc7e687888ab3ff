package client_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/client"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/vrf"
)

// benchRealm builds a realm of q verifiers (quorum q) holding users
// registered in one epoch, and returns alice's honest answer.
func benchRealm(b *testing.B, q, users int) (*env, *api.LookupProof) {
	b.Helper()
	e := newEnv(b, envOpts{verifiers: q, quorum: q, seed: 99})
	pol, _ := client.KeyPolicy(1, pub(e.device))
	for i := range users {
		user := fmt.Sprintf("user%d@example.com", i)
		if i == 0 {
			user = "alice@example.com"
		}
		idx, _ := e.srv.Index(user)
		prof := &format.Profile{}
		prof.Set("pgp", []byte(user))
		pb, _ := prof.Marshal()
		var opening [16]byte
		binary.BigEndian.PutUint64(opening[:], uint64(i))
		en := &format.Entry{Realm: e.cfg.Realm, Index: idx, Version: 1, Policy: *pol, Commitment: format.CommitProfile(opening, pb)}
		eb, _ := en.Marshal()
		h := format.EntryHash(eb)
		se, _ := (&format.SignedEntry{Entry: eb, Signatures: []format.Signature{format.SignEntry(e.device, h)}}).Marshal()
		rs := format.SignRegistration(e.keys.Registrar, h)
		if _, err := e.srv.Submit(&api.UpdateRequest{UserID: user, SignedEntry: se, Profile: pb, Opening: opening[:],
			RegistrarSignature: append(rs.KeyID[:], rs.Sig[:]...)}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.srv.CutEpoch(); err != nil {
		b.Fatal(err)
	}
	p, err := e.srv.Lookup("alice@example.com", q)
	if err != nil {
		b.Fatal(err)
	}
	return e, p
}

// BenchmarkVerifyLookup compares VerifyLookup with its floor measured in
// the same run: one VRF verification plus the Ed25519 verifications of the
// keyserver's signature and the q co-signatures of the same answer (the
// checkpoint carries exactly q). Target: VerifyLookup ≤ 1.2× floor.
func BenchmarkVerifyLookup(b *testing.B) {
	for _, q := range []int{1, 3} {
		e, proof := benchRealm(b, q, 1000)
		pinned, err := client.NewPinned(e.cfg, q)
		if err != nil {
			b.Fatal(err)
		}
		now := e.clock.Now()
		if _, err := pinned.VerifyLookup("alice@example.com", proof, now); err != nil {
			b.Fatal(err)
		}
		floor := newFloor(b, e, proof)
		b.Run(fmt.Sprintf("floor/q=%d", q), func(b *testing.B) {
			for b.Loop() {
				floor()
			}
		})
		b.Run(fmt.Sprintf("Pinned.VerifyLookup/q=%d", q), func(b *testing.B) {
			for b.Loop() {
				if _, err := pinned.VerifyLookup("alice@example.com", proof, now); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("VerifyLookup/q=%d", q), func(b *testing.B) {
			for b.Loop() {
				if _, err := client.VerifyLookup(e.cfg, "alice@example.com", proof, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// newFloor returns a function doing exactly the public-key work of
// verifying proof: the VRF and every signature in its checkpoint.
func newFloor(b *testing.B, e *env, proof *api.LookupProof) func() {
	vk, err := vrf.ParsePublicKey(e.cfg.VRFPublicKey)
	if err != nil {
		b.Fatal(err)
	}
	alpha, _ := vrf.Input(e.cfg.Realm, "alice@example.com")
	_, _, logPub, _ := checkpoint.ParseVerifierKey(e.cfg.LogKey)
	n := string(proof.Checkpoint)
	i := strings.Index(n, "\n\n")
	text := n[:i+1]
	type sig struct {
		pub ed25519.PublicKey
		msg []byte
		sig []byte
	}
	var sigs []sig
	for j, line := range strings.Split(strings.TrimSuffix(n[i+2:], "\n"), "\n") {
		raw, err := base64.StdEncoding.DecodeString(line[strings.LastIndexByte(line, ' ')+1:])
		if err != nil {
			b.Fatal(err)
		}
		if j == 0 {
			sigs = append(sigs, sig{logPub, []byte(text), raw[4:]})
			continue
		}
		_, _, cpub, _ := checkpoint.ParseVerifierKey(e.cfg.Verifiers[j-1])
		ts := binary.BigEndian.Uint64(raw[4:12])
		sigs = append(sigs, sig{cpub, checkpoint.CosignedMessage(ts, []byte(text)), raw[12:]})
	}
	for _, s := range sigs {
		if !ed25519.Verify(s.pub, s.msg, s.sig) {
			b.Fatal("floor: signature does not verify")
		}
	}
	return func() {
		if _, err := vk.Verify(alpha, proof.VRFProof); err != nil {
			b.Fatal(err)
		}
		for _, s := range sigs {
			if !ed25519.Verify(s.pub, s.msg, s.sig) {
				b.Fatal("bad signature")
			}
		}
	}
}
