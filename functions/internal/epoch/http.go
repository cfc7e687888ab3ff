package epoch

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/conifer-kt/conifer/api"
)

// ServeHTTP is the HTTP entry point (Cloud Scheduler): POST or GET runs one
// invocation and answers the Result as JSON, {"epoch": N, "updates": K,
// "skipped": false}; a failure is a 500 with an api.Error body. The
// X-CloudScheduler-ScheduleTime header (stable across retries of one
// firing) is only logged: due-ness is decided from the stored epochs, so a
// retried or overlapping firing does no harm.
func (r *Runner) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost && req.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, api.Error{Code: "method_not_allowed", Message: "use GET or POST"})
		return
	}
	log := r.logger().With("schedule_time", req.Header.Get("X-CloudScheduler-ScheduleTime"))
	res, err := r.Run(req.Context())
	if err != nil {
		log.ErrorContext(req.Context(), "epoch run failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, api.Error{Code: "internal", Message: err.Error()})
		return
	}
	log.InfoContext(req.Context(), "epoch run done", "epoch", res.Epoch, "updates", res.Updates,
		"skipped", res.Skipped, "made", res.Made, "published", res.Published)
	writeJSON(w, http.StatusOK, res)
}

// HandleCloudEvent is the event entry point (a Pub/Sub-triggered function,
// e.g. Cloud Scheduler publishing to a topic): it runs one invocation. An
// error makes the platform retry the event (if retries are enabled);
// a skipped run is not an error.
func (r *Runner) HandleCloudEvent(ctx context.Context, e event.Event) error {
	log := r.logger().With("event_id", e.ID(), "event_type", e.Type())
	res, err := r.Run(ctx)
	if err != nil {
		log.ErrorContext(ctx, "epoch run failed", "error", err)
		return err
	}
	log.InfoContext(ctx, "epoch run done", "epoch", res.Epoch, "updates", res.Updates,
		"skipped", res.Skipped, "made", res.Made, "published", res.Published)
	return nil
}

func (r *Runner) logger() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
