package kmsemu

import (
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// state is everything the emulator knows: key rings, keys, versions and
// their secrets. The server guards it with its mutex.
type state struct {
	rings map[string]*keyRing // by full key ring name
}

type keyRing struct {
	name       keyRingName
	createTime time.Time
	keys       map[string]*cryptoKey // by crypto key id
}

type cryptoKey struct {
	name            cryptoKeyName
	purpose         kmspb.CryptoKey_CryptoKeyPurpose
	algorithm       kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm // version template
	protectionLevel kmspb.ProtectionLevel                            // version template
	createTime      time.Time
	labels          map[string]string
	destroyDelay    time.Duration // destroy_scheduled_duration
	primary         int           // version id; 0 = none (ENCRYPT_DECRYPT only)
	versions        []*keyVersion // versions[i].id == i+1
}

// keyVersion is one CryptoKeyVersion. Its stored state is one of ENABLED,
// DISABLED, DESTROY_SCHEDULED and DESTROYED; PENDING_GENERATION and the
// passage from DESTROY_SCHEDULED to DESTROYED are derived from the clock
// (see view).
type keyVersion struct {
	id               int
	state            kmspb.CryptoKeyVersion_CryptoKeyVersionState
	algorithm        kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
	protectionLevel  kmspb.ProtectionLevel
	createTime       time.Time
	generateTime     time.Time // before it, the version is PENDING_GENERATION
	destroyTime      time.Time // set iff state == DESTROY_SCHEDULED
	destroyEventTime time.Time // set iff state == DESTROYED
	material         *keyMaterial
}

func newState() *state { return &state{rings: make(map[string]*keyRing)} }

// versionView is a version as seen at some instant.
type versionView struct {
	state            kmspb.CryptoKeyVersion_CryptoKeyVersionState
	destroyTime      time.Time
	destroyEventTime time.Time
}

// view returns v's state at now: PENDING_GENERATION before generateTime,
// DESTROYED once a scheduled destruction is due.
func (v *keyVersion) view(now time.Time) versionView {
	switch {
	case v.state == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED && !now.Before(v.destroyTime):
		return versionView{state: kmspb.CryptoKeyVersion_DESTROYED, destroyEventTime: v.destroyTime}
	case v.state == kmspb.CryptoKeyVersion_DESTROYED:
		return versionView{state: v.state, destroyEventTime: v.destroyEventTime}
	case now.Before(v.generateTime):
		return versionView{state: kmspb.CryptoKeyVersion_PENDING_GENERATION}
	case v.state == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED:
		return versionView{state: v.state, destroyTime: v.destroyTime}
	default:
		return versionView{state: v.state}
	}
}

// sweep makes due destructions real: the key material is dropped.
func (st *state) sweep(now time.Time) {
	for _, r := range st.rings {
		for _, k := range r.keys {
			for _, v := range k.versions {
				if v.state == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED && !now.Before(v.destroyTime) {
					v.state = kmspb.CryptoKeyVersion_DESTROYED
					v.destroyEventTime = v.destroyTime
					v.destroyTime = time.Time{}
					v.material = nil
				}
			}
		}
	}
}

// micros truncates t to the microsecond, the resolution of the real
// service's timestamps.
func micros(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (r *keyRing) proto() *kmspb.KeyRing {
	return &kmspb.KeyRing{Name: r.name.String(), CreateTime: timestamp(r.createTime)}
}

func (k *cryptoKey) version(id int) *keyVersion {
	if id < 1 || id > len(k.versions) {
		return nil
	}
	return k.versions[id-1]
}

func (k *cryptoKey) versionName(id int) versionName { return versionName{k.name, id} }

func (k *cryptoKey) proto(now time.Time) *kmspb.CryptoKey {
	pb := &kmspb.CryptoKey{
		Name:       k.name.String(),
		Purpose:    k.purpose,
		CreateTime: timestamp(k.createTime),
		VersionTemplate: &kmspb.CryptoKeyVersionTemplate{
			ProtectionLevel: k.protectionLevel,
			Algorithm:       k.algorithm,
		},
		DestroyScheduledDuration: durationpb.New(k.destroyDelay),
	}
	if len(k.labels) > 0 {
		pb.Labels = make(map[string]string, len(k.labels))
		for key, val := range k.labels {
			pb.Labels[key] = val
		}
	}
	if v := k.version(k.primary); v != nil {
		pb.Primary = k.versionProto(v, now)
	}
	return pb
}

func (k *cryptoKey) versionProto(v *keyVersion, now time.Time) *kmspb.CryptoKeyVersion {
	view := v.view(now)
	pb := &kmspb.CryptoKeyVersion{
		Name:             k.versionName(v.id).String(),
		State:            view.state,
		ProtectionLevel:  v.protectionLevel,
		Algorithm:        v.algorithm,
		CreateTime:       timestamp(v.createTime),
		DestroyTime:      timestamp(view.destroyTime),
		DestroyEventTime: timestamp(view.destroyEventTime),
	}
	if view.state != kmspb.CryptoKeyVersion_PENDING_GENERATION {
		pb.GenerateTime = timestamp(v.generateTime)
	}
	return pb
}
