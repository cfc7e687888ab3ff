package spanstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/spanner"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/functions/internal/storage"
)

// epochSelect reads an Epochs row with its co-signatures; a WHERE / ORDER
// BY clause follows.
const epochSelect = `SELECT e.Epoch, e.Head, e.Checkpoint, e.HeadProof, e.PrevCutTs, e.CutTs,
  e.Updates, e.CommittedAt, e.PublishedAt,
  ARRAY(SELECT AS STRUCT c.Verifier AS Verifier, c.Signature AS Signature
        FROM Cosignatures AS c WHERE c.Epoch = e.Epoch) AS Cosignatures
FROM Epochs AS e `

type cosigRow struct {
	Verifier  string
	Signature []byte
}

// queryEpoch runs an epochSelect query and returns its first row
// (ErrNotFound if none).
func (s *Store) queryEpoch(ctx context.Context, stmt spanner.Statement) (*storage.Epoch, error) {
	it := s.client.Single().Query(ctx, stmt)
	defer it.Stop()
	row, err := it.Next()
	if errors.Is(err, iterator.Done) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodeEpoch(row)
}

func decodeEpoch(row *spanner.Row) (*storage.Epoch, error) {
	var (
		n               int64
		head, cp, proof []byte
		prevCut         spanner.NullTime
		cut, committed  time.Time
		updates         int64
		published       spanner.NullTime
		cosigs          []*cosigRow
	)
	if err := row.Columns(&n, &head, &cp, &proof, &prevCut, &cut, &updates, &committed, &published, &cosigs); err != nil {
		return nil, err
	}
	if n < 0 || len(proof)%32 != 0 {
		return nil, fmt.Errorf("corrupt Epochs row %d (head proof of %d bytes)", n, len(proof))
	}
	e := &storage.Epoch{
		Epoch:       uint64(n),
		Head:        head,
		PrevCut:     fromNullTime(prevCut),
		Cut:         cut.UTC(),
		UpdateCount: updates,
		CommittedAt: committed.UTC(),
		Published:   published.Valid,
	}
	for i := 0; i < len(proof); i += 32 {
		e.HeadProof = append(e.HeadProof, [32]byte(proof[i:i+32]))
	}
	note, names, err := assembleNote(cp, cosigs)
	if err != nil {
		return nil, fmt.Errorf("corrupt checkpoint of epoch %d: %w", n, err)
	}
	e.Checkpoint, e.Cosigners = note, names
	return e, nil
}

// assembleNote appends the stored co-signatures to the keyserver-signed
// note, in the order checkpoint.Merge writes them (sorted by key name, then
// key ID), so that the note is the same whatever order they arrived in.
// They were verified when stored (AddCosignature).
func assembleNote(signed []byte, cosigs []*cosigRow) ([]byte, []string, error) {
	if !bytes.HasSuffix(signed, []byte("\n")) || !bytes.Contains(signed, []byte("\n\n")) {
		return nil, nil, errors.New("stored note is not a signed note")
	}
	sort.Slice(cosigs, func(i, j int) bool {
		if cosigs[i].Verifier != cosigs[j].Verifier {
			return cosigs[i].Verifier < cosigs[j].Verifier
		}
		return bytes.Compare(cosigs[i].Signature[:min(4, len(cosigs[i].Signature))], cosigs[j].Signature[:min(4, len(cosigs[j].Signature))]) < 0
	})
	out := slices.Clip(signed)
	names := make([]string, 0, len(cosigs))
	for _, c := range cosigs {
		if len(c.Signature) < 5 {
			return nil, nil, fmt.Errorf("co-signature of %q has %d bytes", c.Verifier, len(c.Signature))
		}
		out = fmt.Appendf(out, "— %s %s\n", c.Verifier, base64.StdEncoding.EncodeToString(c.Signature))
		names = append(names, c.Verifier)
	}
	return out, names, nil
}

// NewestEpoch implements storage.Store.
func (s *Store) NewestEpoch(ctx context.Context) (*storage.Epoch, error) {
	e, err := s.queryEpoch(ctx, spanner.Statement{SQL: epochSelect + `ORDER BY e.Epoch DESC LIMIT 1`})
	if err != nil {
		return nil, fmt.Errorf("couldn't read the newest epoch: %w", err)
	}
	return e, nil
}

// GetEpoch implements storage.Store.
func (s *Store) GetEpoch(ctx context.Context, n uint64) (*storage.Epoch, error) {
	ni, err := int64Of("epoch", n)
	if err != nil {
		return nil, fmt.Errorf("couldn't read epoch: %w: %w", err, storage.ErrNotFound)
	}
	e, err := s.queryEpoch(ctx, spanner.Statement{SQL: epochSelect + `WHERE e.Epoch = @n`, Params: map[string]any{"n": ni}})
	if err != nil {
		return nil, fmt.Errorf("couldn't read epoch %d: %w", n, err)
	}
	return e, nil
}

// LatestEpoch implements storage.Store: the newest epoch with at least
// quorum co-signatures by distinct verifiers among the named ones (one
// query; it walks epochs newest first until one qualifies).
func (s *Store) LatestEpoch(ctx context.Context, verifiers []string, quorum int) (*storage.Epoch, error) {
	if quorum <= 0 {
		return s.NewestEpoch(ctx)
	}
	names := slices.Clone(verifiers)
	slices.Sort(names)
	names = slices.Compact(names)
	if quorum > len(names) {
		return nil, fmt.Errorf("couldn't read latest epoch: quorum %d of %d verifiers: %w", quorum, len(names), storage.ErrNotFound)
	}
	stmt := spanner.Statement{
		SQL: epochSelect + `WHERE (SELECT COUNT(*) FROM Cosignatures AS q WHERE q.Epoch = e.Epoch AND q.Verifier IN UNNEST(@names)) >= @quorum
ORDER BY e.Epoch DESC LIMIT 1`,
		Params: map[string]any{"names": names, "quorum": int64(quorum)},
	}
	e, err := s.queryEpoch(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the latest epoch with %d co-signatures: %w", quorum, err)
	}
	return e, nil
}

// userSQL reads a user's applied records of epochs ≤ @n, the profile of the
// newest of them, and the newest committed epoch, in one query.
const userSQL = `SELECT
  (SELECT Epoch FROM Epochs ORDER BY Epoch DESC LIMIT 1) AS Newest,
  ARRAY(SELECT AS STRUCT Version, Epoch, Record, Entry FROM LeafRecords
        WHERE UserIndex = @i AND Epoch <= @n ORDER BY Version) AS Records,
  ARRAY(SELECT AS STRUCT p.Profile AS Profile, p.Opening AS Opening FROM Profiles AS p
        WHERE p.UserIndex = @i
          AND p.Version = (SELECT MAX(Version) FROM LeafRecords WHERE UserIndex = @i AND Epoch <= @n)) AS Profile`

type userRecordRow struct {
	Version int64
	Epoch   int64
	Record  []byte
	Entry   []byte
}

type profileRow struct {
	Profile []byte
	Opening []byte
}

// User implements storage.Store. It returns ErrNotFound if epoch n is not
// committed or the user has no applied record at n.
func (s *Store) User(ctx context.Context, n uint64, index [32]byte) (*storage.UserState, error) {
	ni, err := int64Of("epoch", n)
	if err != nil {
		return nil, fmt.Errorf("couldn't read user: %w: %w", err, storage.ErrNotFound)
	}
	var (
		newest   spanner.NullInt64
		records  []*userRecordRow
		profiles []*profileRow
	)
	stmt := spanner.Statement{SQL: userSQL, Params: map[string]any{"i": index[:], "n": ni}}
	err = s.client.Single().Query(ctx, stmt).Do(func(r *spanner.Row) error {
		return r.Columns(&newest, &records, &profiles)
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't read user %x: %w", index, err)
	}
	if !newest.Valid || newest.Int64 < ni {
		return nil, fmt.Errorf("couldn't read user %x at epoch %d: epoch not committed: %w", index, n, storage.ErrNotFound)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("no user %x at epoch %d: %w", index, n, storage.ErrNotFound)
	}
	st := &storage.UserState{}
	for _, r := range records {
		if r == nil || r.Version < 1 || r.Epoch < 0 {
			return nil, fmt.Errorf("couldn't read user %x: corrupt leaf record row", index)
		}
		st.Records = append(st.Records, storage.UserRecord{
			Version: uint64(r.Version), Epoch: uint64(r.Epoch), LeafRecord: r.Record, SignedEntry: r.Entry,
		})
	}
	if len(profiles) > 1 {
		return nil, fmt.Errorf("couldn't read user %x: %d profiles for one version", index, len(profiles))
	}
	if len(profiles) == 1 && profiles[0] != nil {
		st.Profile, st.Opening = profiles[0].Profile, profiles[0].Opening
	}
	return st, nil
}

// Records implements storage.Store: a point read of the epoch's cut, then
// the rows in it (ErrNotFound if epoch n is not committed). Rows below a
// committed cut never change, so the two reads need no common snapshot.
func (s *Store) Records(ctx context.Context, n uint64) ([]storage.LogRow, error) {
	ni, err := int64Of("epoch", n)
	if err != nil {
		return nil, fmt.Errorf("couldn't read records: %w: %w", err, storage.ErrNotFound)
	}
	row, err := s.client.Single().ReadRow(ctx, "Epochs", spanner.Key{ni}, []string{"PrevCutTs", "CutTs"})
	if spanner.ErrCode(err) == codes.NotFound {
		return nil, fmt.Errorf("couldn't read records of epoch %d: %w", n, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read records of epoch %d: %w", n, err)
	}
	var (
		prev spanner.NullTime
		cut  time.Time
	)
	if err := row.Columns(&prev, &cut); err != nil {
		return nil, fmt.Errorf("couldn't read records of epoch %d: %w", n, err)
	}
	rows, err := s.ReadLog(ctx, fromNullTime(prev), cut.UTC())
	if err != nil {
		return nil, fmt.Errorf("couldn't read records of epoch %d: %w", n, err)
	}
	return rows, nil
}

// logRowSQL is a Log row as queries return it.
type logRowSQL struct {
	CommitTs  time.Time
	Shard     int64
	Seq       []byte
	UserIndex []byte
	Record    []byte
}

func decodeLogRows(rows []*logRowSQL) ([]storage.LogRow, error) {
	out := make([]storage.LogRow, len(rows))
	for i, r := range rows {
		if r == nil || len(r.Seq) != 16 || len(r.UserIndex) != 32 {
			return nil, fmt.Errorf("corrupt log row")
		}
		out[i] = storage.LogRow{CommitTs: r.CommitTs.UTC(), Shard: r.Shard, Seq: [16]byte(r.Seq), Index: [32]byte(r.UserIndex), Record: r.Record}
	}
	return out, nil
}

// AddCosignature implements storage.Store. signatureLine is one note
// signature line, "— <name> <base64>\n", by the verifier named verifier; it
// is checked with checkpoint.Merge against the stored checkpoint and the
// realm's keys (errors wrap checkpoint's ErrBadSignature, ErrUnknownSigner,
// ErrMalformedNote). The first co-signature of a verifier is kept.
func (s *Store) AddCosignature(ctx context.Context, n uint64, verifier string, signatureLine []byte) (*storage.Epoch, error) {
	if s.logKey == nil {
		return nil, errors.New("couldn't add co-signature: the store was opened without a realm config")
	}
	name, sig, err := parseSignatureLine(signatureLine)
	if err != nil {
		return nil, fmt.Errorf("couldn't add co-signature: %w", err)
	}
	if name != verifier {
		return nil, fmt.Errorf("couldn't add co-signature: line is signed by %q, not %q: %w", name, verifier, checkpoint.ErrUnknownSigner)
	}
	e, err := s.GetEpoch(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("couldn't add co-signature: %w", err)
	}
	text, _, ok := bytes.Cut(e.Checkpoint, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("couldn't add co-signature: stored checkpoint of epoch %d is not a note", n)
	}
	text = append(text, '\n')
	candidate := append(append(slices.Clip(text), '\n'), signatureLine...)
	// Merge verifies every signature of both notes with the realm's keys
	// and refuses a line by a key that is not a verifier of the realm.
	if _, err := checkpoint.Merge(s.origin, s.logKey, s.cosigners, e.Checkpoint, candidate); err != nil {
		return nil, fmt.Errorf("couldn't add co-signature to epoch %d: %w", n, err)
	}
	if !s.isCosigner(name, sig) {
		return nil, fmt.Errorf("couldn't add co-signature: %q is not a verifier of the realm: %w", name, checkpoint.ErrUnknownSigner)
	}
	ni, _ := int64Of("epoch", n)
	_, err = s.rw(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		_, err := tx.ReadRow(ctx, "Cosignatures", spanner.Key{ni, verifier}, []string{"Verifier"})
		if err == nil {
			return nil // the first one stays
		}
		if spanner.ErrCode(err) != codes.NotFound {
			return err
		}
		return tx.BufferWrite([]*spanner.Mutation{spanner.Insert("Cosignatures",
			[]string{"Epoch", "Verifier", "Signature", "ReceivedAt"}, []any{ni, verifier, sig, spanner.CommitTimestamp})})
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't store co-signature of epoch %d: %w", n, err)
	}
	return s.GetEpoch(ctx, n)
}

// isCosigner reports whether sig (key ID || signature) is by a configured
// cosigner named name.
func (s *Store) isCosigner(name string, sig []byte) bool {
	for _, c := range s.cosigners {
		if c.Name() == name && len(sig) >= 4 && uint32(sig[0])<<24|uint32(sig[1])<<16|uint32(sig[2])<<8|uint32(sig[3]) == c.KeyHash() {
			return true
		}
	}
	return false
}

// parseSignatureLine splits "— <name> <base64>\n" (c2sp.org/signed-note)
// into the key name and the decoded signature (key ID || signature).
func parseSignatureLine(line []byte) (string, []byte, error) {
	const prefix = "— "
	l := string(line)
	if !strings.HasPrefix(l, prefix) || !strings.HasSuffix(l, "\n") || strings.Count(l, "\n") != 1 {
		return "", nil, fmt.Errorf("not one note signature line: %w", checkpoint.ErrMalformedNote)
	}
	body := strings.TrimSuffix(strings.TrimPrefix(l, prefix), "\n")
	name, b64, ok := strings.Cut(body, " ")
	if !ok || name == "" || strings.Contains(b64, " ") {
		return "", nil, fmt.Errorf("malformed signature line: %w", checkpoint.ErrMalformedNote)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(sig) < 5 || base64.StdEncoding.EncodeToString(sig) != b64 {
		return "", nil, fmt.Errorf("signature is not canonical base64 of at least 5 bytes: %w", checkpoint.ErrMalformedNote)
	}
	return name, sig, nil
}
