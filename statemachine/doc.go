// Package statemachine is Conifer's deterministic core: it replays one
// epoch's ordered log records against the users' state, decides which it
// applies, writes the new version of the tree and returns the epoch head.
// The keyserver's epoch function and every third-party verifier run this
// same code on the same records, so it is a pure function of its inputs
// and the stored state: no clock, no randomness, no I/O except through the
// tree.Store and Entries it is given, and output that is byte-identical
// whatever GOMAXPROCS and the scheduler do.
//
// # State
//
// A user is an index: the 32-byte tree key a record's entry names (the
// VRF index of the user id, which the update function checked). Its state
// is its newest applied entry and its newest leaf record; the tree value
// at the index is format.LeafRecordHash of that leaf record. The tree
// never loses a key: an erased user keeps a tombstone entry.
//
// # Rules
//
// Records are decided one at a time in log order, each against the state
// left by all records before it, including earlier records of the same
// epoch (a user may change several times in one epoch; each change is
// checked against the one before). The checks run in this order, and the
// first that fails rejects the record with its code (RejectCode):
//
//	Malformed              the record is not a canonical format.LogRecord
//	                       (every size cap and canonical rule of package
//	                       format applies; the index of the rejection is zero)
//	WrongRealm             entry.realm != Rules.Realm
//
// For an index with no entry (a registration):
//
//	NotRegistered          entry.version != 1
//	RegistrationTombstone  entry.tombstone is set
//	Registration           the record's registration does not authorise it:
//	                       kind registrar: no key in Rules.Registrars has the
//	                       signature's KeyID, or none of those verifies it over
//	                       format.RegistrationMessage(EntryHash(entry));
//	                       kind oidc: the issuer is not in Rules.OIDCIssuers
//	                       (the update function checked the ID token; the
//	                       log keeps only its issuer)
//	QuorumNew              the signatures do not meet entry.policy
//
// For an index whose newest entry is old, with hash H(old):
//
//	WrongRealm             old.realm != entry.realm
//	WrongIndex             old.index != entry.index (Check only)
//	AlreadyRegistered      entry.version == 1 (the only records that carry a
//	                       registration; a tombstoned user cannot re-register,
//	                       it is revived by an update)
//	StaleVersion           entry.version <= old.version
//	VersionGap             entry.version > old.version + 1
//	WrongPrev              entry.prev != H(old)
//	QuorumOld              the signatures do not meet old.policy (authorising
//	                       the change)
//	QuorumNew              the signatures do not meet entry.policy (proving the
//	                       new keys are held; tombstones included)
//
// A policy's quorum is met when at least threshold of its members are: a
// key when the record carries a signature with the key's KeyID that is a
// valid signature by that key over format.SigningMessage(EntryHash(entry)),
// a subpolicy when its own quorum is met. One signature list serves the old
// and the new policy, and each (signature, key) pair is verified once. This
// accepts exactly what format.VerifyUpdateSignatures and
// format.Registration.VerifyRegistrar accept.
//
// A rejected record changes nothing, and later records are decided as if it
// were not there; rejections never abort an epoch. Apply fails only on
// invalid input, a failing store, or stored state that contradicts the tree.
//
// # Signatures
//
// Ed25519 signatures are verified with one rule everywhere: RFC 8032's
// cofactorless equation with canonical S and R compared as bytes, exactly
// as Go's crypto/ed25519 (see verify.go for why not batch verification).
// Apply verifies, in parallel on GOMAXPROCS goroutines, every (signature,
// key) pair its decisions can be foreseen to need: each signature under
// the key its KeyID names in the record's own policy, in the policy of the
// entry the record's prev names (the stored entry, or an earlier record of
// the epoch: no other entry can be its old entry), and the registrar
// signature under the registrar keys with its KeyID. The sequential
// decisions then read these verdicts. Verdicts are a pure function of
// (signature, key, message), so the schedule cannot change an outcome.
//
// # Output
//
// Each applied record gets a leaf record
//
//	LeafRecord{EntryHash: EntryHash(entry), Epoch: Input.Epoch,
//	           Prev: LeafRecordHash(the user's previous leaf record) or zero}
//
// so a user's records form a hash chain of its whole history, several
// links per epoch if it changed several times. Only the last leaf record of
// the epoch goes into the tree. The epoch head is
//
//	EpochHead{Realm: Rules.Realm, Epoch: Input.Epoch, Time: Input.Time,
//	          TreeRoot: the tree root at version Input.Epoch,
//	          UpdateCount: len(Input.Records),
//	          UpdatesRoot: format.UpdatesRoot(Input.Records)}
//
// counting every record, rejected ones included, so verifiers replay
// exactly the same list.
//
// # Trusting the store
//
// Apply reads the state of every index the epoch touches in one
// Entries.Latest call and the tree values of the same indexes in one
// tree.GetBatch call, at version Input.Epoch-1, and refuses to go on
// (ErrInconsistent) unless each stored state is exactly what the tree
// commits to: the index is in the tree if and only if it has a stored
// state, the tree value is LeafRecordHash of the stored leaf record, the
// leaf record names the stored entry's hash and an epoch no later than
// Input.Epoch-1, and the entry is at that index and in the realm. A lying
// or corrupted store therefore makes Apply fail rather than build a wrong
// epoch on top of it.
//
// # Use
//
// The epoch function (and a verifier, on its own store) calls
//
//	out, err := statemachine.Apply(ctx, tree.New(store), entries, statemachine.Input{
//		Rules: rules, Epoch: n, Time: cutTime, Records: records})
//
// then stores out.Applied (the new leaf records and signed entries, which
// Entries must return from epoch n on), commits tree version n with root
// out.Head.TreeRoot, and appends out.HeadBytes to the epoch log. Apply
// itself commits nothing, so a crash anywhere before the commit is
// recovered by calling it again with the same input: tree.Update discards
// the unfinished version, and the output is the same. A verifier compares
// its out.HeadBytes with the keyserver's head byte for byte.
//
// The update function calls Check on each submitted record against the
// user's newest logged entry, so that it only logs records the epoch will
// apply unless another record of the same user comes first.
//
// # Example
//
// Epoch 5 with three records for one user whose stored entry is version 2
// (policy 1-of-{k0}, entry hash H2, leaf record hash L2):
//
//	0: version 3, prev H2, policy 1-of-{k1}, signed by k0 and k1
//	   → applied: leaf record (H3, 5, L2), whose hash is L3
//	1: version 4, prev H3, policy 1-of-{k1}, signed by k0
//	   → rejected, QuorumOld: the old policy is now 1-of-{k1}
//	2: version 4, prev H3, policy 1-of-{k1}, signed by k1
//	   → applied: leaf record (H4, 5, L3)
//
// The user's tree value at version 5 is LeafRecordHash((H4, 5, L3)), its
// history is L2 ← L3 ← LeafRecordHash((H4, 5, L3)), and the head counts 3
// updates. TestMultipleUpdatesInOneEpoch runs a longer version of this.
package statemachine
