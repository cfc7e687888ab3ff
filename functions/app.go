package functions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/spanner"
	"github.com/cloudevents/sdk-go/v2/event"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/conifer-kt/conifer/functions/internal/config"
	"github.com/conifer-kt/conifer/functions/internal/epoch"
	"github.com/conifer-kt/conifer/functions/internal/handlers"
	"github.com/conifer-kt/conifer/functions/internal/kmssign"
	"github.com/conifer-kt/conifer/functions/internal/oidc"
	"github.com/conifer-kt/conifer/functions/internal/publish"
	"github.com/conifer-kt/conifer/functions/internal/spanstore"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/vrf"
)

// App is one instance's wiring: what its entry points need, built once.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	handlers *handlers.Server
	runner   *epoch.Runner
	invoker  *oidc.Invoker
	closers  []func()
}

// Open builds the app from an environment (as os.Environ returns it): it
// reads and checks the configuration, loads the realm config, opens the
// Spanner store and, as the entry points served need them, decrypts the
// VRF seed through KMS and sets up the KMS checkpoint signer, the Pub/Sub
// publisher and the epoch runner.
func Open(ctx context.Context, environ []string) (a *App, err error) {
	cfg, err := config.FromEnv(environ)
	if err != nil {
		return nil, err
	}
	a = &App{cfg: cfg, log: handlers.NewJSONLogger(os.Stdout, cfg.LogLevel)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	rc, err := config.LoadRealm(ctx, cfg.Realm)
	if err != nil {
		return nil, err
	}
	store, err := spanstore.Open(ctx, spanstore.Options{
		Database:     cfg.SpannerDatabase,
		ClientConfig: spanner.ClientConfig{DatabaseRole: cfg.SpannerDatabaseRole},
		Emulator:     cfg.SpannerEmulator != "",
		Realm:        rc,
	})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, store.Close)

	var kc *kms.KeyManagementClient
	if cfg.Needs(config.NeedVRF) || cfg.Needs(config.NeedEpoch) {
		if kc, err = kms.NewKeyManagementClient(ctx, kmsOptions(cfg)...); err != nil {
			return nil, fmt.Errorf("couldn't create KMS client: %w", err)
		}
		a.closers = append(a.closers, func() { kc.Close() })
	}

	var vk *vrf.PrivateKey
	if cfg.Needs(config.NeedVRF) {
		seed, err := kmssign.OpenVRFSeed(ctx, kc, cfg.VRFKey, rc.Realm, cfg.VRFCiphertext)
		if err != nil {
			return nil, fmt.Errorf("couldn't open the VRF seed: %w", err)
		}
		vk, err = vrf.NewPrivateKey(seed)
		clear(seed)
		if err != nil {
			return nil, fmt.Errorf("couldn't load the VRF key: %w", err)
		}
	}

	a.handlers, err = handlers.New(handlers.Options{
		Store:    store,
		Realm:    rc,
		VRF:      vk,
		IDTokens: oidc.New(rc, oidc.Options{}),
		Limits:   cfg.Limits,
		Project:  cfg.Project,
		Log:      a.log,
	})
	if err != nil {
		return nil, err
	}

	if cfg.Needs(config.NeedEpoch) {
		signer, err := kmssign.NewSigner(ctx, kc, cfg.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("couldn't set up the checkpoint signer: %w", err)
		}
		pub, err := publish.New(ctx, publish.Options{Topic: cfg.PubSubTopic, Realm: rc.Realm})
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, pub.Close)
		rules, err := statemachine.RulesFromRealm(rc)
		if err != nil {
			return nil, err
		}
		a.runner = &epoch.Runner{
			Store:     store,
			Realm:     rc,
			Rules:     rules,
			Signer:    signer,
			Publisher: pub,
			Holder:    holder(),
			LeaseTTL:  cfg.EpochLeaseTTL,
			Now:       time.Now,
			Log:       a.log.With("function", config.TargetEpoch),
		}
		if cfg.EpochInvoker != "" {
			a.invoker = oidc.NewInvoker(cfg.EpochInvoker, oidc.GoogleIssuer, oidc.Options{})
		}
	}
	return a, nil
}

// kmsOptions points the KMS client at the emulator when one is configured
// (loopback only, plaintext; config refuses it on Cloud Run).
func kmsOptions(cfg *config.Config) []option.ClientOption {
	if cfg.KMSEndpoint == "" {
		return nil
	}
	return []option.ClientOption{
		option.WithEndpoint(cfg.KMSEndpoint),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled(),
	}
}

// holder names this instance in the epoch lease: the Cloud Run revision
// (if any) and a random id.
func holder() string {
	var b [8]byte
	rand.Read(b[:])
	if rev := os.Getenv("K_REVISION"); rev != "" {
		return rev + "/" + hex.EncodeToString(b[:])
	}
	return "instance/" + hex.EncodeToString(b[:])
}

// Close releases the app's clients.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// entry returns the handler of entry point name, nil if this instance
// does not serve it.
func (a *App) entry(name string) http.HandlerFunc {
	if !a.cfg.Serves(name) {
		return nil
	}
	switch name {
	case config.TargetUpdate:
		return a.handlers.Update
	case config.TargetLookup:
		return a.handlers.Lookup
	case config.TargetHistory:
		return a.handlers.History
	case config.TargetCheckpoint:
		return a.handlers.Checkpoint
	case config.TargetFeed:
		return a.handlers.Feed
	case config.TargetRatify:
		return a.handlers.Ratify
	case config.TargetEpoch:
		if a.runner == nil {
			return nil
		}
		return a.epochHTTP
	}
	return nil
}

// epochHTTP is the Epoch entry point: with CONIFER_EPOCH_INVOKER set, the
// caller must present a Google-signed ID token of that account (Cloud
// Run's IAM has admitted it already; this is the second check), then the
// runner does one invocation.
func (a *App) epochHTTP(w http.ResponseWriter, r *http.Request) {
	if a.invoker != nil {
		if err := a.invoker.Check(r.Context(), r); err != nil {
			status, code := http.StatusForbidden, "not_invoker"
			if errors.Is(err, oidc.ErrUnavailable) {
				status, code = http.StatusServiceUnavailable, handlers.CodeUnavailable
			}
			a.log.Warn("epoch call refused", "error", err.Error())
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"code":%q,"error":"the caller is not the configured epoch invoker"}`+"\n", code)
			return
		}
	}
	a.runner.ServeHTTP(w, r)
}

// HandleEpochEvent is the EpochEvent entry point (a Pub/Sub-triggered
// run of the epoch function).
func (a *App) HandleEpochEvent(ctx context.Context, e event.Event) error {
	if a.runner == nil || !a.cfg.Serves(config.TargetEpochEvent) {
		return errNotServed
	}
	return a.runner.HandleCloudEvent(ctx, e)
}

// Handler serves every entry point this instance serves under /<Name>
// (the local stack and tests; Cloud Functions routes by itself).
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, name := range config.Targets {
		if h := a.entry(name); h != nil {
			mux.HandleFunc("/"+name, h)
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notConfigured(w) })
	return mux
}
