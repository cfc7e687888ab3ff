package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/conifer-kt/conifer/statemachine"
)

// TestBucketsModel compares the token buckets with a simple model over a
// random schedule of requests from a few keys.
func TestBucketsModel(t *testing.T) {
	const rate, burst = 2.0, 3
	b := newBuckets(rate, burst, 1000)
	type state struct {
		tokens float64
		last   time.Time
	}
	model := map[string]*state{}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1_700_000_000, 0)
	for i := 0; i < 5000; i++ {
		now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		key := fmt.Sprint(rng.IntN(4))
		s, ok := model[key]
		if !ok {
			s = &state{tokens: burst, last: now}
			model[key] = s
		}
		s.tokens = min(burst, s.tokens+now.Sub(s.last).Seconds()*rate)
		s.last = now
		want := s.tokens >= 1
		if want {
			s.tokens--
		}
		got, wait := b.take(key, now)
		if got != want {
			t.Fatalf("step %d key %s: got %v, model %v", i, key, got, want)
		}
		if !got {
			// After the announced wait a token is there.
			if ok2 := s.tokens+wait.Seconds()*rate >= 1-1e-9; !ok2 || wait <= 0 {
				t.Fatalf("step %d: retry after %v is too short", i, wait)
			}
		}
	}
}

func TestBucketsEviction(t *testing.T) {
	b := newBuckets(1, 1, 2)
	now := time.Unix(0, 0)
	for _, k := range []string{"a", "b"} {
		if ok, _ := b.take(k, now); !ok {
			t.Fatal(k)
		}
	}
	if ok, _ := b.take("a", now); ok {
		t.Fatal("a has no token left")
	}
	// "c" evicts the least recently used key, "b"; "a" stays limited.
	b.take("c", now)
	if ok, _ := b.take("a", now); ok {
		t.Fatal("a was forgotten instead of b")
	}
	if ok, _ := b.take("b", now); !ok {
		t.Fatal("evicted b should start full")
	}
	if b.lru.Len() != 2 || len(b.byKey) != 2 {
		t.Fatalf("%d keys kept", b.lru.Len())
	}
}

func TestRetrySeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 10 * time.Second: 10} {
		if got := retrySeconds(d); got != want {
			t.Errorf("%v: %d, want %d", d, got, want)
		}
	}
}

func TestClientIP(t *testing.T) {
	cases := []struct {
		xff     []string
		proxies int
		want    string
	}{
		{nil, 0, "192.0.2.1"},
		{[]string{"203.0.113.9"}, 0, "192.0.2.1"},
		{[]string{"203.0.113.9"}, 1, "203.0.113.9"},
		{[]string{"1.1.1.1, 203.0.113.9"}, 1, "203.0.113.9"}, // the client-written entry is ignored
		{[]string{"1.1.1.1", "203.0.113.9, 10.0.0.1"}, 2, "203.0.113.9"},
		{[]string{"203.0.113.9"}, 2, "192.0.2.1"}, // too few hops
		{[]string{"not-an-ip"}, 1, "192.0.2.1"},
		{[]string{"2001:db8::1"}, 1, "2001:db8::1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.1:5555"
		for _, h := range c.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		if got := ClientIP(r, c.proxies); got != c.want {
			t.Errorf("%v/%d: %s, want %s", c.xff, c.proxies, got, c.want)
		}
	}
}

func TestGate(t *testing.T) {
	g := newGate(2)
	for i, want := range []bool{true, true, false} {
		if got := g.enter(); got != want {
			t.Fatalf("enter %d: %v", i, got)
		}
	}
	g.leave()
	if !g.enter() {
		t.Fatal("slot not given back")
	}
}

func TestQuery(t *testing.T) {
	for q, ok := range map[string]bool{
		"epoch=1":                           true,
		"epoch=0":                           true,
		"epoch=01":                          false,
		"epoch=+1":                          false,
		"epoch=-1":                          false,
		"epoch=":                            false,
		"epoch=1&epoch=2":                   false,
		"epoch=1&bogus=2":                   false,
		"epoch=%zz":                         false,
		"epoch=1&part=2":                    true,
		"part=18446744073709551616&epoch=1": false,
	} {
		r := httptest.NewRequest("GET", "/Feed?"+q, nil)
		p, err := parseQuery(r, "epoch", "part")
		if err == nil {
			_, err = p.uint("epoch")
			if err == nil && p.has("part") {
				_, err = p.uint("part")
			}
		}
		if (err == nil) != ok {
			t.Errorf("%q: err = %v", q, err)
		}
	}
}

func TestJSONLogger(t *testing.T) {
	var buf bytes.Buffer
	l := NewJSONLogger(&buf, slog.LevelDebug)
	l.Debug("d")
	l.Info("i", "k", 1)
	l.Warn("w")
	l.Error("e")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["level"]; ok {
			t.Fatalf("level key kept: %s", line)
		}
		got = append(got, fmt.Sprint(m["severity"], "/", m["message"]))
	}
	if strings.Join(got, " ") != "DEBUG/d INFO/i WARNING/w ERROR/e" {
		t.Fatal(got)
	}
}

func TestRequestID(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Cloud-Trace-Context", "105445AA7843BC8BF206B12000100000/1;o=1")
	if id, traced := requestID(r); !traced || id != "105445aa7843bc8bf206b12000100000" {
		t.Fatal(id, traced)
	}
	r.Header.Set("X-Cloud-Trace-Context", "nonsense")
	a, traced := requestID(r)
	b, _ := requestID(r)
	if traced || len(a) != 32 || a == b {
		t.Fatal(a, b, traced)
	}
	var buf bytes.Buffer
	r.Header.Set("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000")
	requestLogger(NewJSONLogger(&buf, slog.LevelInfo), "proj", r).Info("x")
	if !strings.Contains(buf.String(), `"logging.googleapis.com/trace":"projects/proj/traces/105445aa7843bc8bf206b12000100000"`) {
		t.Fatal(buf.String())
	}
}

// TestRejectionMapping: every reject code has a status and a stable code.
func TestRejectionMapping(t *testing.T) {
	want := map[statemachine.RejectCode]string{
		statemachine.Malformed: "400 malformed", statemachine.WrongRealm: "400 wrong_realm",
		statemachine.WrongIndex: "400 wrong_index", statemachine.NotRegistered: "409 not_registered",
		statemachine.RegistrationTombstone: "400 registration_tombstone",
		statemachine.Registration:          "403 registration_not_authorized",
		statemachine.AlreadyRegistered:     "409 already_registered", statemachine.StaleVersion: "409 stale_version",
		statemachine.VersionGap: "409 version_gap", statemachine.WrongPrev: "409 wrong_prev",
		statemachine.QuorumOld: "403 quorum_not_met", statemachine.QuorumNew: "403 quorum_not_met",
	}
	for code, w := range want {
		e := classify(fmt.Errorf("wrapped: %w", &statemachine.Rejection{Code: code, Reason: "r"}))
		if got := fmt.Sprint(e.status, " ", e.code); got != w {
			t.Errorf("%v: %s, want %s", code, got, w)
		}
	}
	if e := classify(errors.New("boom")); e.status != 500 || e.msg != "internal error" {
		t.Fatalf("%+v", e)
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	writeError(w, &httpError{status: http.StatusTooManyRequests, code: CodeRateLimited, msg: "slow down", retryAfter: 3})
	if w.Code != 429 || w.Header().Get("Retry-After") != "3" {
		t.Fatal(w.Code, w.Header())
	}
	if w.Body.String() != `{"code":"rate_limited","error":"slow down","retry_after_seconds":3}`+"\n" {
		t.Fatal(w.Body.String())
	}
}

func TestParseSigLine(t *testing.T) {
	sig := base64.StdEncoding.EncodeToString(append([]byte{0xce, 0x67, 0x1b, 0x5a}, make([]byte, 72)...))
	good := "— verifier.example/v1 " + sig
	for in, ok := range map[string]bool{
		good:                                  true,
		good + "\n":                           true,
		good + "\n\n":                         false,
		"-- verifier.example/v1 " + sig:       false,
		"— verifier.example/v1  " + sig:       false,
		"— verifier.example/v1 " + sig + " x": false,
		"— verifier.example/v1 " + strings.TrimRight(sig, "="): false,
		"— verifier+x " + sig:                                  false,
		"— v AAA=":                                             false,
		"— v AAAAAA==":                                         true,
	} {
		sl, err := parseSigLine(in)
		if (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if ok && sl.line != strings.TrimSuffix(in, "\n")+"\n" {
			t.Errorf("%q: line %q", in, sl.line)
		}
	}
	sl, _ := parseSigLine(good)
	if sl.name != "verifier.example/v1" || sl.hash != 0xce671b5a || len(sl.sig) != 72 {
		t.Fatalf("%+v", sl)
	}
}

// FuzzParseSigLine: an accepted line re-encodes to itself (with one final
// newline), and parsing that again gives the same fields.
func FuzzParseSigLine(f *testing.F) {
	f.Add("— verifier.example/v1 zmcbWgAAAABpVbkAQdRPopWMr5a4tt1cOHypTAIO8nKu+sbbiovAm8WaTZmq1tbOdLEl3Q4sym9PrKFSyw7ucBY6/f60hI7PUZbfCQ==\n")
	f.Add("— a AAAAAA==")
	f.Add("— a b c")
	f.Fuzz(func(t *testing.T, s string) {
		sl, err := parseSigLine(s)
		if err != nil {
			return
		}
		if sl.line != strings.TrimSuffix(s, "\n")+"\n" {
			t.Fatalf("%q re-encoded as %q", s, sl.line)
		}
		again, err := parseSigLine(sl.line)
		if err != nil || again.name != sl.name || again.hash != sl.hash || !bytes.Equal(again.sig, sl.sig) {
			t.Fatalf("%q: second parse differs: %v", s, err)
		}
	})
}
