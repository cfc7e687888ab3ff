// Package config reads the private settings of Conifer's Cloud Functions
// from their environment: where the database, keys and topic live, the
// limits that protect an instance, and how much to log. The public realm
// config (package realm) is named here too (CONIFER_REALM_CONFIG) but is a
// separate document, the one clients pin.
//
// Every variable is listed below. Which ones are required depends on the
// entry point the instance serves (FUNCTION_TARGET, set by Cloud
// Functions): an instance checks exactly what its function needs, so the
// checkpoint function does not need the VRF secret and the lookup function
// does not need the signing key. Without FUNCTION_TARGET (the local stack,
// all functions in one process) everything is required.
//
//	variable                             needed by                  default            meaning
//	CONIFER_PROJECT                      all (on Cloud Run)         —                  project id (log trace field; required on Cloud Run)
//	CONIFER_REALM_CONFIG                 all                        —                  realm config: gs://bucket/object, a file path, or inline JSON starting with '{'
//	CONIFER_SPANNER_DATABASE             all                        —                  projects/P/instances/I/databases/D
//	CONIFER_SPANNER_DATABASE_ROLE        optional                   ""                 fine-grained access control role to assume
//	SPANNER_EMULATOR_HOST                optional                   ""                 host:port of the Spanner emulator (emulator mode; refused on Cloud Run)
//	CONIFER_KMS_ENDPOINT                 optional                   ""                 host:port of a KMS emulator, plaintext gRPC, loopback only (refused on Cloud Run)
//	CONIFER_KMS_VRF_KEY                  Update, Lookup, History    —                  KMS key that seals the VRF seed: projects/P/locations/L/keyRings/R/cryptoKeys/K
//	CONIFER_VRF_SECRET_CIPHERTEXT        Update, Lookup, History    —                  the sealed VRF seed, standard base64 (exactly one of this and _FILE)
//	CONIFER_VRF_SECRET_CIPHERTEXT_FILE   Update, Lookup, History    —                  a file holding the sealed VRF seed (raw bytes)
//	CONIFER_KMS_SIGNING_KEY              Epoch                      —                  checkpoint key version: .../cryptoKeys/K/cryptoKeyVersions/N
//	CONIFER_PUBSUB_TOPIC                 Epoch                      —                  projects/P/topics/T
//	CONIFER_EPOCH_INVOKER                optional (Epoch)           ""                 service account email; if set, the HTTP Epoch function also checks the caller's Google-signed ID token names it
//	CONIFER_EPOCH_LEASE_TTL              Epoch                      10m                epoch lease duration (1m..1h)
//	CONIFER_UPDATE_RATE                  Update                     1                  per-user updates per second (token bucket refill, > 0)
//	CONIFER_UPDATE_BURST                 Update                     10                 per-user bucket size (≥ 1)
//	CONIFER_LOOKUP_RATE                  readers                    50                 per-caller reads per second (> 0)
//	CONIFER_LOOKUP_BURST                 readers                    200                per-caller bucket size (≥ 1)
//	CONIFER_TRUSTED_PROXIES              all                        1 on Cloud Run, 0  proxies that append to X-Forwarded-For (see ClientIP)
//	CONIFER_MAX_CONCURRENT               all                        80                 requests in flight per instance before 503 (1..10000)
//	CONIFER_WAIT_TIMEOUT                 Update                     30s                longest wait for an epoch (Update with wait) before 504 (1s..10m)
//	CONIFER_WAIT_POLL                    Update                     250ms              how often a waiting update polls the database (10ms..10s)
//	CONIFER_FEED_CHUNK_BYTES             Feed                       8000000            largest encoded bundle chunk (65536..format.MaxChunkSize)
//	CONIFER_LOG_LEVEL                    all                        info               debug, info, warn or error
//	FUNCTION_TARGET                      (set by the platform)      ""                 the entry point this instance serves
//	K_SERVICE                            (set by the platform)      ""                 present on Cloud Run: emulator settings are refused
//
// Unsafe or inconsistent setups are refused with an error naming the
// variable: any unknown CONIFER_* variable (a typo would otherwise silently
// fall back to a default), emulator endpoints on Cloud Run, a KMS endpoint
// that is not on the loopback interface (it is plaintext), both or neither
// form of the VRF ciphertext where it is needed, and values out of range.
//
// Example (the local stack):
//
//	CONIFER_REALM_CONFIG=./realm.json
//	CONIFER_SPANNER_DATABASE=projects/local/instances/conifer/databases/conifer
//	SPANNER_EMULATOR_HOST=127.0.0.1:9010
//	CONIFER_KMS_ENDPOINT=127.0.0.1:9011
//	CONIFER_KMS_VRF_KEY=projects/local/locations/global/keyRings/conifer/cryptoKeys/vrf
//	CONIFER_VRF_SECRET_CIPHERTEXT_FILE=./vrf.sealed
//	CONIFER_KMS_SIGNING_KEY=projects/local/locations/global/keyRings/conifer/cryptoKeys/signing/cryptoKeyVersions/1
//	CONIFER_PUBSUB_TOPIC=projects/local/topics/epochs
//	PUBSUB_EMULATOR_HOST=127.0.0.1:8085
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conifer-kt/conifer/format"
)

// ErrInvalid is wrapped by every error of FromEnv.
var ErrInvalid = errors.New("invalid function configuration")

// Entry points, as registered by package functions and named by
// FUNCTION_TARGET.
const (
	TargetUpdate     = "Update"
	TargetLookup     = "Lookup"
	TargetHistory    = "History"
	TargetCheckpoint = "Checkpoint"
	TargetFeed       = "Feed"
	TargetRatify     = "Ratify"
	TargetEpoch      = "Epoch"
	TargetEpochEvent = "EpochEvent"
)

// Targets lists every entry point.
var Targets = []string{TargetUpdate, TargetLookup, TargetHistory, TargetCheckpoint, TargetFeed, TargetRatify, TargetEpoch, TargetEpochEvent}

// Config is the functions' private configuration. Each field's comment
// names its variable; FromEnv fills and checks every field.
type Config struct {
	// Target is FUNCTION_TARGET: the one entry point this instance serves,
	// or "" for all of them (local stack).
	Target string
	// OnCloudRun is set when K_SERVICE is present.
	OnCloudRun bool
	// Project is CONIFER_PROJECT (required on Cloud Run).
	Project string

	// Realm is CONIFER_REALM_CONFIG: "gs://bucket/object", a file path, or
	// inline JSON (starting with '{'). See LoadRealm.
	Realm string

	// SpannerDatabase is CONIFER_SPANNER_DATABASE.
	SpannerDatabase string
	// SpannerDatabaseRole is CONIFER_SPANNER_DATABASE_ROLE (optional).
	SpannerDatabaseRole string
	// SpannerEmulator is SPANNER_EMULATOR_HOST; non-empty means emulator
	// mode (the store serialises read-write transactions). Never on Cloud Run.
	SpannerEmulator string

	// KMSEndpoint is CONIFER_KMS_ENDPOINT: a loopback host:port of a KMS
	// emulator reached over plaintext gRPC without credentials. Empty: the
	// real Cloud KMS. Never on Cloud Run.
	KMSEndpoint string
	// VRFKey is CONIFER_KMS_VRF_KEY, the envelope key of the VRF seed.
	VRFKey string
	// VRFCiphertext is the sealed VRF seed, from
	// CONIFER_VRF_SECRET_CIPHERTEXT (base64) or
	// CONIFER_VRF_SECRET_CIPHERTEXT_FILE.
	VRFCiphertext []byte

	// SigningKey is CONIFER_KMS_SIGNING_KEY, the checkpoint key version.
	SigningKey string
	// PubSubTopic is CONIFER_PUBSUB_TOPIC.
	PubSubTopic string
	// EpochInvoker is CONIFER_EPOCH_INVOKER (optional).
	EpochInvoker string
	// EpochLeaseTTL is CONIFER_EPOCH_LEASE_TTL.
	EpochLeaseTTL time.Duration

	// Limits are the per-instance request limits.
	Limits Limits

	// LogLevel is CONIFER_LOG_LEVEL.
	LogLevel slog.Level
}

// Limits protect one instance. Rates are token buckets kept in the
// instance's memory, so the limit a client sees is per instance.
type Limits struct {
	// UpdateRate and UpdateBurst: CONIFER_UPDATE_RATE, CONIFER_UPDATE_BURST,
	// per user index.
	UpdateRate  float64
	UpdateBurst int
	// LookupRate and LookupBurst: CONIFER_LOOKUP_RATE, CONIFER_LOOKUP_BURST,
	// per caller address, for Lookup, History, Checkpoint, Feed and Ratify.
	LookupRate  float64
	LookupBurst int
	// TrustedProxies is CONIFER_TRUSTED_PROXIES.
	TrustedProxies int
	// MaxConcurrent is CONIFER_MAX_CONCURRENT.
	MaxConcurrent int
	// WaitTimeout and WaitPoll: CONIFER_WAIT_TIMEOUT, CONIFER_WAIT_POLL.
	WaitTimeout time.Duration
	WaitPoll    time.Duration
	// FeedChunkBytes is CONIFER_FEED_CHUNK_BYTES.
	FeedChunkBytes int
}

// Defaults of the optional variables.
const (
	DefaultEpochLeaseTTL  = 10 * time.Minute
	DefaultUpdateRate     = 1.0
	DefaultUpdateBurst    = 10
	DefaultLookupRate     = 50.0
	DefaultLookupBurst    = 200
	DefaultMaxConcurrent  = 80
	DefaultWaitTimeout    = 30 * time.Second
	DefaultWaitPoll       = 250 * time.Millisecond
	DefaultFeedChunkBytes = 8_000_000
)

// DefaultLimits returns the limits used when no variable overrides them,
// for a process not on Cloud Run.
func DefaultLimits() Limits {
	return Limits{
		UpdateRate:     DefaultUpdateRate,
		UpdateBurst:    DefaultUpdateBurst,
		LookupRate:     DefaultLookupRate,
		LookupBurst:    DefaultLookupBurst,
		MaxConcurrent:  DefaultMaxConcurrent,
		WaitTimeout:    DefaultWaitTimeout,
		WaitPoll:       DefaultWaitPoll,
		FeedChunkBytes: DefaultFeedChunkBytes,
	}
}

// known lists every CONIFER_* variable FromEnv reads.
var known = []string{
	"CONIFER_PROJECT", "CONIFER_REALM_CONFIG", "CONIFER_SPANNER_DATABASE",
	"CONIFER_SPANNER_DATABASE_ROLE", "CONIFER_KMS_ENDPOINT", "CONIFER_KMS_VRF_KEY",
	"CONIFER_VRF_SECRET_CIPHERTEXT", "CONIFER_VRF_SECRET_CIPHERTEXT_FILE",
	"CONIFER_KMS_SIGNING_KEY", "CONIFER_PUBSUB_TOPIC", "CONIFER_EPOCH_INVOKER",
	"CONIFER_EPOCH_LEASE_TTL", "CONIFER_UPDATE_RATE", "CONIFER_UPDATE_BURST",
	"CONIFER_LOOKUP_RATE", "CONIFER_LOOKUP_BURST", "CONIFER_TRUSTED_PROXIES",
	"CONIFER_MAX_CONCURRENT", "CONIFER_WAIT_TIMEOUT", "CONIFER_WAIT_POLL",
	"CONIFER_FEED_CHUNK_BYTES", "CONIFER_LOG_LEVEL",
}

// Resource name shapes (Google Cloud ids).
var (
	reDatabase   = regexp.MustCompile(`^projects/[a-z0-9][a-z0-9.:-]{0,62}/instances/[a-z][a-z0-9-]{0,62}/databases/[a-z][a-z0-9_-]{0,29}$`)
	reCryptoKey  = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[a-zA-Z0-9_-]{1,63}/cryptoKeys/[a-zA-Z0-9_-]{1,63}$`)
	reKeyVersion = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[a-zA-Z0-9_-]{1,63}/cryptoKeys/[a-zA-Z0-9_-]{1,63}/cryptoKeyVersions/[1-9][0-9]*$`)
	reTopic      = regexp.MustCompile(`^projects/[^/]+/topics/[a-zA-Z][a-zA-Z0-9._~%+-]{2,254}$`)
	reRole       = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`)
	reProject    = regexp.MustCompile(`^[a-z][a-z0-9.:-]{1,62}[a-z0-9]$`)
	reGCS        = regexp.MustCompile(`^gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]/[^\x00-\x1f]+$`)
)

// FromEnv reads the configuration from environ (as os.Environ returns it)
// and checks it. Every error wraps ErrInvalid and names the variable.
func FromEnv(environ []string) (*Config, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		env[k] = v
		if strings.HasPrefix(k, "CONIFER_") && !slices.Contains(known, k) {
			return nil, bad(k, "unknown variable (a typo?); the known ones are listed in package config's documentation")
		}
	}
	c := &Config{
		Target:              env["FUNCTION_TARGET"],
		OnCloudRun:          env["K_SERVICE"] != "",
		Project:             env["CONIFER_PROJECT"],
		Realm:               env["CONIFER_REALM_CONFIG"],
		SpannerDatabase:     env["CONIFER_SPANNER_DATABASE"],
		SpannerDatabaseRole: env["CONIFER_SPANNER_DATABASE_ROLE"],
		SpannerEmulator:     env["SPANNER_EMULATOR_HOST"],
		KMSEndpoint:         env["CONIFER_KMS_ENDPOINT"],
		VRFKey:              env["CONIFER_KMS_VRF_KEY"],
		SigningKey:          env["CONIFER_KMS_SIGNING_KEY"],
		PubSubTopic:         env["CONIFER_PUBSUB_TOPIC"],
		EpochInvoker:        env["CONIFER_EPOCH_INVOKER"],
		Limits:              DefaultLimits(),
	}
	if c.Target != "" && !slices.Contains(Targets, c.Target) {
		return nil, bad("FUNCTION_TARGET", "%q is not an entry point of Conifer (%s)", c.Target, strings.Join(Targets, ", "))
	}
	if c.OnCloudRun {
		c.Limits.TrustedProxies = 1
		if !reProject.MatchString(c.Project) {
			return nil, bad("CONIFER_PROJECT", "%q is not a project id (required on Cloud Run)", c.Project)
		}
		if c.SpannerEmulator != "" {
			return nil, bad("SPANNER_EMULATOR_HOST", "set on Cloud Run: a deployed function must not use the emulator (no durability, no access control)")
		}
		if c.KMSEndpoint != "" {
			return nil, bad("CONIFER_KMS_ENDPOINT", "set on Cloud Run: a deployed function must use the real Cloud KMS")
		}
		if env["PUBSUB_EMULATOR_HOST"] != "" {
			return nil, bad("PUBSUB_EMULATOR_HOST", "set on Cloud Run: a deployed function must publish to the real Pub/Sub")
		}
	} else if c.Project != "" && !reProject.MatchString(c.Project) {
		return nil, bad("CONIFER_PROJECT", "%q is not a project id", c.Project)
	}
	if err := c.readCommon(env); err != nil {
		return nil, err
	}
	if c.Needs(NeedVRF) {
		if err := c.readVRF(env); err != nil {
			return nil, err
		}
	}
	if c.Needs(NeedEpoch) {
		if err := c.readEpoch(env); err != nil {
			return nil, err
		}
	}
	if err := c.readLimits(env); err != nil {
		return nil, err
	}
	return c, nil
}

// Need names a group of settings some entry points need.
type Need int

// Setting groups.
const (
	// NeedVRF: the VRF secret (Update, Lookup, History).
	NeedVRF Need = iota
	// NeedEpoch: the signing key and the topic (Epoch, EpochEvent).
	NeedEpoch
)

// Needs reports whether the instance's target needs the group (every
// group when it serves all entry points).
func (c *Config) Needs(n Need) bool {
	switch c.Target {
	case "":
		return true
	case TargetUpdate, TargetLookup, TargetHistory:
		return n == NeedVRF
	case TargetEpoch, TargetEpochEvent:
		return n == NeedEpoch
	}
	return false
}

// Serves reports whether the instance serves entry point name.
func (c *Config) Serves(name string) bool { return c.Target == "" || c.Target == name }

func (c *Config) readCommon(env map[string]string) error {
	switch {
	case c.Realm == "":
		return bad("CONIFER_REALM_CONFIG", "required: gs://bucket/object, a file path, or inline JSON")
	case strings.HasPrefix(c.Realm, "gs://") && !reGCS.MatchString(c.Realm):
		return bad("CONIFER_REALM_CONFIG", "%q is not a gs://bucket/object URL", c.Realm)
	}
	if !reDatabase.MatchString(c.SpannerDatabase) {
		return bad("CONIFER_SPANNER_DATABASE", "%q is not projects/P/instances/I/databases/D", c.SpannerDatabase)
	}
	if c.SpannerDatabaseRole != "" && !reRole.MatchString(c.SpannerDatabaseRole) {
		return bad("CONIFER_SPANNER_DATABASE_ROLE", "%q is not a database role name", c.SpannerDatabaseRole)
	}
	if c.SpannerEmulator != "" {
		if _, _, err := net.SplitHostPort(c.SpannerEmulator); err != nil {
			return bad("SPANNER_EMULATOR_HOST", "%q is not host:port", c.SpannerEmulator)
		}
	}
	if c.KMSEndpoint != "" {
		host, _, err := net.SplitHostPort(c.KMSEndpoint)
		if err != nil {
			return bad("CONIFER_KMS_ENDPOINT", "%q is not host:port", c.KMSEndpoint)
		}
		if !isLoopback(host) {
			return bad("CONIFER_KMS_ENDPOINT", "%q is not a loopback address: the emulator connection is plaintext and unauthenticated", c.KMSEndpoint)
		}
	}
	lvl, ok := env["CONIFER_LOG_LEVEL"]
	if ok {
		switch strings.ToLower(lvl) {
		case "debug":
			c.LogLevel = slog.LevelDebug
		case "info":
			c.LogLevel = slog.LevelInfo
		case "warn", "warning":
			c.LogLevel = slog.LevelWarn
		case "error":
			c.LogLevel = slog.LevelError
		default:
			return bad("CONIFER_LOG_LEVEL", "%q is not debug, info, warn or error", lvl)
		}
	}
	return nil
}

func (c *Config) readVRF(env map[string]string) error {
	if !reCryptoKey.MatchString(c.VRFKey) {
		return bad("CONIFER_KMS_VRF_KEY", "%q is not projects/P/locations/L/keyRings/R/cryptoKeys/K", c.VRFKey)
	}
	b64, hasB64 := env["CONIFER_VRF_SECRET_CIPHERTEXT"]
	file, hasFile := env["CONIFER_VRF_SECRET_CIPHERTEXT_FILE"]
	switch {
	case hasB64 && hasFile:
		return bad("CONIFER_VRF_SECRET_CIPHERTEXT_FILE", "set together with CONIFER_VRF_SECRET_CIPHERTEXT; give exactly one")
	case hasB64:
		ct, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return bad("CONIFER_VRF_SECRET_CIPHERTEXT", "not standard base64: %v", err)
		}
		c.VRFCiphertext = ct
	case hasFile:
		ct, err := os.ReadFile(file)
		if err != nil {
			return bad("CONIFER_VRF_SECRET_CIPHERTEXT_FILE", "couldn't read: %v", err)
		}
		c.VRFCiphertext = ct
	default:
		return bad("CONIFER_VRF_SECRET_CIPHERTEXT", "required (or CONIFER_VRF_SECRET_CIPHERTEXT_FILE): the KMS-sealed VRF seed")
	}
	if len(c.VRFCiphertext) == 0 || len(c.VRFCiphertext) > 64<<10 {
		return bad("CONIFER_VRF_SECRET_CIPHERTEXT", "ciphertext is %d bytes; want 1..65536", len(c.VRFCiphertext))
	}
	return nil
}

func (c *Config) readEpoch(env map[string]string) error {
	if !reKeyVersion.MatchString(c.SigningKey) {
		return bad("CONIFER_KMS_SIGNING_KEY", "%q is not .../cryptoKeys/K/cryptoKeyVersions/N", c.SigningKey)
	}
	if !reTopic.MatchString(c.PubSubTopic) {
		return bad("CONIFER_PUBSUB_TOPIC", "%q is not projects/P/topics/T", c.PubSubTopic)
	}
	if c.EpochInvoker != "" {
		a, err := mail.ParseAddress(c.EpochInvoker)
		if err != nil || a.Address != c.EpochInvoker || a.Name != "" {
			return bad("CONIFER_EPOCH_INVOKER", "%q is not a bare email address", c.EpochInvoker)
		}
	}
	c.EpochLeaseTTL = DefaultEpochLeaseTTL
	if err := duration(env, "CONIFER_EPOCH_LEASE_TTL", &c.EpochLeaseTTL, time.Minute, time.Hour); err != nil {
		return err
	}
	return nil
}

func (c *Config) readLimits(env map[string]string) error {
	l := &c.Limits
	if err := rate(env, "CONIFER_UPDATE_RATE", &l.UpdateRate); err != nil {
		return err
	}
	if err := integer(env, "CONIFER_UPDATE_BURST", &l.UpdateBurst, 1, 1_000_000); err != nil {
		return err
	}
	if err := rate(env, "CONIFER_LOOKUP_RATE", &l.LookupRate); err != nil {
		return err
	}
	if err := integer(env, "CONIFER_LOOKUP_BURST", &l.LookupBurst, 1, 1_000_000); err != nil {
		return err
	}
	if err := integer(env, "CONIFER_TRUSTED_PROXIES", &l.TrustedProxies, 0, 10); err != nil {
		return err
	}
	if err := integer(env, "CONIFER_MAX_CONCURRENT", &l.MaxConcurrent, 1, 10_000); err != nil {
		return err
	}
	if err := duration(env, "CONIFER_WAIT_TIMEOUT", &l.WaitTimeout, time.Second, 10*time.Minute); err != nil {
		return err
	}
	if err := duration(env, "CONIFER_WAIT_POLL", &l.WaitPoll, 10*time.Millisecond, 10*time.Second); err != nil {
		return err
	}
	if l.WaitPoll > l.WaitTimeout {
		return bad("CONIFER_WAIT_POLL", "%v is longer than CONIFER_WAIT_TIMEOUT %v", l.WaitPoll, l.WaitTimeout)
	}
	return integer(env, "CONIFER_FEED_CHUNK_BYTES", &l.FeedChunkBytes, 65536, format.MaxChunkSize)
}

func rate(env map[string]string, name string, dst *float64) error {
	s, ok := env[name]
	if !ok {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) || v > 1e6 {
		return bad(name, "%q is not a rate per second in (0, 1e6]", s)
	}
	*dst = v
	return nil
}

func integer(env map[string]string, name string, dst *int, lo, hi int) error {
	s, ok := env[name]
	if !ok {
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return bad(name, "%q is not an integer in [%d, %d]", s, lo, hi)
	}
	*dst = v
	return nil
}

func duration(env map[string]string, name string, dst *time.Duration, lo, hi time.Duration) error {
	s, ok := env[name]
	if !ok {
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < lo || v > hi {
		return bad(name, "%q is not a duration in [%v, %v]", s, lo, hi)
	}
	*dst = v
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func bad(name, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, name, fmt.Sprintf(format, args...))
}
