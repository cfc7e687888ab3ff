package format

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"strings"
)

// Registration limits.
const (
	// MaxIssuerLen is the longest OIDC issuer URL, in bytes.
	MaxIssuerLen = 256
	// MaxRegistrationSize is the longest encoded Registration (an OIDC
	// marker with the longest issuer): 1 + 2 + 256 = 259 bytes.
	MaxRegistrationSize = 1 + 2 + MaxIssuerLen
)

// RegistrationKind says how a registration (version 1 entry) was
// authorised.
type RegistrationKind uint8

const (
	// RegistrationRegistrar: a registrar key named in the realm config
	// signed RegistrationMessage(EntryHash(entry)). Verifiers check the
	// signature themselves.
	RegistrationRegistrar RegistrationKind = 1
	// RegistrationOIDC: the update function verified an OpenID Connect ID
	// token from Issuer whose verified email is the user id and whose nonce
	// claim is OIDCNonce(EntryHash(entry)). The log keeps only this
	// server-attested marker, never the token, which contains the email.
	RegistrationOIDC RegistrationKind = 2
)

// String returns "registrar", "oidc" or "kind(N)".
func (k RegistrationKind) String() string {
	switch k {
	case RegistrationRegistrar:
		return "registrar"
	case RegistrationOIDC:
		return "oidc"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Registration is the authorisation of a registration, carried in the log
// record of every version 1 entry.
//
// Rules (Validate): Kind is RegistrationRegistrar with Issuer empty, or
// RegistrationOIDC with Registrar zero and Issuer an http(s) URL of
// 1..256 printable ASCII bytes without query or fragment. Which registrar
// keys and issuers a realm accepts is the realm config's business.
type Registration struct {
	// Kind selects which of the fields below is used.
	Kind RegistrationKind
	// Registrar is the registrar's signature (Kind RegistrationRegistrar).
	Registrar Signature
	// Issuer is the OIDC issuer URL (Kind RegistrationOIDC).
	Issuer string
}

// Marshal validates r and returns its canonical encoding:
//
//	enum { registrar(1), oidc(2) } RegistrationKind;
//	struct {
//	    RegistrationKind kind;                                  /* uint8 */
//	    select (kind) {
//	        case registrar: Signature registrar;                /* 72 bytes */
//	        case oidc:      uint16 issuer_len;
//	                        opaque issuer[issuer_len];          /* 1..256 bytes */
//	    };
//	} Registration;                                             /* <= 259 bytes */
func (r *Registration) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, within(err, "registration")
	}
	return r.appendTo(make([]byte, 0, r.size())), nil
}

func (r *Registration) size() int {
	if r.Kind == RegistrationRegistrar {
		return 1 + signatureSize
	}
	return 1 + 2 + len(r.Issuer)
}

func (r *Registration) appendTo(b []byte) []byte {
	b = append(b, byte(r.Kind))
	if r.Kind == RegistrationRegistrar {
		return appendSignature(b, &r.Registrar)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Issuer)))
	return append(b, r.Issuer...)
}

// ParseRegistration parses a canonical encoded Registration.
func ParseRegistration(b []byte) (*Registration, error) {
	rd := reader{b}
	reg, err := parseRegistration(&rd)
	if err == nil && !rd.empty() {
		err = trailing("", len(rd.b))
	}
	if err != nil {
		return nil, within(err, "registration")
	}
	return reg, nil
}

// parseRegistration reads a Registration from r. It copies what it keeps.
func parseRegistration(r *reader) (*Registration, error) {
	reg := &Registration{}
	var kind uint8
	if !r.u8(&kind) {
		return nil, truncated("kind")
	}
	reg.Kind = RegistrationKind(kind)
	switch reg.Kind {
	case RegistrationRegistrar:
		if !r.signature(&reg.Registrar) {
			return nil, truncated("registrar")
		}
	case RegistrationOIDC:
		var n uint16
		var issuer []byte
		if !r.u16(&n) {
			return nil, truncated("issuer")
		}
		if n > MaxIssuerLen {
			return nil, newError(ErrTooLarge, "issuer", "%d bytes, more than %d", n, MaxIssuerLen)
		}
		if !r.bytes(&issuer, int(n)) {
			return nil, truncated("issuer")
		}
		reg.Issuer = string(issuer)
	default:
		return nil, newError(ErrInvalid, "kind", "unknown registration kind %d", kind)
	}
	if err := reg.Validate(); err != nil {
		return nil, err
	}
	return reg, nil
}

// Validate checks the rules of the Registration grammar.
func (r *Registration) Validate() error {
	switch r.Kind {
	case RegistrationRegistrar:
		if r.Issuer != "" {
			return newError(ErrInvalid, "issuer", "a registrar authorisation has no issuer")
		}
	case RegistrationOIDC:
		if r.Registrar != (Signature{}) {
			return newError(ErrInvalid, "registrar", "an OIDC marker has no registrar signature")
		}
		if err := checkIssuer(r.Issuer); err != nil {
			return within(err, "issuer")
		}
	default:
		return newError(ErrInvalid, "kind", "unknown registration kind %d", uint8(r.Kind))
	}
	return nil
}

// checkIssuer checks the shape of an OIDC issuer identifier: an http(s)
// URL of printable ASCII without query or fragment (OpenID Connect
// Discovery requires https; plain http is accepted for local test
// issuers, and realm configs decide which issuers count).
func checkIssuer(iss string) error {
	if len(iss) == 0 {
		return newError(ErrInvalid, "", "empty issuer")
	}
	if len(iss) > MaxIssuerLen {
		return newError(ErrTooLarge, "", "%d bytes, more than %d", len(iss), MaxIssuerLen)
	}
	for i := 0; i < len(iss); i++ {
		c := iss[i]
		if c < 0x21 || c > 0x7e {
			return newError(ErrInvalid, "", "byte 0x%02x at offset %d is not printable ASCII", c, i)
		}
		if c == '?' || c == '#' {
			return newError(ErrInvalid, "", "issuer has a query or fragment")
		}
	}
	rest, ok := strings.CutPrefix(iss, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(iss, "http://")
	}
	if !ok || rest == "" {
		return newError(ErrInvalid, "", "issuer %q is not an http(s) URL with a host", iss)
	}
	return nil
}

// VerifyRegistrar checks that r is a registrar authorisation of the entry
// with hash entryHash, signed by one of registrars (the realm's registrar
// keys). The error wraps ErrRegistrationNotAuthorized.
func (r *Registration) VerifyRegistrar(entryHash [32]byte, registrars []ed25519.PublicKey) error {
	if r.Kind != RegistrationRegistrar {
		return fmt.Errorf("format: registration: %w: kind is %v, not registrar", ErrRegistrationNotAuthorized, r.Kind)
	}
	named := false
	for _, k := range registrars {
		if len(k) != ed25519.PublicKeySize || KeyIDOf(k) != r.Registrar.KeyID {
			continue
		}
		named = true
		if ed25519.Verify(k, RegistrationMessage(entryHash), r.Registrar.Sig[:]) {
			return nil
		}
	}
	if named {
		return fmt.Errorf("format: registration.registrar: %w: signature by %s is invalid", ErrRegistrationNotAuthorized, r.Registrar.KeyID)
	}
	return fmt.Errorf("format: registration.registrar: %w: key %s is not a registrar of the realm", ErrRegistrationNotAuthorized, r.Registrar.KeyID)
}
