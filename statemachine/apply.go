package statemachine

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/tree"
)

// Latest is a user's newest applied state: the leaf record in the tree and
// the signed entry it names.
type Latest struct {
	// LeafRecord is the encoded format.LeafRecord whose LeafRecordHash is
	// the user's tree value.
	LeafRecord []byte
	// SignedEntry is the encoded format.SignedEntry whose entry the leaf
	// record names.
	SignedEntry []byte
}

// Entries reads users' newest applied state.
//
// Promises an implementation keeps:
//
//   - Latest returns the state as of committed version (epoch) version:
//     for each of indexes that has an entry at that epoch, the Latest of
//     its newest applied record with epoch ≤ version; indexes with none
//     are absent from the map, and no other index is in it.
//   - It reads one consistent snapshot, in one batched call (one round
//     trip for a remote store); indexes are distinct and sorted.
//   - It is only called with committed versions; the state of the epoch
//     being made is never visible to it.
//
// Apply does not trust it: it checks every answer against the tree (see
// ErrInconsistent).
type Entries interface {
	Latest(ctx context.Context, version uint64, indexes [][32]byte) (map[[32]byte]Latest, error)
}

// Input is one epoch to make.
type Input struct {
	// Rules are the realm's rules.
	Rules Rules
	// Epoch is the epoch being made, ≥ 1; the tree's base version (the
	// latest committed one) is Epoch-1.
	Epoch uint64
	// Time is the epoch time in Unix milliseconds, chosen by the caller and
	// recorded durably before Apply so a redo makes the same head.
	Time uint64
	// Records are the encoded format.LogRecords of the epoch, in log
	// order; at most format.MaxBundleRecords.
	Records [][]byte
}

// Applied is a record that was applied.
type Applied struct {
	// Position is the record's index in Input.Records.
	Position int
	// Index is the user's tree key.
	Index [32]byte
	// Version is the entry's version.
	Version uint64
	// EntryHash is format.EntryHash of the entry.
	EntryHash [32]byte
	// LeafRecord is the new encoded format.LeafRecord: EntryHash, the
	// epoch, and the LeafRecordHash of the user's previous leaf record
	// (zero for a registration).
	LeafRecord []byte
	// SignedEntry is the record's encoded format.SignedEntry (without its
	// registration).
	SignedEntry []byte
	// Tombstone is set if the entry erases the user.
	Tombstone bool
}

// Rejected is a record that was refused. Rejections are part of the
// epoch's outcome, not errors: the epoch goes on without the record.
type Rejected struct {
	// Position is the record's index in Input.Records.
	Position int
	// Index is the entry's index, zero if the record did not parse.
	Index [32]byte
	// Code is the rule that refused it.
	Code RejectCode
	// Reason says why in words, naming the rule and the values involved.
	Reason string
}

// Output is a made epoch.
type Output struct {
	// Head is the epoch head.
	Head format.EpochHead
	// HeadBytes is its encoding: leaf Epoch of the epoch log.
	HeadBytes []byte
	// Applied lists the applied records in log order; a user may have
	// several, each chaining to the one before.
	Applied []Applied
	// Rejected lists the refused records in log order. Every position of
	// Input.Records is in exactly one of Applied and Rejected.
	Rejected []Rejected
}

// user is the state of one index while an epoch is decided.
type user struct {
	cur      current
	leafHash [32]byte // LeafRecordHash of the newest leaf record
	changed  bool     // an entry was applied this epoch
}

// Apply makes epoch in.Epoch: it decides every record in log order against
// the state as left by the earlier records (of this and earlier epochs),
// writes the new tree version in.Epoch through t without committing it,
// and returns the head and the decisions.
//
// A user's tree value is LeafRecordHash of its newest leaf record. Every
// applied record gets a leaf record, chained to the user's previous one;
// only the last one of the epoch goes into the tree.
//
// Steps: parse every record (in parallel); read the touched users' state
// from e at version in.Epoch-1 and check it against the tree (one batched
// call each), meanwhile verifying the signatures under the keys the
// records name themselves (in parallel); verify those under the stored
// and earlier policies the records' prevs name (in parallel); decide the
// records in order; update the tree; make the head.
// The output depends only on the inputs and the stored state, never on
// GOMAXPROCS or scheduling.
//
// Apply returns an error, and no output, only if the input is invalid
// (ErrInvalidInput), the stored state is inconsistent (ErrInconsistent) or
// a store fails; rejected records never abort it. The tree version it
// wrote is then incomplete; tree.Update discards it on the next attempt.
func Apply(ctx context.Context, t *tree.Tree, e Entries, in Input) (*Output, error) {
	rs, err := newRuleSet(in.Rules)
	if err != nil {
		return nil, err
	}
	if in.Epoch == 0 {
		return nil, fmt.Errorf("%w: epoch 0 is the genesis and is never applied", ErrInvalidInput)
	}
	if len(in.Records) > format.MaxBundleRecords {
		return nil, fmt.Errorf("%w: %d records, more than %d in one epoch", ErrInvalidInput, len(in.Records), format.MaxBundleRecords)
	}
	base := in.Epoch - 1

	recs := parseAll(in.Records)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	indexes := touched(rs, recs)
	// Verify what the records name by themselves while reading the state
	// (a round trip or two to a remote store).
	own := make(chan struct{})
	go func() {
		defer close(own)
		verifyOwn(rs, recs)
	}()
	users, err := load(ctx, t, e, rs, base, indexes)
	<-own
	if err != nil {
		return nil, err
	}
	verifyOld(rs, recs, users)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, changes := decideAll(rs, in.Epoch, recs, users, indexes)
	root, err := t.Update(ctx, base, changes)
	if err != nil {
		return nil, fmt.Errorf("couldn't update tree to version %d: %w", in.Epoch, err)
	}

	out.Head = format.EpochHead{
		Realm:       rs.Realm,
		Epoch:       in.Epoch,
		Time:        in.Time,
		TreeRoot:    root,
		UpdateCount: uint64(len(in.Records)),
		UpdatesRoot: format.UpdatesRoot(in.Records),
	}
	out.HeadBytes, err = out.Head.Marshal()
	if err != nil {
		panic("statemachine: couldn't encode a head of validated input: " + err.Error())
	}
	return out, nil
}

// parseAll parses every record, in parallel.
func parseAll(raw [][]byte) []*record {
	recs := make([]*record, len(raw))
	parallel(len(recs), 64, func(i int) { recs[i] = parseRecord(i, raw[i]) })
	return recs
}

// touched returns the distinct indexes of the well-formed records in the
// realm, sorted.
func touched(rs *ruleSet, recs []*record) [][32]byte {
	var indexes [][32]byte
	for _, r := range recs {
		if r.err == nil && r.entry.Realm == rs.Realm {
			indexes = append(indexes, r.entry.Index)
		}
	}
	slices.SortFunc(indexes, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(indexes)
}

// decideAll decides the records in order, updating users, and returns the
// decisions and the tree changes (the newest leaf record of every user
// that changed, in index order).
func decideAll(rs *ruleSet, epoch uint64, recs []*record, users map[[32]byte]*user, indexes [][32]byte) (*Output, []tree.Change) {
	out := &Output{}
	for _, r := range recs {
		var idx [32]byte
		var u *user
		var cur *current
		if r.err == nil {
			idx = r.entry.Index
			if u = users[idx]; u != nil {
				cur = &u.cur
			}
		}
		if rej := rs.decide(cur, r); rej != nil {
			out.Rejected = append(out.Rejected, Rejected{Position: r.pos, Index: idx, Code: rej.Code, Reason: rej.Reason})
			continue
		}
		leaf := format.LeafRecord{EntryHash: r.hash, Epoch: epoch}
		if u == nil {
			u = &user{}
			users[idx] = u
		} else {
			leaf.Prev = u.leafHash
		}
		lb, err := leaf.Marshal()
		if err != nil {
			panic("statemachine: couldn't encode leaf record: " + err.Error())
		}
		u.cur = current{entry: r.entry, hash: r.hash}
		u.leafHash = format.LeafRecordHash(lb)
		u.changed = true
		out.Applied = append(out.Applied, Applied{
			Position:    r.pos,
			Index:       idx,
			Version:     r.entry.Version,
			EntryHash:   r.hash,
			LeafRecord:  lb,
			SignedEntry: bytes.Clone(r.signed),
			Tombstone:   r.entry.Tombstone,
		})
	}
	var changes []tree.Change
	for _, idx := range indexes {
		if u := users[idx]; u != nil && u.changed {
			changes = append(changes, tree.Change{Key: tree.Key(idx), Value: tree.Hash(u.leafHash)})
		}
	}
	return out, changes
}

// load reads the state of indexes at version base and checks it against
// the tree: an index has a stored state if and only if the tree holds it,
// and then the tree value is LeafRecordHash of the stored leaf record,
// which names the stored entry, which is at that index, in the rules'
// realm, and applied no later than base.
func load(ctx context.Context, t *tree.Tree, e Entries, rs *ruleSet, base uint64, indexes [][32]byte) (map[[32]byte]*user, error) {
	users := make(map[[32]byte]*user, len(indexes))
	if len(indexes) == 0 {
		return users, nil
	}
	latest, err := e.Latest(ctx, base, indexes)
	if err != nil {
		return nil, fmt.Errorf("couldn't read users' state at epoch %d: %w", base, err)
	}
	keys := make([]tree.Key, len(indexes))
	for i, idx := range indexes {
		keys[i] = tree.Key(idx)
	}
	values, found, err := t.GetBatch(ctx, base, keys)
	if err != nil {
		return nil, fmt.Errorf("couldn't read tree values at version %d: %w", base, err)
	}
	checked := make([]*user, len(indexes))
	errs := make([]error, len(indexes))
	parallel(len(indexes), 64, func(i int) {
		idx := indexes[i]
		l, ok := latest[idx]
		switch {
		case ok && !found[i]:
			errs[i] = fmt.Errorf("%w: index %x has a stored entry but is not in tree version %d", ErrInconsistent, idx[:], base)
		case !ok && found[i]:
			errs[i] = fmt.Errorf("%w: index %x is in tree version %d but has no stored entry", ErrInconsistent, idx[:], base)
		case ok:
			checked[i], errs[i] = checkLatest(rs, base, idx, values[i], l)
		}
	})
	for i, idx := range indexes {
		if errs[i] != nil {
			return nil, errs[i] // the first in index order, whatever the schedule
		}
		if checked[i] != nil {
			users[idx] = checked[i]
		}
	}
	if len(latest) > len(users) {
		for idx := range latest {
			if users[idx] == nil {
				return nil, fmt.Errorf("%w: stored state returned index %x, which was not asked for", ErrInconsistent, idx[:])
			}
		}
	}
	return users, nil
}

// checkLatest checks one stored state against the tree value at idx.
func checkLatest(rs *ruleSet, base uint64, idx [32]byte, value tree.Hash, l Latest) (*user, error) {
	bad := func(what string, args ...any) error {
		return fmt.Errorf("%w: index %x: %s", ErrInconsistent, idx[:], fmt.Sprintf(what, args...))
	}
	leafHash := format.LeafRecordHash(l.LeafRecord)
	if leafHash != value {
		return nil, bad("tree value %x at version %d is not the hash %x of the stored leaf record", value[:], base, leafHash[:])
	}
	leaf, err := format.ParseLeafRecord(l.LeafRecord)
	if err != nil {
		return nil, bad("couldn't parse stored leaf record: %v", err)
	}
	if leaf.Epoch > base {
		return nil, bad("stored leaf record is from epoch %d, after epoch %d", leaf.Epoch, base)
	}
	s, entry, err := format.ParseSignedEntry(l.SignedEntry)
	if err != nil {
		return nil, bad("couldn't parse stored signed entry: %v", err)
	}
	h := format.EntryHash(s.Entry)
	if h != leaf.EntryHash {
		return nil, bad("stored entry's hash %x is not the one %x its leaf record names", h[:], leaf.EntryHash[:])
	}
	if entry.Index != idx {
		return nil, bad("stored entry has index %x", entry.Index[:])
	}
	if entry.Realm != rs.Realm {
		return nil, bad("stored entry is in realm %q, not %q", entry.Realm, rs.Realm)
	}
	return &user{cur: current{entry: entry, hash: h}, leafHash: leafHash}, nil
}

// Signatures are verified ahead of the decisions, in parallel, for every
// (signature, key) pair the decisions can be foreseen to ask about; the
// decisions then read these verdicts, and compute on the spot any they
// need beyond them, so this is purely an optimisation. verifyOwn covers the
// pairs a record names by itself and verifyOld those that need the stored
// state; Apply runs verifyOwn while it reads that state.

// verifyOwn verifies each well-formed record's signatures under the keys
// with their KeyIDs in its own policy, and a registration's registrar
// signature under the registrars with its KeyID.
func verifyOwn(rs *ruleSet, recs []*record) {
	var jobs []verdictJob
	for _, r := range recs {
		if r.err != nil || r.entry.Realm != rs.Realm {
			continue
		}
		wantPolicy(r, &r.entry.Policy)
		if reg := r.lr.Registration; reg != nil && reg.Kind == format.RegistrationRegistrar {
			for i, k := range rs.Registrars {
				if rs.registrarIDs[i] == reg.Registrar.KeyID {
					r.want(regSig, k)
				}
			}
		}
		jobs = pendingJobs(jobs, r)
	}
	runJobs(jobs)
}

// verifyOld verifies each update's signatures under the keys with their
// KeyIDs in the policy of the entry its Prev names: the stored entry or an
// earlier record of the epoch, the only entry that can be its old entry.
// It must run after verifyOwn has returned.
func verifyOld(rs *ruleSet, recs []*record, users map[[32]byte]*user) {
	byHash := make(map[[32]byte]*format.Entry, len(users)+len(recs))
	for _, u := range users {
		byHash[u.cur.hash] = u.cur.entry
	}
	for _, r := range recs {
		if r.err == nil && r.entry.Realm == rs.Realm {
			byHash[r.hash] = r.entry
		}
	}
	var jobs []verdictJob
	for _, r := range recs {
		if r.err != nil || r.entry.Realm != rs.Realm || r.entry.Version == 1 {
			continue
		}
		if old, ok := byHash[r.entry.Prev]; ok {
			wantPolicy(r, &old.Policy)
			jobs = pendingJobs(jobs, r)
		}
	}
	runJobs(jobs)
}

// precompute is verifyOwn then verifyOld.
func precompute(rs *ruleSet, recs []*record, users map[[32]byte]*user) {
	verifyOwn(rs, recs)
	verifyOld(rs, recs, users)
}

// verdictJob is verdict i of record r.
type verdictJob struct {
	r *record
	i int
}

// pendingJobs appends r's verdicts not computed yet.
func pendingJobs(jobs []verdictJob, r *record) []verdictJob {
	for i := range r.verdicts {
		if !r.verdicts[i].done {
			jobs = append(jobs, verdictJob{r, i})
		}
	}
	return jobs
}

// runJobs computes the verdicts in parallel. Each job writes only its own
// verdict, and no verdict slice grows meanwhile.
func runJobs(jobs []verdictJob) {
	parallel(len(jobs), 1, func(i int) { jobs[i].r.run(jobs[i].i) })
}

// wantPolicy adds a pending verdict for each signature of r whose KeyID
// names a key of p.
func wantPolicy(r *record, p *format.Policy) {
	sigs := r.lr.SignedEntry.Signatures
	var walk func(p *format.Policy)
	walk = func(p *format.Policy) {
		for _, k := range p.Keys {
			id := format.KeyIDOf(k)
			for i := range sigs {
				if sigs[i].KeyID == id {
					r.want(i, k)
				}
			}
		}
		for _, s := range p.Subpolicies {
			walk(s)
		}
	}
	walk(p)
}
