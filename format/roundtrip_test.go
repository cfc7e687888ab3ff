package format

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestRoundTrip: for every fixture value, parse(encode(x)) == x and
// encode(parse(b)) == b; a trailing byte and every truncation are rejected
// with errors naming the format; parsed values do not alias the input.
func TestRoundTrip(t *testing.T) {
	f := newFixtures(t)
	for _, nv := range f.values(t) {
		c := codecs[nv.format]
		enc := mustMarshal(t, nv.value.(interface{ Marshal() ([]byte, error) }))
		got := c.checkCanonical(t, enc)
		if got == nil {
			_, err := c.parse(enc)
			t.Fatalf("%s/%s does not parse: %v", nv.format, nv.name, err)
		}
		if !reflect.DeepEqual(got, nv.value) {
			t.Errorf("%s/%s: parse(encode(x)) != x\n got %+v\nwant %+v", nv.format, nv.name, got, nv.value)
		}

		_, err := c.parse(append(bytes.Clone(enc), 0))
		if !errors.Is(err, ErrTrailingData) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s/%s + 1 byte: %v", nv.format, nv.name, err)
		} else if fe := (*Error)(nil); errors.As(err, &fe) && fe.Field != nv.format {
			t.Errorf("%s/%s + 1 byte: field %q", nv.format, nv.name, fe.Field)
		}
		for n := 0; n < len(enc); n++ {
			_, err := c.parse(enc[:n])
			if err == nil {
				t.Fatalf("%s/%s truncated to %d bytes parses", nv.format, nv.name, n)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s/%s truncated to %d bytes: %v is not ErrMalformed", nv.format, nv.name, n, err)
			}
		}

		// Scribbling over the input after parsing leaves the value alone.
		in := bytes.Clone(enc)
		v, err := c.parse(in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range in {
			in[i] ^= 0x55
		}
		if again, _ := c.encode(v); !bytes.Equal(again, enc) {
			t.Errorf("%s/%s: parsed value aliases the input", nv.format, nv.name)
		}
	}
}

// TestModelEncoders compares Marshal with the independent model encoders
// on random valid entries, signed entries and log records.
func TestModelEncoders(t *testing.T) {
	f := newFixtures(t)
	for _, nv := range f.values(t) {
		enc := mustMarshal(t, nv.value.(interface{ Marshal() ([]byte, error) }))
		if !bytes.Equal(model(t, nv.value).bytes(), enc) {
			t.Errorf("%s/%s: model and Marshal differ", nv.format, nv.name)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	realmChars := "abcXYZ019._/:-"
	for i := 0; i < 200; i++ {
		pool := rng.Perm(MaxPolicyKeys)
		p := randomPolicy(rng, &pool, 1)
		p.Normalize()
		if p.Validate() != nil {
			continue
		}
		e := &Entry{Version: 1 + rng.Uint64N(1<<40), Policy: *p, Tombstone: rng.IntN(4) == 0}
		for n := 1 + rng.IntN(MaxRealmLen); n > 0; n-- {
			e.Realm += string(realmChars[rng.IntN(len(realmChars))])
		}
		fillRandom(rng, e.Index[:])
		if e.Version > 1 {
			fillRandom(rng, e.Prev[:])
		}
		if !e.Tombstone {
			fillRandom(rng, e.Commitment[:])
		}
		eb := mustMarshal(t, e)
		s := &SignedEntry{Entry: eb}
		for n := 1 + rng.IntN(5); n > 0; n-- {
			var sig Signature
			fillRandom(rng, sig.KeyID[:])
			fillRandom(rng, sig.Sig[:])
			s.Signatures = append(s.Signatures, sig)
		}
		SortSignatures(s.Signatures)
		rec := &LogRecord{SignedEntry: *s}
		if e.Version == 1 {
			rec.Registration = &Registration{Kind: RegistrationOIDC, Issuer: "https://issuer.example/" + e.Realm[:rng.IntN(len(e.Realm))]}
		}
		for _, x := range []struct {
			format string
			v      any
		}{{"entry", e}, {"signed_entry", s}, {"log_record", rec}} {
			enc := mustMarshal(t, x.v.(interface{ Marshal() ([]byte, error) }))
			if !bytes.Equal(model(t, x.v).bytes(), enc) {
				t.Fatalf("%s: model and Marshal differ for %x", x.format, enc)
			}
			if codecs[x.format].checkCanonical(t, enc) == nil {
				t.Fatalf("%s: %x does not parse", x.format, enc)
			}
		}
	}
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

func TestErrorShape(t *testing.T) {
	_, err := ParseEntry(nil)
	var fe *Error
	if !errors.As(err, &fe) || fe.Field != "entry.realm" || !errors.Is(err, ErrTruncated) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseEntry(nil) = %v", err)
	}
	if err.Error() != "format: entry.realm: input ends inside the field" {
		t.Fatalf("message %q", err)
	}
	for _, k := range []error{ErrTruncated, ErrTrailingData, ErrTooLarge, ErrNotCanonical, ErrInvalid} {
		if !errors.Is(k, ErrMalformed) {
			t.Errorf("%v does not wrap ErrMalformed", k)
		}
	}
	for _, k := range []error{ErrInvalidTransition, ErrQuorumNotMet, ErrRegistrationNotAuthorized} {
		if errors.Is(k, ErrMalformed) {
			t.Errorf("%v wraps ErrMalformed", k)
		}
	}
	if within(errors.New("x"), "p").Error() != "x" {
		t.Error("within changed a foreign error")
	}
}
