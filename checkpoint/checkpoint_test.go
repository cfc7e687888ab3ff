package checkpoint

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

const validHash = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="

func TestParseValid(t *testing.T) {
	for _, text := range []string{
		"example.com/behind-the-sofa\n20852163\n" + validHash + "\n",
		"o\n0\n" + validHash + "\n",
		"o\n18446744073709551615\n" + validHash + "\n",
		"go.sum database tree\n1\n" + validHash + "\n",
		"o\n1\n" + validHash + "\next one\n— ext two\n",
		"ünïcødé\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
		strings.Repeat("o", MaxOriginLen) + "\n1\n" + validHash + "\n" + strings.Repeat("e\n", MaxExtensions),
	} {
		c, err := Parse([]byte(text))
		if err != nil {
			t.Errorf("Parse(%q): %v", text, err)
			continue
		}
		out, err := c.Marshal()
		if err != nil {
			t.Errorf("Marshal(Parse(%q)): %v", text, err)
			continue
		}
		if string(out) != text {
			t.Errorf("Marshal(Parse(%q)) = %q", text, out)
		}
	}
	c, err := Parse([]byte("o\n18446744073709551615\n" + validHash + "\nx\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Origin != "o" || c.Size != math.MaxUint64 || c.Hash[0] != 0x0a || c.Hash[31] != 0x62 ||
		!reflect.DeepEqual(c.Extensions, []string{"x"}) {
		t.Errorf("Parse = %+v", c)
	}
	c, _ = Parse([]byte("o\n1\n" + validHash + "\n"))
	if c.Extensions != nil {
		t.Errorf("Extensions = %#v, want nil", c.Extensions)
	}
}

func TestParseRejects(t *testing.T) {
	const h = validHash
	for _, tc := range []struct {
		field, text string
	}{
		{"text", ""},
		{"text", "o\n1\n" + h},
		{"text", "o\n1\n" + h + "\n\n"[:1] + "x"},
		{"text", "o\n1\n"},
		{"text", "o\n"},
		{"text", strings.Repeat("e", MaxTextLen) + "\n1\n" + h + "\n"},
		{"origin", "\n1\n" + h + "\n"},
		{"origin", "o\to\n1\n" + h + "\n"},
		{"origin", "o\r\n1\n" + h + "\n"},
		{"origin", "o\x00\n1\n" + h + "\n"},
		{"origin", "\xff\n1\n" + h + "\n"},
		{"origin", "\xc3\n1\n" + h + "\n"},
		{"origin", strings.Repeat("o", MaxOriginLen+1) + "\n1\n" + h + "\n"},
		{"size", "o\n\n" + h + "\n"},
		{"size", "o\n01\n" + h + "\n"},
		{"size", "o\n00\n" + h + "\n"},
		{"size", "o\n+1\n" + h + "\n"},
		{"size", "o\n-1\n" + h + "\n"},
		{"size", "o\n 1\n" + h + "\n"},
		{"size", "o\n1 \n" + h + "\n"},
		{"size", "o\n0x10\n" + h + "\n"},
		{"size", "o\n1_000\n" + h + "\n"},
		{"size", "o\n１\n" + h + "\n"},
		{"size", "o\n18446744073709551616\n" + h + "\n"},
		{"size", "o\n99999999999999999999999\n" + h + "\n"},
		{"hash", "o\n1\n\n"},
		{"hash", "o\n1\n" + h[:43] + "\n"},
		{"hash", "o\n1\n" + h[:43] + "==\n"},
		{"hash", "o\n1\n" + h[:43] + "\n\n"},
		{"hash", "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n"}, // non-zero padding bits
		{"hash", "o\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n"}, // URL alphabet
		{"hash", "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n"},  // unpadded
		{"hash", "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=A\n"},
		{"hash", "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\rq2I=\n"},
		{"hash", "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"}, // 48 bytes
		{"hash", "o\n1\n " + h[1:] + "\n"},
		{"extension", "o\n1\n" + h + "\n\n"},
		{"extension", "o\n1\n" + h + "\nx\n\n"},
		{"extension", "o\n1\n" + h + "\nx\ty\n"},
		{"extension", "o\n1\n" + h + "\n" + strings.Repeat("e\n", MaxExtensions+1)},
	} {
		_, err := Parse([]byte(tc.text))
		var pe *ParseError
		if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want a *ParseError", tc.text, err)
			continue
		}
		if pe.Field != tc.field {
			t.Errorf("Parse(%q) = %v, want field %q", tc.text, err, tc.field)
		}
	}
}

func TestMarshalRejects(t *testing.T) {
	for _, c := range []Checkpoint{
		{},
		{Origin: "a\nb"},
		{Origin: "a\x7f\x01"},
		{Origin: "\xff"},
		{Origin: strings.Repeat("o", MaxOriginLen+1)},
		{Origin: "o", Extensions: []string{""}},
		{Origin: "o", Extensions: []string{"a\nb"}},
		{Origin: "o", Extensions: make([]string, MaxExtensions+1)},
		{Origin: "o", Extensions: []string{strings.Repeat("e", MaxTextLen)}},
	} {
		if b, err := c.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("Marshal(%+v) = %q, %v; want ErrMalformed", c, b, err)
		}
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte("example.com/behind-the-sofa\n20852163\n" + validHash + "\n"))
	f.Add([]byte("o\n0\n" + validHash + "\next\n"))
	f.Add([]byte("o\n01\n" + validHash + "\n"))
	f.Add([]byte("o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n"))
	f.Add([]byte("go.sum database tree\n35225469\nvt5T6GaLCXvyHFl9VUvvItR43XZxfLgftEcTyO3eJCQ=\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal(Parse(%q)): %v", text, err)
		}
		if string(out) != string(text) {
			t.Fatalf("Marshal(Parse(%q)) = %q", text, out)
		}
	})
}

func FuzzMarshalCheckpoint(f *testing.F) {
	f.Add("example.com/realm", uint64(3), []byte("0123456789abcdef0123456789abcdef"), "", false)
	f.Add("o", uint64(math.MaxUint64), []byte{}, "ext", true)
	f.Add("a\nb", uint64(0), []byte{1}, "", true)
	f.Fuzz(func(t *testing.T, origin string, size uint64, hash []byte, ext string, withExt bool) {
		c := Checkpoint{Origin: origin, Size: size}
		copy(c.Hash[:], hash)
		if withExt {
			c.Extensions = strings.Split(ext, "|")
		}
		text, err := c.Marshal()
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Marshal error %v does not wrap ErrMalformed", err)
			}
			return
		}
		got, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(Marshal(%+v)): %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("Parse(Marshal(%+v)) = %+v", c, got)
		}
	})
}
