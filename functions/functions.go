// Package functions registers Conifer's Cloud Functions entry points with
// the Functions Framework (github.com/GoogleCloudPlatform/functions-framework-go):
//
//	Update, Lookup, History, Checkpoint, Feed, Ratify   HTTP, package handlers
//	Epoch                                              HTTP, epoch.Runner.ServeHTTP (Cloud Scheduler)
//	EpochEvent                                         CloudEvent, epoch.Runner.HandleCloudEvent (Pub/Sub trigger)
//
// It only wires: the configuration comes from the environment (package
// config documents every variable), and the first request of an instance
// builds what its entry point needs (cold start): the realm config, the
// Spanner store, for Update/Lookup/History the VRF key (its seed decrypted
// through Cloud KMS), for Epoch the KMS checkpoint signer and the Pub/Sub
// publisher. A failed start answers 503 not_configured and is retried on a
// later request, at most every RetryStart. The app is shared by all
// requests of the instance.
//
// The Go buildpack builds the package at the module root, so the
// repository root must hold a package that imports this one for its init
// (with FUNCTION_TARGET naming the entry point, the framework serves just
// that one at "/"; without it, each at "/<Name>").
//
// Open builds the same app from an explicit environment, for the local
// stack and tests: App.Handler serves every entry point under /<Name>.
package functions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/conifer-kt/conifer/functions/internal/config"
	"github.com/conifer-kt/conifer/functions/internal/handlers"
)

// RetryStart is the shortest time between two cold-start attempts after a
// failure.
const RetryStart = 5 * time.Second

func init() {
	for _, name := range []string{config.TargetUpdate, config.TargetLookup, config.TargetHistory,
		config.TargetCheckpoint, config.TargetFeed, config.TargetRatify, config.TargetEpoch} {
		functions.HTTP(name, global.httpEntry(name))
	}
	functions.CloudEvent(config.TargetEpochEvent, global.eventEntry)
}

// global is the instance's app, built on first use from os.Environ.
var global = &lazy{environ: os.Environ}

// lazy builds the app once, retrying failures no more often than
// RetryStart.
type lazy struct {
	environ func() []string

	mu      sync.Mutex
	app     *App
	lastTry time.Time
	lastErr error
}

func (l *lazy) get(ctx context.Context) (*App, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.app != nil {
		return l.app, nil
	}
	if l.lastErr != nil && time.Since(l.lastTry) < RetryStart {
		return nil, l.lastErr
	}
	l.lastTry = time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	a, err := Open(ctx, l.environ())
	if err != nil {
		l.lastErr = err
		handlers.NewJSONLogger(os.Stderr, slog.LevelInfo).Error("cold start failed", "error", err.Error())
		return nil, err
	}
	l.app, l.lastErr = a, nil
	return a, nil
}

// httpEntry returns the HTTP entry point name.
func (l *lazy) httpEntry(name string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := l.get(r.Context())
		if err != nil {
			notConfigured(w)
			return
		}
		h := a.entry(name)
		if h == nil {
			notConfigured(w)
			return
		}
		h(w, r)
	}
}

func (l *lazy) eventEntry(ctx context.Context, e event.Event) error {
	a, err := l.get(ctx)
	if err != nil {
		return fmt.Errorf("couldn't start the epoch function: %w", err)
	}
	return a.HandleEpochEvent(ctx, e)
}

// notConfigured answers a request the instance cannot serve: its start
// failed (the reason is in its log), or it was started for another entry
// point.
func notConfigured(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, `{"code":%q,"error":"this function instance could not start or does not serve this entry point; see its log","retry_after_seconds":5}`+"\n", handlers.CodeNotConfigured)
}

// errNotServed is returned for an entry point the configuration excludes.
var errNotServed = errors.New("entry point not served by this instance")
