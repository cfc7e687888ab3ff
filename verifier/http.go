package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/conifer-kt/conifer/api"
	"github.com/conifer-kt/conifer/format"
)

// endpoint returns the URL of function name: u itself if its path already
// ends in "/name", else u with "/name" appended to its path.
func endpoint(u, name string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	if p.Scheme != "https" && p.Scheme != "http" || p.Host == "" {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", u)
	}
	if p.RawQuery != "" || p.ForceQuery || p.Fragment != "" || p.User != nil {
		return "", fmt.Errorf("%q has a query, fragment or user info", u)
	}
	path := p.EscapedPath()
	if !strings.HasSuffix(path, "/"+name) {
		path = strings.TrimSuffix(path, "/") + "/" + name
	}
	p.Path, p.RawPath = "", ""
	return p.String() + path, nil
}

// maxFeedResponse caps a feed response: a chunk of format.MaxChunkSize in
// base64, and the JSON around it.
const maxFeedResponse = format.MaxChunkSize*4/3 + 4096

// errNotFound means the feed has no such epoch (yet).
var errNotFound = errors.New("feed: no such epoch")

// httpError is a non-2xx answer.
type httpError struct {
	status     int
	body       string
	retryAfter time.Duration
}

func (e *httpError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.status, e.body)
}

// transient reports whether a request that failed with err may succeed
// if repeated.
func transient(err error) bool {
	var he *httpError
	if errors.As(err, &he) {
		return he.status == http.StatusTooManyRequests || he.status == http.StatusRequestTimeout || he.status >= 500
	}
	return !errors.Is(err, context.Canceled)
}

// do sends req and decodes a 200 JSON answer of at most limit bytes
// into out.
func (v *Verifier) do(req *http.Request, limit int64, out any) error {
	resp, err := v.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("couldn't read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		he := &httpError{status: resp.StatusCode, body: string(body[:min(len(body), 512)])}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			he.retryAfter = time.Duration(min(s, 3600)) * time.Second
		}
		return he
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("response longer than %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("couldn't decode response: %w", err)
	}
	if dec.More() {
		return errors.New("couldn't decode response: trailing data")
	}
	return nil
}

// fetchChunk gets part p of epoch n's bundle from the feed and checks that
// it is what was asked for.
func (v *Verifier) fetchChunk(ctx context.Context, n uint64, p uint32) (*format.BundleChunk, error) {
	u := v.feedURL + "?epoch=" + strconv.FormatUint(n, 10) + "&part=" + strconv.FormatUint(uint64(p), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	var fr api.FeedResponse
	if err := v.do(req, maxFeedResponse, &fr); err != nil {
		var he *httpError
		if errors.As(err, &he) && he.status == http.StatusNotFound {
			return nil, fmt.Errorf("%w: epoch %d part %d: %v", errNotFound, n, p, err)
		}
		return nil, fmt.Errorf("couldn't fetch epoch %d part %d: %w", n, p, err)
	}
	c, err := format.ParseBundleChunk(fr.Chunk)
	if err != nil {
		return nil, fmt.Errorf("couldn't fetch epoch %d part %d: %w", n, p, err)
	}
	switch {
	case fr.Epoch != n || fr.Part != p || fr.Parts != c.Parts:
		return nil, fmt.Errorf("couldn't fetch epoch %d part %d: the feed answered epoch %d part %d of %d", n, p, fr.Epoch, fr.Part, fr.Parts)
	case c.Epoch != n || c.Part != p || c.Realm != v.realm.Realm:
		return nil, fmt.Errorf("couldn't fetch epoch %d part %d: got a chunk of realm %q epoch %d part %d", n, p, c.Realm, c.Epoch, c.Part)
	}
	return c, nil
}

// fetchBundle gets every part of epoch n's bundle from the feed and
// reassembles it. It returns an error wrapping errNotFound if the feed
// does not have epoch n.
func (v *Verifier) fetchBundle(ctx context.Context, n uint64) ([]byte, error) {
	first, err := v.fetchChunk(ctx, n, 0)
	if err != nil {
		return nil, err
	}
	set := newChunkSet(first)
	set.add(first)
	for p := uint32(1); p < first.Parts; p++ {
		c, err := v.fetchChunk(ctx, n, p)
		if errors.Is(err, errNotFound) {
			return nil, fmt.Errorf("couldn't fetch epoch %d: part %d vanished", n, p)
		}
		if err != nil {
			return nil, err
		}
		if !set.matches(c) {
			return nil, fmt.Errorf("couldn't fetch epoch %d: %w: part %d is of another bundle (the feed changed?)", n, errChunks, p)
		}
		set.add(c)
		if set.size > format.MaxBundleSize {
			return nil, fmt.Errorf("couldn't fetch epoch %d: %w: more than %d bytes", n, errChunks, format.MaxBundleSize)
		}
	}
	data, err := set.join()
	if err != nil {
		return nil, fmt.Errorf("couldn't fetch epoch %d: %w", n, err)
	}
	return data, nil
}

// postRatify sends one cosignature line to Ratify.
func (v *Verifier) postRatify(ctx context.Context, n uint64, line string) (*api.RatifyResponse, error) {
	body, err := json.Marshal(&api.RatifyRequest{Epoch: n, Signature: line})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.ratifyURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var rr api.RatifyResponse
	if err := v.do(req, 64<<10, &rr); err != nil {
		return nil, fmt.Errorf("couldn't ratify epoch %d: %w", n, err)
	}
	if rr.Epoch != n {
		return nil, fmt.Errorf("couldn't ratify epoch %d: the answer is about epoch %d", n, rr.Epoch)
	}
	return &rr, nil
}
