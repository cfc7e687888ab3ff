package config

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/realm"
)

// base is a complete local-stack environment (every entry point).
func base() map[string]string {
	return map[string]string{
		"CONIFER_REALM_CONFIG":          "{}",
		"CONIFER_SPANNER_DATABASE":      "projects/local/instances/conifer/databases/conifer",
		"SPANNER_EMULATOR_HOST":         "127.0.0.1:9010",
		"CONIFER_KMS_ENDPOINT":          "127.0.0.1:9011",
		"CONIFER_KMS_VRF_KEY":           "projects/local/locations/global/keyRings/conifer/cryptoKeys/vrf",
		"CONIFER_VRF_SECRET_CIPHERTEXT": base64.StdEncoding.EncodeToString([]byte("sealed seed")),
		"CONIFER_KMS_SIGNING_KEY":       "projects/local/locations/global/keyRings/conifer/cryptoKeys/signing/cryptoKeyVersions/1",
		"CONIFER_PUBSUB_TOPIC":          "projects/local/topics/epochs",
		"PATH":                          "/bin",
	}
}

func environ(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func TestDefaults(t *testing.T) {
	c, err := FromEnv(environ(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Target != "" || c.OnCloudRun || c.SpannerEmulator != "127.0.0.1:9010" || string(c.VRFCiphertext) != "sealed seed" {
		t.Fatalf("%+v", c)
	}
	if c.Limits != DefaultLimits() || c.LogLevel != slog.LevelInfo || c.EpochLeaseTTL != DefaultEpochLeaseTTL {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestCloudRunFunction(t *testing.T) {
	// What Terraform gives the lookup function.
	env := map[string]string{
		"K_SERVICE":                     "conifer-lookup",
		"FUNCTION_TARGET":               "Lookup",
		"CONIFER_PROJECT":               "my-project",
		"CONIFER_REALM_CONFIG":          "gs://my-config-bucket/realm/abc.json",
		"CONIFER_SPANNER_DATABASE":      "projects/my-project/instances/conifer/databases/conifer",
		"CONIFER_KMS_VRF_KEY":           "projects/my-project/locations/us-central1/keyRings/conifer/cryptoKeys/vrf-secret-envelope",
		"CONIFER_VRF_SECRET_CIPHERTEXT": "AAEC",
	}
	c, err := FromEnv(environ(env))
	if err != nil {
		t.Fatal(err)
	}
	if !c.OnCloudRun || c.Limits.TrustedProxies != 1 || !c.Needs(NeedVRF) || c.Needs(NeedEpoch) || !c.Serves("Lookup") || c.Serves("Update") {
		t.Fatalf("%+v", c)
	}
	// The checkpoint function needs neither the VRF nor the signing key.
	delete(env, "CONIFER_KMS_VRF_KEY")
	delete(env, "CONIFER_VRF_SECRET_CIPHERTEXT")
	env["FUNCTION_TARGET"] = "Checkpoint"
	if _, err := FromEnv(environ(env)); err != nil {
		t.Fatal(err)
	}
	// The epoch function needs the signing key and topic.
	env["FUNCTION_TARGET"] = "Epoch"
	if _, err := FromEnv(environ(env)); err == nil || !strings.Contains(err.Error(), "CONIFER_KMS_SIGNING_KEY") {
		t.Fatalf("epoch without signing key: %v", err)
	}
	env["CONIFER_KMS_SIGNING_KEY"] = "projects/my-project/locations/us-central1/keyRings/conifer/cryptoKeys/checkpoint-signing/cryptoKeyVersions/1"
	env["CONIFER_PUBSUB_TOPIC"] = "projects/my-project/topics/epochs"
	env["CONIFER_EPOCH_INVOKER"] = "conifer-epoch-invoker@my-project.iam.gserviceaccount.com"
	c, err = FromEnv(environ(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.EpochInvoker == "" || !c.Needs(NeedEpoch) {
		t.Fatalf("%+v", c)
	}
}

func TestRefused(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(m map[string]string)
		field string
	}{
		{"typo", func(m map[string]string) { m["CONIFER_LOOKUP_RATES"] = "5" }, "CONIFER_LOOKUP_RATES"},
		{"bad target", func(m map[string]string) { m["FUNCTION_TARGET"] = "Delete" }, "FUNCTION_TARGET"},
		{"no realm", func(m map[string]string) { delete(m, "CONIFER_REALM_CONFIG") }, "CONIFER_REALM_CONFIG"},
		{"bad gs url", func(m map[string]string) { m["CONIFER_REALM_CONFIG"] = "gs://x" }, "CONIFER_REALM_CONFIG"},
		{"bad database", func(m map[string]string) { m["CONIFER_SPANNER_DATABASE"] = "projects/p/databases/d" }, "CONIFER_SPANNER_DATABASE"},
		{"bad role", func(m map[string]string) { m["CONIFER_SPANNER_DATABASE_ROLE"] = "a-b" }, "CONIFER_SPANNER_DATABASE_ROLE"},
		{"emulator on cloud run", func(m map[string]string) {
			m["K_SERVICE"], m["CONIFER_PROJECT"] = "x", "my-project"
			delete(m, "CONIFER_KMS_ENDPOINT")
		}, "SPANNER_EMULATOR_HOST"},
		{"kms emulator on cloud run", func(m map[string]string) {
			m["K_SERVICE"], m["CONIFER_PROJECT"] = "x", "my-project"
			delete(m, "SPANNER_EMULATOR_HOST")
		}, "CONIFER_KMS_ENDPOINT"},
		{"pubsub emulator on cloud run", func(m map[string]string) {
			m["K_SERVICE"], m["CONIFER_PROJECT"] = "x", "my-project"
			delete(m, "SPANNER_EMULATOR_HOST")
			delete(m, "CONIFER_KMS_ENDPOINT")
			m["PUBSUB_EMULATOR_HOST"] = "127.0.0.1:1"
		}, "PUBSUB_EMULATOR_HOST"},
		{"no project on cloud run", func(m map[string]string) { m["K_SERVICE"] = "x" }, "CONIFER_PROJECT"},
		{"remote kms endpoint", func(m map[string]string) { m["CONIFER_KMS_ENDPOINT"] = "10.0.0.1:443" }, "CONIFER_KMS_ENDPOINT"},
		{"kms endpoint no port", func(m map[string]string) { m["CONIFER_KMS_ENDPOINT"] = "127.0.0.1" }, "CONIFER_KMS_ENDPOINT"},
		{"vrf key", func(m map[string]string) { m["CONIFER_KMS_VRF_KEY"] = "vrf" }, "CONIFER_KMS_VRF_KEY"},
		{"two ciphertexts", func(m map[string]string) { m["CONIFER_VRF_SECRET_CIPHERTEXT_FILE"] = "x" }, "CONIFER_VRF_SECRET_CIPHERTEXT_FILE"},
		{"no ciphertext", func(m map[string]string) { delete(m, "CONIFER_VRF_SECRET_CIPHERTEXT") }, "CONIFER_VRF_SECRET_CIPHERTEXT"},
		{"bad base64", func(m map[string]string) { m["CONIFER_VRF_SECRET_CIPHERTEXT"] = "AA=" }, "CONIFER_VRF_SECRET_CIPHERTEXT"},
		{"empty ciphertext", func(m map[string]string) { m["CONIFER_VRF_SECRET_CIPHERTEXT"] = "" }, "CONIFER_VRF_SECRET_CIPHERTEXT"},
		{"missing file", func(m map[string]string) {
			delete(m, "CONIFER_VRF_SECRET_CIPHERTEXT")
			m["CONIFER_VRF_SECRET_CIPHERTEXT_FILE"] = filepath.Join(t.TempDir(), "none")
		}, "CONIFER_VRF_SECRET_CIPHERTEXT_FILE"},
		{"signing key not a version", func(m map[string]string) {
			m["CONIFER_KMS_SIGNING_KEY"] = "projects/p/locations/l/keyRings/r/cryptoKeys/k"
		}, "CONIFER_KMS_SIGNING_KEY"},
		{"topic", func(m map[string]string) { m["CONIFER_PUBSUB_TOPIC"] = "epochs" }, "CONIFER_PUBSUB_TOPIC"},
		{"invoker", func(m map[string]string) { m["CONIFER_EPOCH_INVOKER"] = "Epoch <a@b.c>" }, "CONIFER_EPOCH_INVOKER"},
		{"lease ttl", func(m map[string]string) { m["CONIFER_EPOCH_LEASE_TTL"] = "5s" }, "CONIFER_EPOCH_LEASE_TTL"},
		{"rate zero", func(m map[string]string) { m["CONIFER_UPDATE_RATE"] = "0" }, "CONIFER_UPDATE_RATE"},
		{"rate nan", func(m map[string]string) { m["CONIFER_LOOKUP_RATE"] = "NaN" }, "CONIFER_LOOKUP_RATE"},
		{"burst", func(m map[string]string) { m["CONIFER_UPDATE_BURST"] = "0" }, "CONIFER_UPDATE_BURST"},
		{"proxies", func(m map[string]string) { m["CONIFER_TRUSTED_PROXIES"] = "-1" }, "CONIFER_TRUSTED_PROXIES"},
		{"concurrency", func(m map[string]string) { m["CONIFER_MAX_CONCURRENT"] = "0" }, "CONIFER_MAX_CONCURRENT"},
		{"wait timeout", func(m map[string]string) { m["CONIFER_WAIT_TIMEOUT"] = "1h" }, "CONIFER_WAIT_TIMEOUT"},
		{"poll > timeout", func(m map[string]string) {
			m["CONIFER_WAIT_TIMEOUT"], m["CONIFER_WAIT_POLL"] = "1s", "5s"
		}, "CONIFER_WAIT_POLL"},
		{"chunk", func(m map[string]string) { m["CONIFER_FEED_CHUNK_BYTES"] = "10000000" }, "CONIFER_FEED_CHUNK_BYTES"},
		{"log level", func(m map[string]string) { m["CONIFER_LOG_LEVEL"] = "loud" }, "CONIFER_LOG_LEVEL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := base()
			c.edit(m)
			_, err := FromEnv(environ(m))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field+":") {
				t.Fatalf("err = %v, want ErrInvalid naming %s", err, c.field)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	m := base()
	file := filepath.Join(t.TempDir(), "vrf.sealed")
	if err := os.WriteFile(file, []byte{1, 2, 3}, 0o600); err != nil {
		t.Fatal(err)
	}
	delete(m, "CONIFER_VRF_SECRET_CIPHERTEXT")
	for k, v := range map[string]string{
		"CONIFER_VRF_SECRET_CIPHERTEXT_FILE": file,
		"CONIFER_UPDATE_RATE":                "0.5",
		"CONIFER_UPDATE_BURST":               "3",
		"CONIFER_LOOKUP_RATE":                "7",
		"CONIFER_LOOKUP_BURST":               "9",
		"CONIFER_TRUSTED_PROXIES":            "2",
		"CONIFER_MAX_CONCURRENT":             "11",
		"CONIFER_WAIT_TIMEOUT":               "5s",
		"CONIFER_WAIT_POLL":                  "50ms",
		"CONIFER_FEED_CHUNK_BYTES":           "65536",
		"CONIFER_LOG_LEVEL":                  "debug",
		"CONIFER_EPOCH_LEASE_TTL":            "2m",
	} {
		m[k] = v
	}
	c, err := FromEnv(environ(m))
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{UpdateRate: 0.5, UpdateBurst: 3, LookupRate: 7, LookupBurst: 9, TrustedProxies: 2,
		MaxConcurrent: 11, WaitTimeout: 5 * time.Second, WaitPoll: 50 * time.Millisecond, FeedChunkBytes: 65536}
	if c.Limits != want || c.LogLevel != slog.LevelDebug || c.EpochLeaseTTL != 2*time.Minute || string(c.VRFCiphertext) != "\x01\x02\x03" {
		t.Fatalf("%+v", c)
	}
}

func TestLoadRealm(t *testing.T) {
	doc := `{"realm":"example.com","vrf_public_key":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) +
		`","log_key":"k","registration":{"registrars":["` + base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)) + `"]}}`
	c, err := LoadRealm(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	if c.Realm != "example.com" {
		t.Fatal(c.Realm)
	}
	path := filepath.Join(t.TempDir(), "realm.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRealm(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRealm(context.Background(), `{"realm":"x","bogus":1}`); !errors.Is(err, realm.ErrInvalid) {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := LoadRealm(context.Background(), filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := LoadRealm(context.Background(), "gs://bad"); err == nil {
		t.Fatal("bad gs URL accepted")
	}
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, make([]byte, maxRealmBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRealm(context.Background(), big); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Fatalf("oversized: %v", err)
	}
}
