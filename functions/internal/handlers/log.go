package handlers

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
)

// NewJSONLogger returns a logger writing one JSON object per line in the
// shape Cloud Logging parses from a function's output: "severity"
// (DEBUG, INFO, WARNING, ERROR) instead of slog's "level", "message"
// instead of "msg", and "time" in RFC 3339.
func NewJSONLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				a.Key = "severity"
				switch lvl := a.Value.Any().(slog.Level); {
				case lvl >= slog.LevelError:
					a.Value = slog.StringValue("ERROR")
				case lvl >= slog.LevelWarn:
					a.Value = slog.StringValue("WARNING")
				case lvl >= slog.LevelInfo:
					a.Value = slog.StringValue("INFO")
				default:
					a.Value = slog.StringValue("DEBUG")
				}
			case slog.MessageKey:
				a.Key = "message"
			}
			return a
		},
	}))
}

// traceRE matches the trace id of X-Cloud-Trace-Context
// ("TRACE_ID/SPAN_ID;o=1", TRACE_ID 32 hex digits).
var traceRE = regexp.MustCompile(`^([0-9a-fA-F]{32})(?:/|$)`)

// requestID returns the request's id for logs: the trace id of
// X-Cloud-Trace-Context if present (so the lines join the platform's
// request log), else 16 random bytes in hex. traced says which.
func requestID(r *http.Request) (id string, traced bool) {
	if m := traceRE.FindStringSubmatch(r.Header.Get("X-Cloud-Trace-Context")); m != nil {
		return strings.ToLower(m[1]), true
	}
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]), false
}

// requestLogger returns the logger of one request, carrying its id and,
// when the id is a trace id and the project is known, Cloud Logging's
// trace field.
func requestLogger(base *slog.Logger, project string, r *http.Request) *slog.Logger {
	id, traced := requestID(r)
	l := base.With("request_id", id)
	if traced && project != "" {
		l = l.With("logging.googleapis.com/trace", "projects/"+project+"/traces/"+id)
	}
	return l
}
