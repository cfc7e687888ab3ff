package functions

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/functions/internal/config"
)

// TestColdStartFailure: an instance whose configuration is refused answers
// 503 not_configured with a valid api.Error, logs the reason, and does not
// retry before RetryStart.
func TestColdStartFailure(t *testing.T) {
	calls := 0
	l := &lazy{environ: func() []string {
		calls++
		return []string{"CONIFER_REALM_CONFIG=", "CONIFER_TYPO=1"}
	}}
	h := l.httpEntry(config.TargetLookup)
	for range 3 {
		w := httptest.NewRecorder()
		h(w, httptest.NewRequest("GET", "/Lookup?user=a", nil))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("%d %v", w.Code, w.Header())
		}
		var e api.Error
		dec := json.NewDecoder(w.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || e.Code != "not_configured" || e.RetryAfterSeconds != 5 {
			t.Fatalf("%+v %v", e, err)
		}
	}
	if calls != 1 {
		t.Fatalf("cold start tried %d times within RetryStart", calls)
	}
	l.lastTry = time.Now().Add(-RetryStart)
	if _, err := l.get(context.Background()); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("%v", err)
	}
	if calls != 2 {
		t.Fatalf("no retry after RetryStart (%d)", calls)
	}
	if err := l.eventEntry(context.Background(), newEvent()); err == nil || !strings.Contains(err.Error(), "couldn't start") {
		t.Fatalf("event: %v", err)
	}
}

// TestEntryGating: an instance serves only its FUNCTION_TARGET.
func TestEntryGating(t *testing.T) {
	cfg := &config.Config{Target: config.TargetCheckpoint}
	a := &App{cfg: cfg}
	for _, name := range config.Targets {
		if name == config.TargetCheckpoint {
			continue
		}
		if a.entry(name) != nil {
			t.Errorf("a Checkpoint instance serves %s", name)
		}
	}
	if err := a.HandleEpochEvent(context.Background(), newEvent()); !errors.Is(err, errNotServed) {
		t.Fatalf("%v", err)
	}
}

func newEvent() event.Event {
	e := event.New()
	e.SetID("1")
	e.SetSource("test")
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	return e
}
