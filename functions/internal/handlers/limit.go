package handlers

import (
	"container/list"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// buckets is a set of token buckets keyed by a string (a user index in
// hex, or a caller address), each holding up to burst tokens and refilled
// at rate tokens per second. It remembers at most max keys; when full it
// forgets the least recently used one, which can only make the limit more
// lenient for that key (a forgotten bucket starts full again). Safe for
// concurrent use. Time comes from the caller, so tests need no sleeps.
type buckets struct {
	rate  float64
	burst float64
	max   int

	mu    sync.Mutex
	byKey map[string]*list.Element
	lru   list.List // front = most recently used; values are *bucket
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// maxBucketKeys bounds a limiter's memory (about 100 bytes a key).
const maxBucketKeys = 100_000

func newBuckets(rate float64, burst int, max int) *buckets {
	return &buckets{rate: rate, burst: float64(burst), max: max, byKey: make(map[string]*list.Element)}
}

// take spends one token of key's bucket at time now. If the bucket is
// empty it returns false and how long until a token is available.
func (b *buckets) take(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var bk *bucket
	if e, found := b.byKey[key]; found {
		b.lru.MoveToFront(e)
		bk = e.Value.(*bucket)
		if el := now.Sub(bk.last).Seconds(); el > 0 {
			bk.tokens = math.Min(b.burst, bk.tokens+el*b.rate)
			bk.last = now
		}
	} else {
		if b.lru.Len() >= b.max {
			old := b.lru.Back()
			b.lru.Remove(old)
			delete(b.byKey, old.Value.(*bucket).key)
		}
		bk = &bucket{key: key, tokens: b.burst, last: now}
		b.byKey[key] = b.lru.PushFront(bk)
	}
	if bk.tokens >= 1 {
		bk.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - bk.tokens) / b.rate * float64(time.Second)))
	return false, wait
}

// retrySeconds rounds a wait up to whole seconds for Retry-After (at
// least 1).
func retrySeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(s, 1)
}

// ClientIP returns the address a request's rate limit is keyed by.
//
// With trustedProxies = 0 it is the TCP peer (RemoteAddr): right for the
// local stack, where clients connect directly. Behind proxies, each proxy
// appends the address it received the request from to X-Forwarded-For, so
// the last trustedProxies entries were written by trusted machines and
// everything before them by the client, who can write anything there. The
// caller is therefore the entry trustedProxies positions from the right:
// on Cloud Run (one Google front end, CONIFER_TRUSTED_PROXIES=1, the
// default there) the last entry. The first ("leftmost") entry is never
// used: a client can forge it to get a fresh bucket per request. If the
// header has fewer entries than trustedProxies, or the entry is not an IP
// address, the TCP peer is used.
func ClientIP(r *http.Request, trustedProxies int) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if trustedProxies <= 0 {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, part := range strings.Split(h, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	if len(hops) < trustedProxies {
		return peer
	}
	ip := net.ParseIP(hops[len(hops)-trustedProxies])
	if ip == nil {
		return peer
	}
	return ip.String()
}

// gate caps the requests in flight in one instance.
type gate chan struct{}

func newGate(n int) gate { return make(gate, n) }

// enter takes a slot without waiting; false when all are taken.
func (g gate) enter() bool {
	select {
	case g <- struct{}{}:
		return true
	default:
		return false
	}
}

func (g gate) leave() { <-g }
