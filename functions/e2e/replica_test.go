package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
	"github.com/conifer-kt/conifer/statemachine"
	"github.com/conifer-kt/conifer/tree"
)

// replica is the end-to-end test's verifier: it replays every epoch bundle
// with the statemachine on its own in-memory tree and epoch log, and
// accepts an epoch only if it reproduces the head byte for byte and the
// keyserver's checkpoint signs the log it holds. Then it co-signs.
type replica struct {
	rc      *realm.Config
	rules   statemachine.Rules
	store   *tree.MemoryStore
	tree    *tree.Tree
	log     *checkpoint.MemoryLog
	latest  memEntries
	next    uint64
	heads   [][]byte
	applied map[uint64]*statemachine.Output
}

// memEntries is the replica's users: index → newest applied state.
type memEntries map[[32]byte]statemachine.Latest

func (m memEntries) Latest(_ context.Context, _ uint64, indexes [][32]byte) (map[[32]byte]statemachine.Latest, error) {
	out := map[[32]byte]statemachine.Latest{}
	for _, i := range indexes {
		if l, ok := m[i]; ok {
			out[i] = l
		}
	}
	return out, nil
}

func newReplica(rc *realm.Config) (*replica, error) {
	rules, err := statemachine.RulesFromRealm(rc)
	if err != nil {
		return nil, err
	}
	st := tree.NewMemoryStore()
	return &replica{rc: rc, rules: rules, store: st, tree: tree.New(st), log: checkpoint.NewMemoryLog(),
		latest: memEntries{}, applied: map[uint64]*statemachine.Output{}}, nil
}

// apply checks the bundle of the next epoch and takes it in.
func (r *replica) apply(ctx context.Context, b *format.Bundle) error {
	head, err := format.ParseEpochHead(b.Head)
	if err != nil {
		return err
	}
	if head.Epoch != r.next {
		return fmt.Errorf("bundle of epoch %d, expected %d", head.Epoch, r.next)
	}
	var want []byte
	if head.Epoch == 0 {
		want, err = (&format.EpochHead{Realm: r.rc.Realm, Epoch: 0, Time: head.Time, TreeRoot: tree.Empty,
			UpdatesRoot: format.UpdatesRoot(nil)}).Marshal()
		if err != nil {
			return err
		}
	} else {
		out, err := statemachine.Apply(ctx, r.tree, r.latest, statemachine.Input{Rules: r.rules, Epoch: head.Epoch, Time: head.Time, Records: b.Records})
		if err != nil {
			return fmt.Errorf("replay of epoch %d: %w", head.Epoch, err)
		}
		if err := r.store.Commit(ctx, head.Epoch, out.Head.TreeRoot); err != nil {
			return err
		}
		for _, a := range out.Applied {
			r.latest[a.Index] = statemachine.Latest{LeafRecord: a.LeafRecord, SignedEntry: a.SignedEntry}
		}
		r.applied[head.Epoch] = out
		want = out.HeadBytes
	}
	if !bytes.Equal(want, b.Head) {
		return fmt.Errorf("epoch %d: replayed head differs from the published one", head.Epoch)
	}
	root, err := r.log.Append(checkpoint.LeafHash(b.Head))
	if err != nil {
		return err
	}
	logV, err := checkpoint.NewVerifier(r.rc.LogKey)
	if err != nil {
		return err
	}
	v, err := checkpoint.Open(b.Checkpoint, r.rc.Realm, logV, nil, 0)
	if err != nil {
		return fmt.Errorf("epoch %d checkpoint: %w", head.Epoch, err)
	}
	if v.Checkpoint.Size != head.Epoch+1 || v.Checkpoint.Hash != root {
		return fmt.Errorf("epoch %d: the checkpoint does not sign the log the replica holds", head.Epoch)
	}
	r.heads = append(r.heads, b.Head)
	r.next++
	return nil
}

// cosign returns the co-signature line of cosigner c over the bundle's
// checkpoint.
func cosign(c *checkpoint.Cosigner, b *format.Bundle) (string, error) {
	text, _, ok := bytes.Cut(b.Checkpoint, []byte("\n\n"))
	if !ok {
		return "", fmt.Errorf("checkpoint is not a note")
	}
	text = append(text, '\n')
	sig, err := c.Sign(text)
	if err != nil {
		return "", err
	}
	h := c.KeyHash()
	raw := append([]byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}, sig...)
	return "— " + c.Name() + " " + b64(raw) + "\n", nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
