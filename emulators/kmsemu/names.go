package kmsemu

import (
	"fmt"
	"strconv"
	"strings"
)

// Resource names, as the real service spells them:
//
//	location      = "projects/" project "/locations/" location
//	keyRing       = location "/keyRings/" id
//	cryptoKey     = keyRing "/cryptoKeys/" id
//	keyVersion    = cryptoKey "/cryptoKeyVersions/" version
//	id            = 1*63( ALPHA / DIGIT / "_" / "-" )      ; the API's [a-zA-Z0-9_-]{1,63}
//	project       = 1*63( ALPHA / DIGIT / "_" / "-" / "." / ":" )
//	location      = id
//	version       = %x31-39 *9DIGIT                           ; 1 … 2147483647, no leading zero
//
// Parsing is strict: no empty segment, no trailing slash, no extra segment.
// Only the shape of project and location is checked; the real service also
// checks that the project exists and that the location is a Cloud KMS
// region.

// maxID is the longest key ring, crypto key, or location id.
const maxID = 63

// maxVersion is the largest version number the emulator hands out.
const maxVersion = 1<<31 - 1

type locationName struct {
	project, location string
}

type keyRingName struct {
	locationName
	keyRing string
}

type cryptoKeyName struct {
	keyRingName
	cryptoKey string
}

type versionName struct {
	cryptoKeyName
	version int
}

func (n locationName) String() string {
	return "projects/" + n.project + "/locations/" + n.location
}

func (n keyRingName) String() string { return n.locationName.String() + "/keyRings/" + n.keyRing }

func (n cryptoKeyName) String() string {
	return n.keyRingName.String() + "/cryptoKeys/" + n.cryptoKey
}

func (n versionName) String() string {
	return n.cryptoKeyName.String() + "/cryptoKeyVersions/" + strconv.Itoa(n.version)
}

// nameError describes a malformed resource name; handlers map it to
// InvalidArgument.
type nameError struct {
	kind, name, why string
}

func (e *nameError) Error() string {
	return fmt.Sprintf("malformed %s name %q: %s", e.kind, e.name, e.why)
}

// splitName checks that name consists of len(labels) pairs "label/value"
// and returns the values.
func splitName(kind, name string, labels ...string) ([]string, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 2*len(labels) {
		return nil, &nameError{kind, name, "want " + strings.Join(labels, "/*/") + "/*"}
	}
	values := make([]string, len(labels))
	for i, label := range labels {
		if parts[2*i] != label {
			return nil, &nameError{kind, name, fmt.Sprintf("segment %d is %q, want %q", 2*i+1, parts[2*i], label)}
		}
		values[i] = parts[2*i+1]
	}
	return values, nil
}

// validID reports whether s matches [a-zA-Z0-9_-]{1,63}; extra lists more
// allowed bytes.
func validID(s, extra string) bool {
	if len(s) == 0 || len(s) > maxID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		case strings.IndexByte(extra, c) >= 0:
		default:
			return false
		}
	}
	return true
}

func checkLocation(kind, name string, v []string) (locationName, error) {
	if !validID(v[0], ".:") {
		return locationName{}, &nameError{kind, name, fmt.Sprintf("project %q is not 1-63 of [a-zA-Z0-9_.:-]", v[0])}
	}
	if !validID(v[1], "") {
		return locationName{}, &nameError{kind, name, fmt.Sprintf("location %q is not 1-63 of [a-zA-Z0-9_-]", v[1])}
	}
	return locationName{project: v[0], location: v[1]}, nil
}

func parseLocationName(name string) (locationName, error) {
	v, err := splitName("location", name, "projects", "locations")
	if err != nil {
		return locationName{}, err
	}
	return checkLocation("location", name, v)
}

func parseKeyRingName(name string) (keyRingName, error) {
	v, err := splitName("key ring", name, "projects", "locations", "keyRings")
	if err != nil {
		return keyRingName{}, err
	}
	loc, err := checkLocation("key ring", name, v)
	if err != nil {
		return keyRingName{}, err
	}
	if !validID(v[2], "") {
		return keyRingName{}, &nameError{"key ring", name, fmt.Sprintf("key ring id %q is not 1-63 of [a-zA-Z0-9_-]", v[2])}
	}
	return keyRingName{loc, v[2]}, nil
}

func parseCryptoKeyName(name string) (cryptoKeyName, error) {
	v, err := splitName("crypto key", name, "projects", "locations", "keyRings", "cryptoKeys")
	if err != nil {
		return cryptoKeyName{}, err
	}
	loc, err := checkLocation("crypto key", name, v)
	if err != nil {
		return cryptoKeyName{}, err
	}
	if !validID(v[2], "") || !validID(v[3], "") {
		return cryptoKeyName{}, &nameError{"crypto key", name, "key ring and crypto key ids must be 1-63 of [a-zA-Z0-9_-]"}
	}
	return cryptoKeyName{keyRingName{loc, v[2]}, v[3]}, nil
}

func parseVersionName(name string) (versionName, error) {
	v, err := splitName("crypto key version", name, "projects", "locations", "keyRings", "cryptoKeys", "cryptoKeyVersions")
	if err != nil {
		return versionName{}, err
	}
	loc, err := checkLocation("crypto key version", name, v)
	if err != nil {
		return versionName{}, err
	}
	if !validID(v[2], "") || !validID(v[3], "") {
		return versionName{}, &nameError{"crypto key version", name, "key ring and crypto key ids must be 1-63 of [a-zA-Z0-9_-]"}
	}
	n, ok := parseVersionID(v[4])
	if !ok {
		return versionName{}, &nameError{"crypto key version", name, fmt.Sprintf("version %q is not a decimal number from 1 to %d without leading zeros", v[4], maxVersion)}
	}
	return versionName{cryptoKeyName{keyRingName{loc, v[2]}, v[3]}, n}, nil
}

// parseVersionID parses a canonical decimal version number.
func parseVersionID(s string) (int, bool) {
	if len(s) == 0 || len(s) > 10 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxVersion {
		return 0, false
	}
	return int(n), true
}
