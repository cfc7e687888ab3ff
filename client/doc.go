// Package client is Conifer's verifying client: it looks users' keys up,
// registers and updates entries, and checks every answer of the keyserver
// against a realm config pinned out of band (shipped with the app, like a
// CA bundle), so that a client accepts only answers that every other
// client holding the same epoch would also get, that the realm's verifiers
// have co-signed, and that are fresh.
//
// The pure part is VerifyLookup and VerifyHistory (and the same methods
// of Pinned, which parses the pinned keys once); Client adds HTTP (the API
// of package api), the remembered checkpoint (State), rollback and fork
// detection, and evidence files. Prepare builds updates from a verified
// lookup.
//
// # Verifying a lookup
//
// An answer (api.LookupProof) for user id U, against the pinned realm R
// with verifier quorum q and the client's clock now, is accepted iff all of
// these hold. They are checked in this order and the first failure is
// returned as an *Error wrapping the sentinel named:
//
//  1. the answer's realm is R (ErrWrongRealm) and its user id is U
//     (ErrWrongUser);
//  2. the checkpoint is a well-formed signed note, every signature by a
//     pinned key verifies, the keyserver's pinned key signed it, and its
//     origin is R with no extension lines (ErrCheckpointSignature;
//     ErrCosignature if only a verifier's signature is bad; ErrWrongRealm
//     for another origin);
//  3. at least q distinct pinned verifiers co-signed it (ErrVerifierQuorum);
//  4. the claimed checkpoint size is the note's, Epoch < size, and the
//     head is leaf Epoch of the log (RFC 6962 inclusion proof against the
//     checkpoint's root) (ErrHeadInclusion);
//  5. the head is a canonical epoch head of realm R and epoch Epoch (and, for
//     VerifyLookupAt, the epoch asked for) (ErrHead);
//  6. now − head time ≤ R's MaxHeadAge (ErrHeadTooOld) and head time − now
//     ≤ MaxClockSkew (ErrHeadInFuture) — not for VerifyLookupAt;
//  7. the VRF proof verifies under R's VRF key for vrf.Input(R, U) and the
//     first 32 bytes of its output are Index (ErrVRF);
//  8. the tree proof is canonical and proves, under the head's tree root,
//     either that Index is absent (no leaf record given) or that Index holds
//     LeafRecordHash(leaf record) (ErrTreeProof), where the leaf record is
//     well-formed and not dated after the head (ErrLeafRecord);
//  9. a present user's signed entry is well-formed, EntryHash(its entry)
//     is the leaf record's entry hash, and the entry's realm and index are R
//     and Index; an absent user has no entry (ErrEntry);
//  10. CommitProfile(opening, profile) is the entry's commitment and the
//     profile is canonical; a tombstone or an absent user has neither
//     (ErrProfileCommitment).
//
// VerifyLookup does not check the signatures inside the signed entry: they
// are not covered by the leaf record (which names the entry's hash), the
// realm's verifiers checked them before co-signing (the authorised-change
// guarantee), and VerifyHistory checks them all. A Result therefore carries
// the entry but no signatures. The cost of VerifyLookup is one VRF
// verification, one keyserver signature, the co-signatures present in the
// note (at least q), and about fifty SHA-256 hashes.
//
// # Verifying a history
//
// An api.HistoryResponse is accepted iff its lookup passes every check
// above, and then (ErrHistoryChain unless said otherwise):
//
//   - an absent user has no records; a present one has exactly
//     Entry.Version records, oldest first;
//   - record i is a well-formed leaf record and signed entry, the leaf
//     record names EntryHash(entry), its Prev is LeafRecordHash of record
//     i−1 (zero for the first), and its epoch is not before record i−1's nor
//     after the lookup's;
//   - every entry is of realm R and the proven index, and follows the
//     previous one (format.CheckTransition: version 1 with zero Prev first,
//     then version+1 with Prev = EntryHash of the previous entry);
//   - every entry is signed by a quorum of its own policy and of the
//     previous entry's policy (format.VerifyUpdateSignatures)
//     (ErrHistorySignature);
//   - the last record's leaf record is the one the lookup proved.
//
// # Rollback and fork
//
// A Client remembers the newest checkpoint it has verified in a State (a
// FileState across runs). For every checkpoint it accepts afterwards:
//
//   - same size: the roots must be equal, else ErrFork;
//   - larger: it fetches the consistency proof from the remembered size
//     and verifies it (RFC 6962), else ErrFork; then it remembers the new
//     checkpoint;
//   - smaller: it fetches the consistency proof from the new (older) size
//     to the remembered one, else ErrRollback; the remembered one stays.
//
// A server that refuses such a proof (a 4xx answer) fails the same way,
// since it signed both checkpoints. Network errors and 5xx answers are not
// verification failures; the checkpoint is then neither accepted nor
// remembered.
//
// # Evidence
//
// Every verification failure is an *Error carrying Evidence: the answer that
// failed and, for forks and rollbacks, both signed notes and the proof. With
// WithEvidenceDir the client writes it as JSON to a new file (mode 0600).
// Evidence is what a user shows a verifier or the public: everything in it
// that matters is signed by the keyserver.
//
// # Example
//
// Look up alice, then rotate her device key:
//
//	cfg, _ := realm.Load("realm.json")
//	c, _ := client.New(cfg, "https://keys.example.com",
//		client.WithState(&client.FileState{Path: "checkpoint.note"}))
//	res, err := c.Lookup(ctx, "alice@example.com")
//	if err != nil { ... }                        // *client.Error: do not use the keys
//	key, _ := res.Key("pgp")
//
//	next, _ := client.GenerateKey(rand.Reader)
//	policy, _ := client.RotateKey(&res.Entry.Policy, device.Public().(ed25519.PublicKey), next.Public().(ed25519.PublicKey))
//	u, _ := client.Prepare(res, client.Change{Policy: policy}, rand.Reader)
//	u.Sign(device, next)                         // old policy and new policy
//	_, err = c.Submit(ctx, "alice@example.com", u, true)
package client
