package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/conifer-kt/conifer/format"
)

// Policy expressions write update policies on the command line:
//
//	policy    = threshold "(" member *( "," member ) ")"
//	member    = policy / key
//	key       = base64 / "device" / "@" path
//	threshold = %x31-39 *DIGIT             ; 1..65535, no leading zeros
//
// with spaces allowed around every token. base64 is a 32-byte Ed25519
// public key (standard, padded, canonical), "device" this device's key and
// "@path" a public key file. For example
//
//	1(device, @recovery.pub)          this device, or the app's recovery key
//	2(device, 1(@laptop.pub, @phone.pub))
//
// The parsed policy is put in canonical order and validated with format's
// rules (a threshold no larger than its members, no key twice, at most 32
// keys, 4 levels). FormatPolicy writes the canonical expression, keys in
// base64 unless named.

// errPolicyExpr is wrapped by every policy expression error.
var errPolicyExpr = errors.New("bad policy expression")

// keyResolver turns "device" and "@path" members into keys.
type keyResolver func(member string) (ed25519.PublicKey, error)

// maxPolicyExpr caps an expression's length (32 keys of 44 characters and
// nesting fit easily).
const maxPolicyExpr = 8192

// ParsePolicy parses a policy expression.
func ParsePolicy(s string, resolve keyResolver) (*format.Policy, error) {
	if len(s) > maxPolicyExpr {
		return nil, fmt.Errorf("%w: longer than %d bytes", errPolicyExpr, maxPolicyExpr)
	}
	p := &policyParser{s: s, resolve: resolve}
	pol, err := p.policy(1)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, p.errorf("unexpected %q after the policy", p.s[p.i:])
	}
	pol.Normalize()
	if err := pol.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errPolicyExpr, err)
	}
	return pol, nil
}

type policyParser struct {
	s       string
	i       int
	resolve keyResolver
}

func (p *policyParser) errorf(f string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errPolicyExpr, p.i, fmt.Sprintf(f, args...))
}

func (p *policyParser) space() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *policyParser) policy(depth int) (*format.Policy, error) {
	if depth > format.MaxPolicyDepth {
		return nil, p.errorf("nested deeper than %d levels", format.MaxPolicyDepth)
	}
	p.space()
	start := p.i
	for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
		p.i++
	}
	digits := p.s[start:p.i]
	if digits == "" || digits[0] == '0' {
		return nil, p.errorf("want a threshold (1..65535)")
	}
	t, err := strconv.ParseUint(digits, 10, 16)
	if err != nil {
		return nil, p.errorf("threshold %s out of range", digits)
	}
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != '(' {
		return nil, p.errorf("want '(' after the threshold")
	}
	p.i++
	pol := &format.Policy{Threshold: uint16(t)}
	for {
		p.space()
		if p.i < len(p.s) && '1' <= p.s[p.i] && p.s[p.i] <= '9' && p.isNested() {
			sub, err := p.policy(depth + 1)
			if err != nil {
				return nil, err
			}
			pol.Subpolicies = append(pol.Subpolicies, sub)
		} else {
			k, err := p.key()
			if err != nil {
				return nil, err
			}
			pol.Keys = append(pol.Keys, k)
		}
		p.space()
		if p.i >= len(p.s) {
			return nil, p.errorf("unclosed '('")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ')':
			p.i++
			return pol, nil
		default:
			return nil, p.errorf("want ',' or ')'")
		}
	}
}

// isNested reports whether the digits at p.i start a nested policy (digits,
// spaces, '(') rather than a base64 key that starts with a digit.
func (p *policyParser) isNested() bool {
	j := p.i
	for j < len(p.s) && '0' <= p.s[j] && p.s[j] <= '9' {
		j++
	}
	for j < len(p.s) && p.s[j] == ' ' {
		j++
	}
	return j < len(p.s) && p.s[j] == '('
}

func (p *policyParser) key() (ed25519.PublicKey, error) {
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune(",() ", rune(p.s[p.i])) {
		p.i++
	}
	tok := p.s[start:p.i]
	switch {
	case tok == "":
		return nil, p.errorf("want a key")
	case tok == "device" || tok[0] == '@':
		if p.resolve == nil {
			return nil, p.errorf("%q cannot be used here", tok)
		}
		k, err := p.resolve(tok)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errPolicyExpr, tok, err)
		}
		return k, nil
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(tok)
	if err != nil || len(raw) != ed25519.PublicKeySize || base64.StdEncoding.EncodeToString(raw) != tok {
		return nil, p.errorf("%q is not a 32-byte public key in canonical base64", tok)
	}
	return ed25519.PublicKey(raw), nil
}

// FormatPolicy writes p as a canonical policy expression. Keys with a name
// in names are written as that name (e.g. "device"); the others in base64.
func FormatPolicy(p *format.Policy, names map[format.KeyID]string) string {
	var b strings.Builder
	formatPolicy(&b, p, names)
	return b.String()
}

func formatPolicy(b *strings.Builder, p *format.Policy, names map[format.KeyID]string) {
	fmt.Fprintf(b, "%d(", p.Threshold)
	for i, k := range p.Keys {
		if i > 0 {
			b.WriteString(",")
		}
		if n, ok := names[format.KeyIDOf(k)]; ok {
			b.WriteString(n)
		} else {
			b.WriteString(base64.StdEncoding.EncodeToString(k))
		}
	}
	for i, s := range p.Subpolicies {
		if i > 0 || len(p.Keys) > 0 {
			b.WriteString(",")
		}
		formatPolicy(b, s, names)
	}
	b.WriteString(")")
}
