package kmsemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
)

// The state file keeps key rings, keys, versions and their secrets across
// restarts of a local stack. It is JSON written by encodeState, and
// parseState accepts exactly what encodeState writes (it re-encodes what it
// parsed and compares), so a file has one valid form:
//
//	{
//	  "format": "conifer-kmsemu-state/v1",
//	  "keyRings": [                               // sorted by name
//	    {
//	      "name": "projects/p/locations/global/keyRings/r",
//	      "createTimeMicros": 1795611702620002,   // Unix time, µs, > 0
//	      "cryptoKeys": [                         // sorted by id
//	        {
//	          "id": "signer",
//	          "purpose": "ASYMMETRIC_SIGN",        // a kmspb enum name
//	          "algorithm": "EC_SIGN_ED25519",      // version template
//	          "protectionLevel": "SOFTWARE",       // version template
//	          "createTimeMicros": 1795611702620002,
//	          "labels": {"env": "local"},          // omitted when empty
//	          "destroyScheduledMicros": 2592000000000,
//	          "primary": 1,                        // ENCRYPT_DECRYPT only; omitted when 0
//	          "versions": [                        // version i+1 at index i
//	            {
//	              "state": "ENABLED",              // ENABLED, DISABLED, DESTROY_SCHEDULED, DESTROYED
//	              "algorithm": "EC_SIGN_ED25519",
//	              "protectionLevel": "SOFTWARE",
//	              "createTimeMicros": 1795611702620002,
//	              "generateTimeMicros": 1795611702620002,
//	              "destroyTimeMicros": 0,          // > 0 iff DESTROY_SCHEDULED; else omitted
//	              "destroyEventTimeMicros": 0,     // > 0 iff DESTROYED; else omitted
//	              "key": "base64 of 32 bytes"      // absent iff DESTROYED
//	            }]}]}]
//	}
//
// (Zero values shown above are omitted in a real file.) The file is written
// with mode 0600 to a temporary file in the same directory, synced, and
// renamed over the old one, so a crash leaves either the old or the new
// state, never a mix.

// stateFormat names the file format and its version.
const stateFormat = "conifer-kmsemu-state/v1"

// maxStateFile caps the size of a state file parseState accepts.
const maxStateFile = 64 << 20

// errBadState is wrapped by every parseState error.
var errBadState = errors.New("bad state file")

type fileState struct {
	Format   string        `json:"format"`
	KeyRings []fileKeyRing `json:"keyRings"`
}

type fileKeyRing struct {
	Name       string          `json:"name"`
	CreateTime int64           `json:"createTimeMicros"`
	CryptoKeys []fileCryptoKey `json:"cryptoKeys"`
}

type fileCryptoKey struct {
	ID               string            `json:"id"`
	Purpose          string            `json:"purpose"`
	Algorithm        string            `json:"algorithm"`
	ProtectionLevel  string            `json:"protectionLevel"`
	CreateTime       int64             `json:"createTimeMicros"`
	Labels           map[string]string `json:"labels,omitempty"`
	DestroyScheduled int64             `json:"destroyScheduledMicros"`
	Primary          int               `json:"primary,omitempty"`
	Versions         []fileVersion     `json:"versions"`
}

type fileVersion struct {
	State            string `json:"state"`
	Algorithm        string `json:"algorithm"`
	ProtectionLevel  string `json:"protectionLevel"`
	CreateTime       int64  `json:"createTimeMicros"`
	GenerateTime     int64  `json:"generateTimeMicros"`
	DestroyTime      int64  `json:"destroyTimeMicros,omitempty"`
	DestroyEventTime int64  `json:"destroyEventTimeMicros,omitempty"`
	Key              []byte `json:"key,omitempty"`
}

func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// encodeState returns the canonical file form of st.
func encodeState(st *state) []byte {
	fs := fileState{Format: stateFormat, KeyRings: []fileKeyRing{}}
	ringNames := make([]string, 0, len(st.rings))
	for name := range st.rings {
		ringNames = append(ringNames, name)
	}
	slices.Sort(ringNames)
	for _, rn := range ringNames {
		r := st.rings[rn]
		fr := fileKeyRing{Name: rn, CreateTime: toMicros(r.createTime), CryptoKeys: []fileCryptoKey{}}
		ids := make([]string, 0, len(r.keys))
		for id := range r.keys {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			k := r.keys[id]
			fk := fileCryptoKey{
				ID:               id,
				Purpose:          k.purpose.String(),
				Algorithm:        k.algorithm.String(),
				ProtectionLevel:  k.protectionLevel.String(),
				CreateTime:       toMicros(k.createTime),
				DestroyScheduled: k.destroyDelay.Microseconds(),
				Primary:          k.primary,
				Versions:         []fileVersion{},
			}
			if len(k.labels) > 0 {
				fk.Labels = k.labels
			}
			for _, v := range k.versions {
				fv := fileVersion{
					State:            v.state.String(),
					Algorithm:        v.algorithm.String(),
					ProtectionLevel:  v.protectionLevel.String(),
					CreateTime:       toMicros(v.createTime),
					GenerateTime:     toMicros(v.generateTime),
					DestroyTime:      toMicros(v.destroyTime),
					DestroyEventTime: toMicros(v.destroyEventTime),
				}
				if v.material != nil {
					fv.Key = v.material.raw
				}
				fk.Versions = append(fk.Versions, fv)
			}
			fr.CryptoKeys = append(fr.CryptoKeys, fk)
		}
		fs.KeyRings = append(fs.KeyRings, fr)
	}
	b, err := json.MarshalIndent(fs, "", "  ")
	if err != nil {
		panic("kmsemu: couldn't encode the state: " + err.Error())
	}
	return append(b, '\n')
}

func badState(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadState, fmt.Sprintf(format, args...))
}

// parseState parses a state file strictly: size cap, no unknown fields, no
// trailing data, every name, enum, key, time and cross-reference checked,
// and the bytes must be exactly what encodeState writes for the result.
func parseState(b []byte) (*state, error) {
	if len(b) > maxStateFile {
		return nil, badState("%d bytes, want at most %d", len(b), maxStateFile)
	}
	return decodeState(b)
}

// decodeState is parseState without the size cap.
func decodeState(b []byte) (*state, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var fs fileState
	if err := dec.Decode(&fs); err != nil {
		return nil, badState("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badState("trailing data after the JSON object")
	}
	if fs.Format != stateFormat {
		return nil, badState("field format is %q, want %q", fs.Format, stateFormat)
	}
	st := newState()
	for i, fr := range fs.KeyRings {
		rn, err := parseKeyRingName(fr.Name)
		if err != nil {
			return nil, badState("keyRings[%d].name: %v", i, err)
		}
		if _, dup := st.rings[fr.Name]; dup {
			return nil, badState("keyRings[%d].name %q appears twice", i, fr.Name)
		}
		if fr.CreateTime <= 0 {
			return nil, badState("keyRings[%d].createTimeMicros is %d, want > 0", i, fr.CreateTime)
		}
		r := &keyRing{name: rn, createTime: fromMicros(fr.CreateTime), keys: make(map[string]*cryptoKey)}
		for j, fk := range fr.CryptoKeys {
			k, err := parseFileCryptoKey(rn, fk)
			if err != nil {
				return nil, badState("keyRings[%d].cryptoKeys[%d]: %v", i, j, err)
			}
			if _, dup := r.keys[fk.ID]; dup {
				return nil, badState("keyRings[%d].cryptoKeys[%d].id %q appears twice", i, j, fk.ID)
			}
			r.keys[fk.ID] = k
		}
		st.rings[fr.Name] = r
	}
	if !bytes.Equal(encodeState(st), b) {
		return nil, badState("not in canonical form (order, spacing, escaping or a field that must be omitted)")
	}
	return st, nil
}

// enumValue looks name up in an enum's value table.
func enumValue(table map[string]int32, field, name string) (int32, error) {
	v, ok := table[name]
	if !ok {
		return 0, fmt.Errorf("%s %q is not a known value", field, name)
	}
	return v, nil
}

func parseFileCryptoKey(rn keyRingName, fk fileCryptoKey) (*cryptoKey, error) {
	if !validID(fk.ID, "") {
		return nil, fmt.Errorf("id %q is not 1-63 of [a-zA-Z0-9_-]", fk.ID)
	}
	p, err := enumValue(kmspb.CryptoKey_CryptoKeyPurpose_value, "purpose", fk.Purpose)
	if err != nil {
		return nil, err
	}
	a, err := enumValue(kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm_value, "algorithm", fk.Algorithm)
	if err != nil {
		return nil, err
	}
	pl, err := enumValue(kmspb.ProtectionLevel_value, "protectionLevel", fk.ProtectionLevel)
	if err != nil {
		return nil, err
	}
	k := &cryptoKey{
		name:            cryptoKeyName{rn, fk.ID},
		purpose:         kmspb.CryptoKey_CryptoKeyPurpose(p),
		algorithm:       kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm(a),
		protectionLevel: kmspb.ProtectionLevel(pl),
		createTime:      fromMicros(fk.CreateTime),
		labels:          fk.Labels,
		destroyDelay:    time.Duration(fk.DestroyScheduled) * time.Microsecond,
		primary:         fk.Primary,
	}
	if alg, ok := supportedAlgorithms[k.algorithm]; !ok || alg != k.purpose {
		return nil, fmt.Errorf("algorithm %s with purpose %s is not supported", fk.Algorithm, fk.Purpose)
	}
	if !supportedProtectionLevel(k.protectionLevel) {
		return nil, fmt.Errorf("protectionLevel %s is not supported", fk.ProtectionLevel)
	}
	if fk.CreateTime <= 0 {
		return nil, fmt.Errorf("createTimeMicros is %d, want > 0", fk.CreateTime)
	}
	if err := checkLabels(fk.Labels); err != nil {
		return nil, err
	}
	if fk.DestroyScheduled < minDestroyDelay.Microseconds() || fk.DestroyScheduled > maxDestroyDelay.Microseconds() {
		return nil, fmt.Errorf("destroyScheduledMicros is %d, want %d to %d", fk.DestroyScheduled, minDestroyDelay.Microseconds(), maxDestroyDelay.Microseconds())
	}
	if len(fk.Versions) > maxVersion {
		return nil, fmt.Errorf("%d versions, want at most %d", len(fk.Versions), maxVersion)
	}
	for i, fv := range fk.Versions {
		v, err := parseFileVersion(k, i+1, fv)
		if err != nil {
			return nil, fmt.Errorf("versions[%d]: %v", i, err)
		}
		k.versions = append(k.versions, v)
	}
	switch {
	case k.primary < 0 || k.primary > len(k.versions):
		return nil, fmt.Errorf("primary is %d, want 0 to %d", k.primary, len(k.versions))
	case k.primary != 0 && k.purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT:
		return nil, fmt.Errorf("primary is set on a %s key", fk.Purpose)
	}
	return k, nil
}

func parseFileVersion(k *cryptoKey, id int, fv fileVersion) (*keyVersion, error) {
	s, err := enumValue(kmspb.CryptoKeyVersion_CryptoKeyVersionState_value, "state", fv.State)
	if err != nil {
		return nil, err
	}
	a, err := enumValue(kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm_value, "algorithm", fv.Algorithm)
	if err != nil {
		return nil, err
	}
	pl, err := enumValue(kmspb.ProtectionLevel_value, "protectionLevel", fv.ProtectionLevel)
	if err != nil {
		return nil, err
	}
	v := &keyVersion{
		id:               id,
		state:            kmspb.CryptoKeyVersion_CryptoKeyVersionState(s),
		algorithm:        kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm(a),
		protectionLevel:  kmspb.ProtectionLevel(pl),
		createTime:       fromMicros(fv.CreateTime),
		generateTime:     fromMicros(fv.GenerateTime),
		destroyTime:      fromMicros(fv.DestroyTime),
		destroyEventTime: fromMicros(fv.DestroyEventTime),
	}
	if supportedAlgorithms[v.algorithm] != k.purpose {
		return nil, fmt.Errorf("algorithm %s doesn't fit the key's purpose %s", fv.Algorithm, k.purpose)
	}
	if !supportedProtectionLevel(v.protectionLevel) {
		return nil, fmt.Errorf("protectionLevel %s is not supported", fv.ProtectionLevel)
	}
	if fv.CreateTime <= 0 || fv.GenerateTime < fv.CreateTime {
		return nil, fmt.Errorf("createTimeMicros %d and generateTimeMicros %d: want 0 < create <= generate", fv.CreateTime, fv.GenerateTime)
	}
	scheduled := v.state == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED
	destroyed := v.state == kmspb.CryptoKeyVersion_DESTROYED
	switch {
	case v.state != kmspb.CryptoKeyVersion_ENABLED && v.state != kmspb.CryptoKeyVersion_DISABLED && !scheduled && !destroyed:
		return nil, fmt.Errorf("state %s can't be stored", fv.State)
	case scheduled != (fv.DestroyTime > 0) || fv.DestroyTime < 0:
		return nil, fmt.Errorf("destroyTimeMicros is %d with state %s: want > 0 iff DESTROY_SCHEDULED", fv.DestroyTime, fv.State)
	case destroyed != (fv.DestroyEventTime > 0) || fv.DestroyEventTime < 0:
		return nil, fmt.Errorf("destroyEventTimeMicros is %d with state %s: want > 0 iff DESTROYED", fv.DestroyEventTime, fv.State)
	case destroyed != (fv.Key == nil):
		return nil, fmt.Errorf("key is present=%v with state %s: want absent iff DESTROYED", fv.Key != nil, fv.State)
	}
	if !destroyed {
		if v.material, err = newKeyMaterial(v.algorithm, fv.Key); err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
	}
	return v, nil
}

// loadState reads the state file at path; a missing file is an empty state.
func loadState(path string) (*state, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't open the KMS state file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read the KMS state file: %w", err)
	}
	st, err := parseState(b)
	if err != nil {
		return nil, fmt.Errorf("couldn't load the KMS state file %s: %w", path, err)
	}
	return st, nil
}

// writeFileAtomic replaces path with b: a 0600 temporary file in the same
// directory, written and synced, renamed over path, and the directory
// synced, so that after a crash path holds either the old or the new bytes.
func writeFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("couldn't create a temporary state file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("couldn't restrict the state file's mode: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("couldn't write the state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("couldn't sync the state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("couldn't close the state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("couldn't replace the state file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("couldn't open the state directory: %w", err)
	}
	defer d.Close()
	// Some file systems can't sync a directory (EINVAL); the rename stands.
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("couldn't sync the state directory: %w", err)
	}
	return nil
}
