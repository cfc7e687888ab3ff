package kmsemu

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// defaultDestroyDelay is destroy_scheduled_duration when unset (the
	// API reference: 30 days).
	defaultDestroyDelay = 30 * 24 * time.Hour
	// minDestroyDelay and maxDestroyDelay bound destroy_scheduled_duration
	// (the real service: 24 hours to 120 days).
	minDestroyDelay = 24 * time.Hour
	maxDestroyDelay = 120 * 24 * time.Hour

	// maxPageSize caps page_size; it is also the default.
	maxPageSize = 1000

	// Label limits of Google Cloud resources.
	maxLabels      = 64
	maxLabelLength = 63
)

func errorf(code codes.Code, format string, args ...any) error {
	return status.Errorf(code, format, args...)
}

func badName(err error) error { return status.Error(codes.InvalidArgument, err.Error()) }

// mutate runs fn under the write lock with the clock read once, after due
// destructions have happened, and persists the result. If persisting fails
// (or the file would outgrow maxStateFile) the state is rolled back and the
// call fails, so memory never runs ahead of the file.
func (s *service) mutate(fn func(now time.Time) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := micros(s.now())
	s.st.sweep(now)
	var before []byte
	if s.stateFile != "" {
		before = encodeState(s.st)
	}
	if err := fn(now); err != nil {
		return err
	}
	if s.stateFile == "" {
		return nil
	}
	after := encodeState(s.st)
	var err error
	if len(after) > maxStateFile {
		err = errorf(codes.ResourceExhausted, "kmsemu: the state file would exceed %d bytes", maxStateFile)
	} else if werr := writeFileAtomic(s.stateFile, after); werr != nil {
		err = errorf(codes.Internal, "couldn't persist the change: %v", werr)
	}
	if err != nil {
		st, derr := decodeState(before)
		if derr != nil {
			panic("kmsemu: couldn't decode a state it encoded: " + derr.Error())
		}
		s.st = st
	}
	return err
}

// read runs fn under the read lock with the clock read once.
func (s *service) read(fn func(now time.Time) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(micros(s.now()))
}

func (st *state) keyRing(n keyRingName) (*keyRing, error) {
	r, ok := st.rings[n.String()]
	if !ok {
		return nil, errorf(codes.NotFound, "KeyRing %s not found", n)
	}
	return r, nil
}

func (st *state) cryptoKey(n cryptoKeyName) (*cryptoKey, error) {
	r, ok := st.rings[n.keyRingName.String()]
	if !ok {
		return nil, errorf(codes.NotFound, "CryptoKey %s not found", n)
	}
	k, ok := r.keys[n.cryptoKey]
	if !ok {
		return nil, errorf(codes.NotFound, "CryptoKey %s not found", n)
	}
	return k, nil
}

func (st *state) keyVersion(n versionName) (*cryptoKey, *keyVersion, error) {
	k, err := st.cryptoKey(n.cryptoKeyName)
	if err != nil {
		return nil, nil, errorf(codes.NotFound, "CryptoKeyVersion %s not found", n)
	}
	v := k.version(n.version)
	if v == nil {
		return nil, nil, errorf(codes.NotFound, "CryptoKeyVersion %s not found", n)
	}
	return k, v, nil
}

// page returns the items after pageToken (the key of the last item of the
// previous page), at most pageSize of them, and the next token. items must
// be sorted by key.
func page[T any](items []T, key func(T) string, pageSize int32, pageToken string) ([]T, string, error) {
	switch {
	case pageSize < 0:
		return nil, "", errorf(codes.InvalidArgument, "page_size is %d, want >= 0", pageSize)
	case pageSize == 0 || pageSize > maxPageSize:
		pageSize = maxPageSize
	}
	start := 0
	if pageToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || len(after) == 0 {
			return nil, "", errorf(codes.InvalidArgument, "invalid page_token %q", pageToken)
		}
		start, _ = slices.BinarySearchFunc(items, string(after), func(it T, k string) int { return strings.Compare(key(it), k) })
		if start < len(items) && key(items[start]) == string(after) {
			start++
		}
	}
	end := min(start+int(pageSize), len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(key(items[end-1])))
	}
	return items[start:end], next, nil
}

func noFilter(filter, orderBy string) error {
	if filter != "" || orderBy != "" {
		return errorf(codes.Unimplemented, "kmsemu: filter and order_by are not supported")
	}
	return nil
}

// CreateKeyRing creates a key ring; the id must match [a-zA-Z0-9_-]{1,63}
// and be new in its location.
func (s *service) CreateKeyRing(_ context.Context, req *kmspb.CreateKeyRingRequest) (*kmspb.KeyRing, error) {
	loc, err := parseLocationName(req.GetParent())
	if err != nil {
		return nil, badName(err)
	}
	if !validID(req.GetKeyRingId(), "") {
		return nil, errorf(codes.InvalidArgument, "key_ring_id %q must match [a-zA-Z0-9_-]{1,63}", req.GetKeyRingId())
	}
	n := keyRingName{loc, req.GetKeyRingId()}
	var out *kmspb.KeyRing
	err = s.mutate(func(now time.Time) error {
		if _, ok := s.st.rings[n.String()]; ok {
			return errorf(codes.AlreadyExists, "KeyRing %s already exists", n)
		}
		r := &keyRing{name: n, createTime: now, keys: make(map[string]*cryptoKey)}
		s.st.rings[n.String()] = r
		out = r.proto()
		return nil
	})
	return out, err
}

// GetKeyRing returns a key ring.
func (s *service) GetKeyRing(_ context.Context, req *kmspb.GetKeyRingRequest) (*kmspb.KeyRing, error) {
	n, err := parseKeyRingName(req.GetName())
	if err != nil {
		return nil, badName(err)
	}
	var out *kmspb.KeyRing
	err = s.read(func(time.Time) error {
		r, err := s.st.keyRing(n)
		if err != nil {
			return err
		}
		out = r.proto()
		return nil
	})
	return out, err
}

// ListKeyRings lists the key rings of a location, sorted by name.
func (s *service) ListKeyRings(_ context.Context, req *kmspb.ListKeyRingsRequest) (*kmspb.ListKeyRingsResponse, error) {
	loc, err := parseLocationName(req.GetParent())
	if err != nil {
		return nil, badName(err)
	}
	if err := noFilter(req.GetFilter(), req.GetOrderBy()); err != nil {
		return nil, err
	}
	prefix := loc.String() + "/keyRings/"
	var out *kmspb.ListKeyRingsResponse
	err = s.read(func(time.Time) error {
		var rings []*keyRing
		for name, r := range s.st.rings {
			if strings.HasPrefix(name, prefix) {
				rings = append(rings, r)
			}
		}
		slices.SortFunc(rings, func(a, b *keyRing) int { return strings.Compare(a.name.String(), b.name.String()) })
		items, next, err := page(rings, func(r *keyRing) string { return r.name.String() }, req.GetPageSize(), req.GetPageToken())
		if err != nil {
			return err
		}
		out = &kmspb.ListKeyRingsResponse{NextPageToken: next, TotalSize: int32(len(rings))}
		for _, r := range items {
			out.KeyRings = append(out.KeyRings, r.proto())
		}
		return nil
	})
	return out, err
}

func supportedProtectionLevel(pl kmspb.ProtectionLevel) bool {
	return pl == kmspb.ProtectionLevel_SOFTWARE || pl == kmspb.ProtectionLevel_HSM
}

// checkLabels applies the rules of Google Cloud labels: at most 64; keys of
// 1-63 characters starting with a lowercase letter; keys and values of
// lowercase letters, digits, '_' and '-', values at most 63 characters.
func checkLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return fmt.Errorf("%d labels, want at most %d", len(labels), maxLabels)
	}
	ok := func(s string) bool {
		if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxLabelLength {
			return false
		}
		for _, r := range s {
			if !unicode.IsLower(r) && !unicode.IsDigit(r) && r != '_' && r != '-' {
				return false
			}
		}
		return true
	}
	for k, v := range labels {
		first, _ := utf8.DecodeRuneInString(k)
		if k == "" || !unicode.IsLower(first) || !ok(k) || !ok(v) {
			return fmt.Errorf("label %q=%q breaks the label rules", k, v)
		}
	}
	return nil
}

// newVersion adds version len(k.versions)+1 to k with fresh key material.
func (s *service) newVersion(k *cryptoKey, now time.Time, state kmspb.CryptoKeyVersion_CryptoKeyVersionState) (*keyVersion, error) {
	if len(k.versions) >= maxVersion {
		return nil, errorf(codes.ResourceExhausted, "CryptoKey %s has the maximum number of versions", k.name)
	}
	m, err := generateKeyMaterial(k.algorithm)
	if err != nil {
		return nil, errorf(codes.Internal, "%v", err)
	}
	v := &keyVersion{
		id:              len(k.versions) + 1,
		state:           state,
		algorithm:       k.algorithm,
		protectionLevel: k.protectionLevel,
		createTime:      now,
		generateTime:    now,
		material:        m,
	}
	if k.purpose == kmspb.CryptoKey_ASYMMETRIC_SIGN {
		v.generateTime = micros(now.Add(s.generationDelay))
	}
	k.versions = append(k.versions, v)
	return v, nil
}

// CreateCryptoKey creates a key and, unless skip_initial_version_creation,
// its version 1 (the primary of an ENCRYPT_DECRYPT key).
func (s *service) CreateCryptoKey(_ context.Context, req *kmspb.CreateCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	parent, err := parseKeyRingName(req.GetParent())
	if err != nil {
		return nil, badName(err)
	}
	if !validID(req.GetCryptoKeyId(), "") {
		return nil, errorf(codes.InvalidArgument, "crypto_key_id %q must match [a-zA-Z0-9_-]{1,63}", req.GetCryptoKeyId())
	}
	ck := req.GetCryptoKey()
	if ck == nil {
		return nil, errorf(codes.InvalidArgument, "crypto_key is required")
	}
	k := &cryptoKey{
		name:            cryptoKeyName{parent, req.GetCryptoKeyId()},
		purpose:         ck.GetPurpose(),
		algorithm:       ck.GetVersionTemplate().GetAlgorithm(),
		protectionLevel: ck.GetVersionTemplate().GetProtectionLevel(),
		destroyDelay:    defaultDestroyDelay,
	}
	if err := s.checkNewKey(req, k); err != nil {
		return nil, err
	}
	if len(ck.GetLabels()) > 0 {
		k.labels = make(map[string]string, len(ck.GetLabels()))
		for key, val := range ck.GetLabels() {
			k.labels[key] = val
		}
	}
	var out *kmspb.CryptoKey
	err = s.mutate(func(now time.Time) error {
		r, err := s.st.keyRing(parent)
		if err != nil {
			return err
		}
		if _, ok := r.keys[k.name.cryptoKey]; ok {
			return errorf(codes.AlreadyExists, "CryptoKey %s already exists", k.name)
		}
		k.createTime = now
		if !req.GetSkipInitialVersionCreation() {
			v, err := s.newVersion(k, now, kmspb.CryptoKeyVersion_ENABLED)
			if err != nil {
				return err
			}
			if k.purpose == kmspb.CryptoKey_ENCRYPT_DECRYPT {
				k.primary = v.id
			}
		}
		r.keys[k.name.cryptoKey] = k
		out = k.proto(now)
		return nil
	})
	return out, err
}

// checkNewKey validates and completes the key of a CreateCryptoKey request:
// what the real service rejects is InvalidArgument, what it accepts but the
// emulator doesn't do is Unimplemented.
func (s *service) checkNewKey(req *kmspb.CreateCryptoKeyRequest, k *cryptoKey) error {
	ck := req.GetCryptoKey()
	if k.purpose == kmspb.CryptoKey_CRYPTO_KEY_PURPOSE_UNSPECIFIED {
		return errorf(codes.InvalidArgument, "crypto_key.purpose is required")
	}
	if k.algorithm == kmspb.CryptoKeyVersion_CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED {
		if k.purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT {
			return errorf(codes.InvalidArgument, "crypto_key.version_template.algorithm is required for purpose %v", k.purpose)
		}
		k.algorithm = kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION
	}
	if p := purposeOf(k.algorithm); p != k.purpose {
		return errorf(codes.InvalidArgument, "algorithm %v is not valid for purpose %v", k.algorithm, k.purpose)
	}
	if _, ok := supportedAlgorithms[k.algorithm]; !ok {
		return errorf(codes.Unimplemented, "kmsemu: algorithm %v is not supported by the emulator", k.algorithm)
	}
	if k.protectionLevel == kmspb.ProtectionLevel_PROTECTION_LEVEL_UNSPECIFIED {
		k.protectionLevel = kmspb.ProtectionLevel_SOFTWARE
	}
	if !supportedProtectionLevel(k.protectionLevel) {
		return errorf(codes.Unimplemented, "kmsemu: protection level %v is not supported by the emulator", k.protectionLevel)
	}
	if d := ck.GetDestroyScheduledDuration(); d != nil {
		if err := d.CheckValid(); err != nil {
			return errorf(codes.InvalidArgument, "destroy_scheduled_duration: %v", err)
		}
		k.destroyDelay = d.AsDuration()
		if k.destroyDelay < minDestroyDelay || k.destroyDelay > maxDestroyDelay || k.destroyDelay%time.Microsecond != 0 {
			return errorf(codes.InvalidArgument, "destroy_scheduled_duration %v is not between %v and %v in whole microseconds", k.destroyDelay, minDestroyDelay, maxDestroyDelay)
		}
	}
	if err := checkLabels(ck.GetLabels()); err != nil {
		return errorf(codes.InvalidArgument, "crypto_key.labels: %v", err)
	}
	switch {
	case ck.GetImportOnly():
		return errorf(codes.Unimplemented, "kmsemu: import_only keys are not supported")
	case ck.GetCryptoKeyBackend() != "":
		return errorf(codes.Unimplemented, "kmsemu: crypto_key_backend is not supported")
	case ck.GetRotationSchedule() != nil || ck.GetNextRotationTime() != nil:
		return errorf(codes.Unimplemented, "kmsemu: automatic rotation is not supported")
	case ck.GetKeyAccessJustificationsPolicy() != nil:
		return errorf(codes.Unimplemented, "kmsemu: key access justifications are not supported")
	case req.GetTrustedWrappingEnabled():
		return errorf(codes.Unimplemented, "kmsemu: trusted wrapping is not supported")
	}
	return nil
}

// GetCryptoKey returns a key with its primary version (ENCRYPT_DECRYPT).
func (s *service) GetCryptoKey(_ context.Context, req *kmspb.GetCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	n, err := parseCryptoKeyName(req.GetName())
	if err != nil {
		return nil, badName(err)
	}
	var out *kmspb.CryptoKey
	err = s.read(func(now time.Time) error {
		k, err := s.st.cryptoKey(n)
		if err != nil {
			return err
		}
		out = k.proto(now)
		return nil
	})
	return out, err
}

// ListCryptoKeys lists the keys of a key ring, sorted by name.
func (s *service) ListCryptoKeys(_ context.Context, req *kmspb.ListCryptoKeysRequest) (*kmspb.ListCryptoKeysResponse, error) {
	parent, err := parseKeyRingName(req.GetParent())
	if err != nil {
		return nil, badName(err)
	}
	if err := noFilter(req.GetFilter(), req.GetOrderBy()); err != nil {
		return nil, err
	}
	var out *kmspb.ListCryptoKeysResponse
	err = s.read(func(now time.Time) error {
		r, err := s.st.keyRing(parent)
		if err != nil {
			return err
		}
		keys := make([]*cryptoKey, 0, len(r.keys))
		for _, k := range r.keys {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b *cryptoKey) int { return strings.Compare(a.name.cryptoKey, b.name.cryptoKey) })
		items, next, err := page(keys, func(k *cryptoKey) string { return k.name.cryptoKey }, req.GetPageSize(), req.GetPageToken())
		if err != nil {
			return err
		}
		out = &kmspb.ListCryptoKeysResponse{NextPageToken: next, TotalSize: int32(len(keys))}
		for _, k := range items {
			out.CryptoKeys = append(out.CryptoKeys, k.proto(now))
		}
		return nil
	})
	return out, err
}

// CreateCryptoKeyVersion adds a version (ENABLED unless the request asks
// for DISABLED). It does not change the primary: that takes
// UpdateCryptoKeyPrimaryVersion, as in the real service.
func (s *service) CreateCryptoKeyVersion(_ context.Context, req *kmspb.CreateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	parent, err := parseCryptoKeyName(req.GetParent())
	if err != nil {
		return nil, badName(err)
	}
	state := req.GetCryptoKeyVersion().GetState()
	switch state {
	case kmspb.CryptoKeyVersion_CRYPTO_KEY_VERSION_STATE_UNSPECIFIED:
		state = kmspb.CryptoKeyVersion_ENABLED
	case kmspb.CryptoKeyVersion_ENABLED, kmspb.CryptoKeyVersion_DISABLED:
	default:
		return nil, errorf(codes.InvalidArgument, "crypto_key_version.state %v: a new version can only be ENABLED or DISABLED", state)
	}
	var out *kmspb.CryptoKeyVersion
	err = s.mutate(func(now time.Time) error {
		k, err := s.st.cryptoKey(parent)
		if err != nil {
			return err
		}
		v, err := s.newVersion(k, now, state)
		if err != nil {
			return err
		}
		out = k.versionProto(v, now)
		return nil
	})
	return out, err
}

// GetCryptoKeyVersion returns a version.
func (s *service) GetCryptoKeyVersion(_ context.Context, req *kmspb.GetCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	n, err := parseVersionName(req.GetName())
	if err != nil {
		return nil, badName(err)
	}
	var out *kmspb.CryptoKeyVersion
	err = s.read(func(now time.Time) error {
		k, v, err := s.st.keyVersion(n)
		if err != nil {
			return err
		}
		out = k.versionProto(v, now)
		return nil
	})
	return out, err
}

// ListCryptoKeyVersions lists the versions of a key in id order.
func (s *service) ListCryptoKeyVersions(_ context.Context, req *kmspb.ListCryptoKeyVersionsRequest) (*kmspb.ListCryptoKeyVersionsResponse, error) {
	parent, err := parseCryptoKeyName(req.GetParent())
	if err != nil {
		return nil, badName(err)
	}
	if err := noFilter(req.GetFilter(), req.GetOrderBy()); err != nil {
		return nil, err
	}
	var out *kmspb.ListCryptoKeyVersionsResponse
	err = s.read(func(now time.Time) error {
		k, err := s.st.cryptoKey(parent)
		if err != nil {
			return err
		}
		// Ten digits, zero-padded: string order is id order.
		key := func(v *keyVersion) string { return fmt.Sprintf("%010d", v.id) }
		items, next, err := page(k.versions, key, req.GetPageSize(), req.GetPageToken())
		if err != nil {
			return err
		}
		out = &kmspb.ListCryptoKeyVersionsResponse{NextPageToken: next, TotalSize: int32(len(k.versions))}
		for _, v := range items {
			out.CryptoKeyVersions = append(out.CryptoKeyVersions, k.versionProto(v, now))
		}
		return nil
	})
	return out, err
}

// UpdateCryptoKeyVersion changes a version's state between ENABLED and
// DISABLED; "state" is the only field it updates.
func (s *service) UpdateCryptoKeyVersion(_ context.Context, req *kmspb.UpdateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, errorf(codes.InvalidArgument, "update_mask must name the fields to update")
	}
	for _, p := range paths {
		if p != "state" {
			return nil, errorf(codes.InvalidArgument, "update_mask: field %q can't be updated (only state)", p)
		}
	}
	n, err := parseVersionName(req.GetCryptoKeyVersion().GetName())
	if err != nil {
		return nil, badName(err)
	}
	want := req.GetCryptoKeyVersion().GetState()
	if want != kmspb.CryptoKeyVersion_ENABLED && want != kmspb.CryptoKeyVersion_DISABLED {
		return nil, errorf(codes.InvalidArgument, "state %v: a version can only be updated to ENABLED or DISABLED", want)
	}
	var out *kmspb.CryptoKeyVersion
	err = s.mutate(func(now time.Time) error {
		k, v, err := s.st.keyVersion(n)
		if err != nil {
			return err
		}
		if st := v.view(now).state; st != kmspb.CryptoKeyVersion_ENABLED && st != kmspb.CryptoKeyVersion_DISABLED {
			return errorf(codes.FailedPrecondition, "CryptoKeyVersion %s is %v; only ENABLED and DISABLED versions can be updated", n, st)
		}
		v.state = want
		out = k.versionProto(v, now)
		return nil
	})
	return out, err
}

// DestroyCryptoKeyVersion schedules a version's destruction after the
// key's destroy_scheduled_duration.
func (s *service) DestroyCryptoKeyVersion(_ context.Context, req *kmspb.DestroyCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	n, err := parseVersionName(req.GetName())
	if err != nil {
		return nil, badName(err)
	}
	var out *kmspb.CryptoKeyVersion
	err = s.mutate(func(now time.Time) error {
		k, v, err := s.st.keyVersion(n)
		if err != nil {
			return err
		}
		if st := v.view(now).state; st != kmspb.CryptoKeyVersion_ENABLED && st != kmspb.CryptoKeyVersion_DISABLED {
			return errorf(codes.FailedPrecondition, "CryptoKeyVersion %s is %v; only ENABLED and DISABLED versions can be destroyed", n, st)
		}
		v.state = kmspb.CryptoKeyVersion_DESTROY_SCHEDULED
		v.destroyTime = now.Add(k.destroyDelay)
		out = k.versionProto(v, now)
		return nil
	})
	return out, err
}

// RestoreCryptoKeyVersion takes a version out of DESTROY_SCHEDULED, into
// DISABLED.
func (s *service) RestoreCryptoKeyVersion(_ context.Context, req *kmspb.RestoreCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	n, err := parseVersionName(req.GetName())
	if err != nil {
		return nil, badName(err)
	}
	var out *kmspb.CryptoKeyVersion
	err = s.mutate(func(now time.Time) error {
		k, v, err := s.st.keyVersion(n)
		if err != nil {
			return err
		}
		if st := v.view(now).state; st != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED {
			return errorf(codes.FailedPrecondition, "CryptoKeyVersion %s is %v; only DESTROY_SCHEDULED versions can be restored", n, st)
		}
		v.state = kmspb.CryptoKeyVersion_DISABLED
		v.destroyTime = time.Time{}
		out = k.versionProto(v, now)
		return nil
	})
	return out, err
}

// UpdateCryptoKeyPrimaryVersion makes an ENABLED version the primary of an
// ENCRYPT_DECRYPT key.
func (s *service) UpdateCryptoKeyPrimaryVersion(_ context.Context, req *kmspb.UpdateCryptoKeyPrimaryVersionRequest) (*kmspb.CryptoKey, error) {
	n, err := parseCryptoKeyName(req.GetName())
	if err != nil {
		return nil, badName(err)
	}
	id, ok := parseVersionID(req.GetCryptoKeyVersionId())
	if !ok {
		return nil, errorf(codes.InvalidArgument, "crypto_key_version_id %q is not a version number", req.GetCryptoKeyVersionId())
	}
	var out *kmspb.CryptoKey
	err = s.mutate(func(now time.Time) error {
		k, err := s.st.cryptoKey(n)
		if err != nil {
			return err
		}
		if k.purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT {
			return errorf(codes.FailedPrecondition, "CryptoKey %s has purpose %v; only ENCRYPT_DECRYPT keys have a primary version", n, k.purpose)
		}
		v := k.version(id)
		if v == nil {
			return errorf(codes.NotFound, "CryptoKeyVersion %s not found", k.versionName(id))
		}
		if st := v.view(now).state; st != kmspb.CryptoKeyVersion_ENABLED {
			return errorf(codes.FailedPrecondition, "CryptoKeyVersion %s is %v; the primary must be ENABLED", k.versionName(id), st)
		}
		k.primary = id
		out = k.proto(now)
		return nil
	})
	return out, err
}
