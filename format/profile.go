package format

import (
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
)

// Profile limits.
const (
	// OpeningSize is the length of the random opening of a profile
	// commitment.
	OpeningSize = 16
	// MaxProfileApps is the largest number of application keys in a profile.
	MaxProfileApps = 64
	// MaxAppIDLen is the longest application id, in bytes.
	MaxAppIDLen = 64
	// MaxAppKeyLen is the longest application key, in bytes.
	MaxAppKeyLen = 8192
	// MaxProfileSize caps an encoded profile (16 KiB). It binds before
	// the per-field caps do: 64 keys of 8192 bytes do not fit.
	MaxProfileSize = 16384
)

// Profile is a user's public keys by application id. The keyserver stores it
// beside its opening; the tree only ever holds CommitProfile(opening, encoded
// profile). The zero Profile (no keys) is valid.
type Profile struct {
	// Keys are sorted by App, strictly increasing bytewise. Use Set and
	// Remove to keep that order.
	Keys []AppKey
}

// AppKey is one application's public key. Conifer does not interpret Key: it
// is whatever the application ("pgp", "signal", "ssh", ...) publishes.
type AppKey struct {
	// App is 1..64 bytes of [a-z0-9._-].
	App string
	// Key is 1..8192 bytes.
	Key []byte
}

// Marshal validates p and returns its canonical encoding:
//
//	struct {
//	    uint8  app_count;                /* 0..64 */
//	    AppKey keys[app_count];          /* app strictly increasing, bytewise */
//	} Profile;                           /* total <= 16384 bytes */
//
//	struct {
//	    uint8  app_len;  opaque app[app_len];   /* 1..64 bytes of [a-z0-9._-] */
//	    uint16 key_len;  opaque key[key_len];   /* 1..8192 bytes */
//	} AppKey;
func (p *Profile) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, within(err, "profile")
	}
	b := make([]byte, 0, p.size())
	b = append(b, byte(len(p.Keys)))
	for _, k := range p.Keys {
		b = append(b, byte(len(k.App)))
		b = append(b, k.App...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(k.Key)))
		b = append(b, k.Key...)
	}
	return b, nil
}

// size returns the length of p's encoding.
func (p *Profile) size() int {
	n := 1
	for _, k := range p.Keys {
		n += 1 + len(k.App) + 2 + len(k.Key)
	}
	return n
}

// ParseProfile parses a canonical encoded profile. The result does not
// alias b.
func ParseProfile(b []byte) (*Profile, error) {
	p, err := parseProfile(b)
	if err != nil {
		return nil, within(err, "profile")
	}
	return p, nil
}

func parseProfile(b []byte) (*Profile, error) {
	if len(b) > MaxProfileSize {
		return nil, newError(ErrTooLarge, "", "%d bytes, more than %d", len(b), MaxProfileSize)
	}
	r := reader{clone(b)}
	var n uint8
	if !r.u8(&n) {
		return nil, truncated("app_count")
	}
	if n > MaxProfileApps {
		return nil, newError(ErrTooLarge, "app_count", "%d apps, more than %d", n, MaxProfileApps)
	}
	p := &Profile{}
	if n > 0 {
		p.Keys = make([]AppKey, n)
	}
	for i := range p.Keys {
		var appLen uint8
		var app []byte
		if !r.u8(&appLen) || !r.bytes(&app, int(appLen)) {
			return nil, truncated(keysField(i, "app"))
		}
		var keyLen uint16
		var key []byte
		if !r.u16(&keyLen) || !r.bytes(&key, int(keyLen)) {
			return nil, truncated(keysField(i, "key"))
		}
		p.Keys[i] = AppKey{App: string(app), Key: key}
	}
	if !r.empty() {
		return nil, trailing("", len(r.b))
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func keysField(i int, sub string) string {
	return "keys[" + strconv.Itoa(i) + "]." + sub
}

// Validate checks the rules of the Profile grammar: app ids, key lengths,
// strictly increasing app order and the total size. Field names in the
// error are relative to the profile.
func (p *Profile) Validate() error {
	if len(p.Keys) > MaxProfileApps {
		return newError(ErrTooLarge, "app_count", "%d apps, more than %d", len(p.Keys), MaxProfileApps)
	}
	for i, k := range p.Keys {
		if err := checkAppID(k.App); err != nil {
			return within(err, keysField(i, "app"))
		}
		if len(k.Key) == 0 {
			return newError(ErrInvalid, keysField(i, "key"), "empty key")
		}
		if len(k.Key) > MaxAppKeyLen {
			return newError(ErrTooLarge, keysField(i, "key"), "%d bytes, more than %d", len(k.Key), MaxAppKeyLen)
		}
		if i > 0 && p.Keys[i-1].App >= k.App {
			return newError(ErrNotCanonical, keysField(i, "app"), "apps not in strictly increasing order (%q after %q)", k.App, p.Keys[i-1].App)
		}
	}
	if n := p.size(); n > MaxProfileSize {
		return newError(ErrTooLarge, "", "encoding is %d bytes, more than %d", n, MaxProfileSize)
	}
	return nil
}

// checkAppID checks that app is 1..64 bytes of [a-z0-9._-].
func checkAppID(app string) error {
	if len(app) == 0 {
		return newError(ErrInvalid, "", "empty app id")
	}
	if len(app) > MaxAppIDLen {
		return newError(ErrTooLarge, "", "app id is %d bytes, more than %d", len(app), MaxAppIDLen)
	}
	for i := 0; i < len(app); i++ {
		c := app[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return newError(ErrInvalid, "", "byte 0x%02x at offset %d is not in [a-z0-9._-]", c, i)
		}
	}
	return nil
}

func (p *Profile) find(app string) (int, bool) {
	return slices.BinarySearchFunc(p.Keys, app, func(k AppKey, app string) int {
		return strings.Compare(k.App, app)
	})
}

// Get returns the key of app, and whether p has one.
func (p *Profile) Get(app string) ([]byte, bool) {
	i, ok := p.find(app)
	if !ok {
		return nil, false
	}
	return p.Keys[i].Key, true
}

// Set adds or replaces the key of app (a copy of key), keeping Keys in
// canonical order. It fails, leaving p unchanged, if app or key is invalid or
// the profile would exceed MaxProfileApps or MaxProfileSize. p must be
// sorted (as Validate requires) for Set to keep it sorted.
func (p *Profile) Set(app string, key []byte) error {
	if err := checkAppID(app); err != nil {
		return within(err, "profile.app")
	}
	if len(key) == 0 {
		return newError(ErrInvalid, "profile.key", "empty key")
	}
	if len(key) > MaxAppKeyLen {
		return newError(ErrTooLarge, "profile.key", "%d bytes, more than %d", len(key), MaxAppKeyLen)
	}
	i, found := p.find(app)
	size := p.size() + len(key)
	if found {
		size -= len(p.Keys[i].Key)
	} else {
		if len(p.Keys) >= MaxProfileApps {
			return newError(ErrTooLarge, "profile.app_count", "already %d apps, the maximum", len(p.Keys))
		}
		size += 1 + len(app) + 2
	}
	if size > MaxProfileSize {
		return newError(ErrTooLarge, "profile", "encoding would be %d bytes, more than %d", size, MaxProfileSize)
	}
	k := AppKey{App: app, Key: clone(key)}
	if found {
		p.Keys[i] = k
	} else {
		p.Keys = slices.Insert(p.Keys, i, k)
	}
	return nil
}

// Remove deletes the key of app and reports whether there was one.
func (p *Profile) Remove(app string) bool {
	i, found := p.find(app)
	if !found {
		return false
	}
	p.Keys = slices.Delete(p.Keys, i, i+1)
	if len(p.Keys) == 0 {
		p.Keys = nil
	}
	return true
}
