// Package handlers serves Conifer's HTTP API (package api): the Update,
// Lookup, History, Checkpoint, Feed and Ratify functions. A Server is built
// from explicit dependencies (the store, the VRF key, the realm config, an
// ID token verifier, a clock, a logger, limits), so the Cloud Functions
// (package functions), the local stack and tests construct the same thing.
//
// Every request goes through one edge (Server.serve): a request id and
// logger, the instance's concurrency cap, the method, the per-caller rate
// limit for readers, then the endpoint, which decodes, calls the core
// (statemachine.Check, the tree, the checkpoint package) and encodes. Its
// error is turned into an HTTP status and an api.Error once, there.
//
// # Endpoints
//
//	POST /Update      api.UpdateRequest → api.UpdateResponse (see update for the order of checks)
//	GET  /Lookup      ?user=ID[&epoch=N][&quorum=K] → api.LookupProof
//	GET  /History     ?user=ID[&epoch=N][&quorum=K] → api.HistoryResponse
//	GET  /Checkpoint  [?realm=1 | ?epoch=N[&size=S] | ?from=A&to=B]
//	GET  /Feed        ?epoch=N[&part=P] → api.FeedResponse
//	POST /Ratify      api.RatifyRequest → api.RatifyResponse
//
// Query strings are strict: unknown or repeated parameters and numbers
// with signs or leading zeros are 400. Bodies are capped at
// api.MaxRequestBytes (413) and decoded strictly (unknown fields, trailing
// data: 400).
//
// A lookup is bound to the newest epoch co-signed by the quorum asked for
// (default: the realm's), or to epoch=N. It costs three database round
// trips: the epoch row, then the tree path (one ReadNodes) and the user's
// state, concurrently. Before a proof leaves, the server verifies it
// against the head's tree root and the stored entry and profile against
// the leaf record: an inconsistent store answers 500, never a wrong proof.
//
// # Errors
//
// Every non-2xx answer is an api.Error with a stable code:
//
//	400 malformed, wrong_realm, wrong_index, commitment_mismatch,
//	    registration_tombstone, bad_signature
//	403 quorum_not_met, registration_not_authorized, id_token_rejected,
//	    unknown_verifier
//	404 not_found               405 method_not_allowed (with Allow)
//	409 stale_version, version_gap, wrong_prev, already_registered,
//	    not_registered, update_rejected
//	410 erased                  413 too_large
//	429 rate_limited            (Retry-After)
//	500 internal                (details only in the log)
//	503 overloaded, unavailable, not_cosigned, not_configured (Retry-After
//	    where waiting helps)
//	504 wait_timeout            (body: the UpdateResponse with the receipt,
//	    as package api specifies; header X-Conifer-Error-Code: wait_timeout)
//
// # Limits
//
// Per instance, in memory (Cloud Functions may run many instances, so the
// limits are per instance, not global): a token bucket per user index for
// updates, a token bucket per caller address (see ClientIP) for the
// readers and Ratify, and a cap on requests in flight (503 overloaded).
// An Update that waits for an epoch gives its slot back while it waits.
//
// # Logs
//
// One JSON line per request (NewJSONLogger: Cloud Logging's "severity"
// and "message" fields) with the request id (the trace id of
// X-Cloud-Trace-Context when present, else random), the function, status,
// latency and, for errors, the code and cause. Logs never contain user
// ids, ID tokens, profiles or openings: an update is logged by the hex of
// its tree index.
package handlers
