// Package api defines the JSON messages of Conifer's HTTP API, shared by the
// functions (server side) and the verifying client.
//
// JSON carries the canonical binary encodings of package format as base64
// (standard encoding, with padding: Go's encoding of []byte). Nothing in
// these JSON documents is hashed or signed as JSON: every signed or hashed
// value travels as its canonical bytes, so the JSON layer can be re-encoded
// freely by proxies without breaking any proof.
//
// Endpoints (each a Cloud Function; in the local stack all are served by one
// process under /<Name>):
//
//	POST /Update      UpdateRequest      → UpdateResponse
//	GET  /Lookup      ?user=ID[&epoch=N][&quorum=K]      → LookupProof
//	GET  /History     ?user=ID[&quorum=K]                → HistoryResponse
//	GET  /Checkpoint                     → text/plain signed note (latest, all co-signatures)
//	GET  /Checkpoint  ?epoch=N[&size=S]  → HeadResponse (head N and its inclusion proof in size S)
//	GET  /Checkpoint  ?from=A&to=B       → ConsistencyResponse
//	GET  /Checkpoint  ?realm=1           → the server's copy of the public realm config (never trusted blindly)
//	GET  /Feed        ?epoch=N[&part=P]  → FeedResponse (one chunk of the epoch bundle)
//	POST /Ratify      RatifyRequest      → RatifyResponse
//
// Every error is an Error document with an HTTP status: 400 malformed,
// 403 unauthorised, 404 unknown epoch/user history, 409 stale version,
// 413 body too large, 429 rate limited and 503 overloaded (both with
// Retry-After), 500 internal.
package api

// MaxRequestBytes caps every request body (HTTP 413 beyond it).
const MaxRequestBytes = 64 << 10

// UpdateRequest registers a user or changes a user's entry.
type UpdateRequest struct {
	// UserID is the identity being registered or updated (e.g. an email
	// address). The server derives the tree index from it with the realm's
	// VRF; it is never stored or published.
	UserID string `json:"user_id"`
	// SignedEntry is a format.SignedEntry: the new entry and the signatures
	// of the old policy's and the new policy's quorums.
	SignedEntry []byte `json:"signed_entry"`
	// Profile is the canonical format.Profile whose commitment the entry
	// carries, and Opening the 16 random bytes of that commitment. Both are
	// empty for a tombstone (erasure).
	Profile []byte `json:"profile,omitempty"`
	Opening []byte `json:"opening,omitempty"`
	// RegistrarSignature (registrations only) is a format.Signature by one of
	// the realm's registrar keys over format.RegistrationMessage(entry hash).
	RegistrarSignature []byte `json:"registrar_signature,omitempty"`
	// IDToken (registrations only) is an OpenID Connect ID token whose
	// verified email equals UserID and whose nonce is format.OIDCNonce(entry hash).
	IDToken string `json:"id_token,omitempty"`
	// Wait asks the server to answer only once an epoch containing the update
	// is published and co-signed by Quorum verifiers (default: the realm's
	// client quorum), returning the lookup proof. The server gives up after
	// its wait limit with 504 and the receipt.
	Wait   bool `json:"wait,omitempty"`
	Quorum *int `json:"quorum,omitempty"`
}

// Receipt says that an update was durably appended to the log.
type Receipt struct {
	// Index is the user's tree key (first 32 bytes of the VRF output).
	Index []byte `json:"index"`
	// Version is the entry version the update installs.
	Version uint64 `json:"version"`
	// LogTime is the update's Spanner commit timestamp (RFC 3339, nanoseconds):
	// its position in the log.
	LogTime string `json:"log_time"`
	// Seq is the random 16-byte id of the log row (tie-break within LogTime).
	Seq []byte `json:"seq"`
	// EpochDeadline is the latest time by which an epoch containing this
	// update is due (RFC 3339): log time plus the realm's MaxEpochInterval.
	EpochDeadline string `json:"epoch_deadline"`
}

// UpdateResponse answers an UpdateRequest.
type UpdateResponse struct {
	Receipt Receipt `json:"receipt"`
	// Proof is set when the request asked to wait.
	Proof *LookupProof `json:"proof,omitempty"`
}

// LookupProof is everything a client needs to verify one user's keys at one
// epoch against its pinned realm config. See client.VerifyLookup for the
// order of checks.
type LookupProof struct {
	Realm  string `json:"realm"`
	UserID string `json:"user_id"`
	// Epoch is the epoch the answer is bound to.
	Epoch uint64 `json:"epoch"`
	// Checkpoint is the signed note (keyserver signature plus every verifier
	// co-signature received so far) of the epoch log at size Epoch+1 or
	// later (CheckpointSize).
	Checkpoint     []byte `json:"checkpoint"`
	CheckpointSize uint64 `json:"checkpoint_size"`
	// Head is the encoded format.EpochHead of Epoch, and HeadProof its RFC
	// 6962 inclusion proof (leaf index Epoch) in the checkpoint's tree.
	Head      []byte   `json:"head"`
	HeadProof [][]byte `json:"head_proof"`
	// VRFProof is the 80-byte ECVRF proof for the user id; its output's first
	// 32 bytes are Index.
	VRFProof []byte `json:"vrf_proof"`
	Index    []byte `json:"index"`
	// TreeProof is the tree's inclusion or absence proof for Index in the
	// head's tree root.
	TreeProof []byte `json:"tree_proof"`
	// For a present user: the leaf record (its hash is the tree value), the
	// signed entry it names, and (unless the entry is a tombstone) the
	// profile and opening matching the entry's commitment.
	LeafRecord  []byte `json:"leaf_record,omitempty"`
	SignedEntry []byte `json:"signed_entry,omitempty"`
	Profile     []byte `json:"profile,omitempty"`
	Opening     []byte `json:"opening,omitempty"`
}

// HistoryRecord is one published version of a user's entry.
type HistoryRecord struct {
	LeafRecord  []byte `json:"leaf_record"`
	SignedEntry []byte `json:"signed_entry"`
}

// HistoryResponse lists every version ever published for a user, oldest
// first, chained by each leaf record's previous-record hash to the leaf
// proven by Lookup.
type HistoryResponse struct {
	Lookup  LookupProof     `json:"lookup"`
	Records []HistoryRecord `json:"records"`
}

// HeadResponse carries one epoch head and its inclusion proof in the epoch
// log of size Size (whose signed checkpoint is Checkpoint).
type HeadResponse struct {
	Epoch      uint64   `json:"epoch"`
	Head       []byte   `json:"head"`
	Size       uint64   `json:"size"`
	Proof      [][]byte `json:"proof"`
	Checkpoint []byte   `json:"checkpoint"`
}

// ConsistencyResponse carries an RFC 6962 consistency proof between two
// sizes of the epoch log.
type ConsistencyResponse struct {
	From  uint64   `json:"from"`
	To    uint64   `json:"to"`
	Proof [][]byte `json:"proof"`
}

// FeedResponse carries one chunk (format.BundleChunk, encoded) of an epoch
// bundle: the head, the signed checkpoint and the epoch's ordered log
// records, which is all a verifier needs to replay the epoch.
type FeedResponse struct {
	Epoch uint64 `json:"epoch"`
	Part  uint32 `json:"part"`
	Parts uint32 `json:"parts"`
	Chunk []byte `json:"chunk"`
}

// RatifyRequest submits a verifier's tlog-cosignature/v1 for an epoch's
// checkpoint.
type RatifyRequest struct {
	Epoch uint64 `json:"epoch"`
	// Signature is the verifier's note signature line ("— name base64\n")
	// over the checkpoint of size Epoch+1.
	Signature string `json:"signature"`
}

// RatifyResponse answers a RatifyRequest.
type RatifyResponse struct {
	Epoch uint64 `json:"epoch"`
	// Cosigners is the number of distinct verifiers that have co-signed the
	// epoch so far.
	Cosigners int `json:"cosigners"`
}

// Error is the body of every non-2xx response.
type Error struct {
	// Code is a stable machine-readable word (e.g. "stale_version",
	// "quorum_not_met", "too_large", "rate_limited").
	Code string `json:"code"`
	// Message says what was wrong, for a human.
	Message string `json:"error"`
	// RetryAfterSeconds repeats the Retry-After header for 429 and 503.
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
}
