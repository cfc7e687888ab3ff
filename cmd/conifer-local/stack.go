package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"cloud.google.com/go/spanner"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/emulators/kmsemu"
	"github.com/conifer-kt/conifer/emulators/pubsubemu"
	"github.com/conifer-kt/conifer/emulators/spanneremu"
	"github.com/conifer-kt/conifer/functions"

	"github.com/conifer-kt/conifer/infra"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/vrf"
)

const (
	kmsParent     = "projects/conifer-local/locations/global"
	keyRingID     = "conifer"
	signingKeyID  = "checkpoint"
	vrfKeyID      = "vrf-seed"
	databaseID    = "conifer"
	topicID       = "epochs"
	verifierName  = "verifier-1"
	verifierSubID = "verifier-1"
)

// stack is a running local stack.
type stack struct {
	dir     string
	realm   *realm.Config
	kms     *kmsemu.Server
	span    *spanneremu.Emulator
	pubsub  *pubsubemu.Emulator
	spanner *spanner.Client
	app     *functions.App
	sub     string // the verifier's subscription
	// verifier state, set by startVerifier
	verifierInfo string
	closers      []func()
}

func (st *stack) realmPath() string     { return filepath.Join(st.dir, "realm.json") }
func (st *stack) registrarPath() string { return filepath.Join(st.dir, "registrar.key") }
func (st *stack) snapshotPath() string  { return filepath.Join(st.dir, "spanner-snapshot.json") }
func (st *stack) verifierDir() string   { return filepath.Join(st.dir, "verifier") }
func (st *stack) verifierStatus() string {
	if st.verifierInfo == "" {
		return "not running (--verifier=false)"
	}
	return st.verifierInfo
}

// startStack starts the emulators and provisions (or reloads) every
// resource, then builds the functions app.
func startStack(ctx context.Context, o options, log *slog.Logger) (st *stack, err error) {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create %s: %w", o.dir, err)
	}
	st = &stack{dir: o.dir}
	defer func() {
		if err != nil {
			st.Close(log)
		}
	}()

	// Cloud KMS emulator with its keys on disk.
	t0 := time.Now()
	st.kms, err = kmsemu.Start(ctx, kmsemu.Options{Addr: "127.0.0.1:0", StateFile: filepath.Join(o.dir, "kms-state.json")})
	if err != nil {
		return nil, fmt.Errorf("couldn't start the KMS emulator: %w", err)
	}
	st.closers = append(st.closers, func() { st.kms.Close() })
	kc, err := kms.NewKeyManagementClient(ctx, st.kms.ClientOptions()...)
	if err != nil {
		return nil, err
	}
	st.closers = append(st.closers, func() { kc.Close() })
	signingKey, vrfKey, err := provisionKMS(ctx, kc)
	if err != nil {
		return nil, err
	}
	log.Info("KMS emulator ready", "addr", st.kms.Addr(), "took", time.Since(t0).Round(time.Millisecond))

	// Realm: VRF seed (sealed under KMS), registrar key, verifier key.
	rc, sealedPath, err := st.provisionRealm(ctx, o, kc, signingKey, vrfKey)
	if err != nil {
		return nil, err
	}
	st.realm = rc

	// Official emulators.
	t0 = time.Now()
	st.span, err = spanneremu.Start(ctx)
	if err != nil {
		return nil, err
	}
	st.closers = append(st.closers, func() { st.span.Stop() })
	st.pubsub, err = pubsubemu.Start(ctx)
	if err != nil {
		return nil, err
	}
	st.closers = append(st.closers, func() { st.pubsub.Stop() })
	log.Info("Spanner and Pub/Sub emulators ready", "spanner", st.span.Host, "pubsub", st.pubsub.Host, "took", time.Since(t0).Round(time.Millisecond))
	// The Spanner and Pub/Sub clients the functions build read these.
	for _, kv := range append(st.span.Env(), st.pubsub.Env()...) {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}

	db, err := st.span.CreateDatabase(ctx, databaseID, infra.SchemaDDL())
	if err != nil {
		return nil, err
	}
	st.spanner, err = st.span.NewClient(ctx, db)
	if err != nil {
		return nil, err
	}
	st.closers = append(st.closers, st.spanner.Close)
	if snap, err := readSnapshot(st.snapshotPath()); err != nil {
		return nil, err
	} else if snap != nil {
		n, err := importSnapshot(ctx, st.spanner, snap)
		if err != nil {
			return nil, fmt.Errorf("couldn't restore %s (move it away or use --reset): %w", st.snapshotPath(), err)
		}
		log.Info("restored Spanner snapshot", "rows", n)
	}

	topic, err := st.pubsub.CreateTopic(ctx, topicID)
	if err != nil {
		return nil, err
	}
	if st.sub, err = st.pubsub.CreateSubscription(ctx, verifierSubID, topic, true); err != nil {
		return nil, err
	}

	env := []string{
		"CONIFER_REALM_CONFIG=" + st.realmPath(),
		"CONIFER_SPANNER_DATABASE=" + db,
		"SPANNER_EMULATOR_HOST=" + st.span.Host,
		"PUBSUB_EMULATOR_HOST=" + st.pubsub.Host,
		"CONIFER_KMS_ENDPOINT=" + st.kms.Addr(),
		"CONIFER_KMS_VRF_KEY=" + vrfKey,
		"CONIFER_VRF_SECRET_CIPHERTEXT_FILE=" + sealedPath,
		"CONIFER_KMS_SIGNING_KEY=" + signingKey + "/cryptoKeyVersions/1",
		"CONIFER_PUBSUB_TOPIC=" + topic,
		"CONIFER_EPOCH_LEASE_TTL=1m",
	}
	st.app, err = functions.Open(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("couldn't start the functions: %w", err)
	}
	st.closers = append(st.closers, st.app.Close)
	return st, nil
}

// Close saves a final snapshot and stops everything, newest first.
func (st *stack) Close(log *slog.Logger) {
	if st.spanner != nil && st.app != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if n, err := saveSnapshot(ctx, st.spanner, st.snapshotPath()); err != nil {
			log.Error("final snapshot failed: state since the last snapshot is lost", "error", err)
		} else {
			log.Info("snapshot written", "rows", n, "file", st.snapshotPath())
		}
		cancel()
	}
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
	st.closers = nil
}

// provisionKMS creates the key ring and keys unless the emulator's state
// file already has them, and returns the signing key's and the VRF
// sealing key's names.
func provisionKMS(ctx context.Context, kc *kms.KeyManagementClient) (signing, seal string, err error) {
	ring := kmsParent + "/keyRings/" + keyRingID
	if _, err := kc.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: ring}); status.Code(err) == codes.NotFound {
		if _, err := kc.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: kmsParent, KeyRingId: keyRingID}); err != nil {
			return "", "", fmt.Errorf("couldn't create the key ring: %w", err)
		}
	} else if err != nil {
		return "", "", err
	}
	ensure := func(id string, purpose kmspb.CryptoKey_CryptoKeyPurpose, alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) (string, error) {
		name := ring + "/cryptoKeys/" + id
		if _, err := kc.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: name}); status.Code(err) != codes.NotFound {
			return name, err
		}
		_, err := kc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: id,
			CryptoKey: &kmspb.CryptoKey{Purpose: purpose, VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: alg}}})
		if err != nil {
			return "", fmt.Errorf("couldn't create KMS key %s: %w", id, err)
		}
		return name, nil
	}
	if signing, err = ensure(signingKeyID, kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_ED25519); err != nil {
		return "", "", err
	}
	if seal, err = ensure(vrfKeyID, kmspb.CryptoKey_ENCRYPT_DECRYPT, kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION); err != nil {
		return "", "", err
	}
	return signing, seal, nil
}

// provisionRealm makes (once) the sealed VRF seed, the registrar key, the
// verifier key and the realm config naming them; later starts reload them
// and check that the realm config still names the KMS signing key.
func (st *stack) provisionRealm(ctx context.Context, o options, kc *kms.KeyManagementClient, signingKey, vrfKey string) (*realm.Config, string, error) {
	logPub, err := functions.SigningPublicKey(ctx, kc, signingKey+"/cryptoKeyVersions/1")
	if err != nil {
		return nil, "", err
	}
	if rc, err := realm.Load(st.realmPath()); err == nil {
		logKey, err := checkpoint.VerifierKey(rc.Realm, 0x01, logPub)
		if err != nil {
			return nil, "", err
		}
		if rc.LogKey != logKey {
			return nil, "", fmt.Errorf("%s names log key %q but the KMS signing key is %q: the state directory is inconsistent (use --reset)", st.realmPath(), rc.LogKey, logKey)
		}
		return rc, filepath.Join(st.dir, "vrf-seed.sealed"), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}

	rc := &realm.Config{
		Realm:            o.realm,
		MinEpochInterval: realm.Duration{Duration: o.minEpoch},
		MaxEpochInterval: realm.Duration{Duration: o.maxEpoch},
		MaxHeadAge:       realm.Duration{Duration: 10 * o.maxEpoch},
	}
	if rc.LogKey, err = checkpoint.VerifierKey(o.realm, 0x01, logPub); err != nil {
		return nil, "", err
	}
	seed := make([]byte, vrf.SeedSize)
	rand.Read(seed)
	sealed, err := functions.SealVRFSeed(ctx, kc, vrfKey, o.realm, seed)
	if err != nil {
		return nil, "", err
	}
	vk, err := vrf.NewPrivateKey(seed)
	clear(seed)
	if err != nil {
		return nil, "", err
	}
	rc.VRFPublicKey = vk.Public().Bytes()
	sealedPath := filepath.Join(st.dir, "vrf-seed.sealed")
	if err := writeFileAtomic(sealedPath, sealed, 0o600); err != nil {
		return nil, "", err
	}

	regPub, err := newKeyFile(st.registrarPath())
	if err != nil {
		return nil, "", err
	}
	rc.Registration.Registrars = [][]byte{regPub}

	if o.verifier {
		if err := os.MkdirAll(st.verifierDir(), 0o700); err != nil {
			return nil, "", err
		}
		vPub, err := newKeyFile(filepath.Join(st.verifierDir(), "cosigner.key"))
		if err != nil {
			return nil, "", err
		}
		vkey, err := checkpoint.VerifierKey(verifierName, 0x04, vPub)
		if err != nil {
			return nil, "", err
		}
		rc.Verifiers = []string{vkey}
		rc.Quorum = 1
	}
	if err := rc.Validate(); err != nil {
		return nil, "", err
	}
	b, err := rc.Marshal()
	if err != nil {
		return nil, "", err
	}
	if err := writeFileAtomic(st.realmPath(), b, 0o644); err != nil {
		return nil, "", err
	}
	return rc, sealedPath, nil
}

// newKeyFile writes a new Ed25519 key in the conifer CLI's key-file format
// ("CONIFER-PRIVATE-KEY " base64(seed)), mode 0600, and returns its public key.
func newKeyFile(path string) (ed25519.PublicKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	line := "CONIFER-PRIVATE-KEY " + base64.StdEncoding.EncodeToString(seed) + "\n"
	if err := writeFileAtomic(path, []byte(line), 0o600); err != nil {
		return nil, fmt.Errorf("couldn't write %s: %w", path, err)
	}
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), nil
}
