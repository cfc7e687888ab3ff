package handlers

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// query is a request's parsed query string, checked strictly: only the
// allowed parameters, each at most once.
type query struct{ v url.Values }

func parseQuery(r *http.Request, allowed ...string) (query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, errorf(http.StatusBadRequest, CodeMalformed, "bad query string: %v", err)
	}
	for k, vals := range v {
		if !slices.Contains(allowed, k) {
			return query{}, errorf(http.StatusBadRequest, CodeMalformed, "unknown parameter %q (allowed: %v)", k, allowed)
		}
		if len(vals) != 1 {
			return query{}, errorf(http.StatusBadRequest, CodeMalformed, "parameter %q given %d times", k, len(vals))
		}
	}
	return query{v}, nil
}

func (q query) has(name string) bool { return q.v.Has(name) }

func (q query) str(name string) string { return q.v.Get(name) }

// uint parses a decimal parameter without sign or leading zeros.
func (q query) uint(name string) (uint64, error) {
	s := q.v.Get(name)
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, errorf(http.StatusBadRequest, CodeMalformed, "parameter %s=%q is not a decimal number", name, s)
	}
	return n, nil
}

// optInt parses an optional small integer parameter.
func (q query) optInt(name string) (*int, error) {
	if !q.has(name) {
		return nil, nil
	}
	n, err := q.uint(name)
	if err != nil {
		return nil, err
	}
	if n > 1<<20 {
		return nil, errorf(http.StatusBadRequest, CodeMalformed, "parameter %s=%d is too large", name, n)
	}
	i := int(n)
	return &i, nil
}
