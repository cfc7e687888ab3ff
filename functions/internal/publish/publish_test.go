package publish

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strconv"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/emulators/pubsubemu"
	"github.com/conifer-kt/conifer/format"
)

func TestMain(m *testing.M) { pubsubemu.Main(m) }

const realmName = "example.com/conifer"

// bundle builds a valid empty-epoch bundle for epoch n.
func bundle(t *testing.T, n uint64) []byte {
	t.Helper()
	head := format.EpochHead{Realm: realmName, Epoch: n, Time: 1000 + n, UpdatesRoot: format.UpdatesRoot(nil)}
	hb, err := head.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	ks, err := checkpoint.NewKeySigner(key)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := checkpoint.NewLogSigner(realmName, ks)
	if err != nil {
		t.Fatal(err)
	}
	note, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: realmName, Size: n + 1, Hash: checkpoint.LeafHash(hb)}, ls)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&format.Bundle{Head: hb, Checkpoint: note}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPublishChunksInOrder(t *testing.T) {
	e := pubsubemu.ForTest(t)
	tt := pubsubemu.NewTestTopic(t)
	ctx := context.Background()
	client, err := e.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// A small chunk size forces several parts per bundle.
	p, err := New(ctx, Options{Topic: tt.Topic, Realm: realmName, Client: client, MaxChunk: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := New(ctx, Options{Topic: "epochs", Realm: realmName, Client: client}); err == nil {
		t.Error("a topic id without project was accepted")
	}
	want := map[uint64][]byte{}
	for n := uint64(1); n <= 5; n++ {
		want[n] = bundle(t, n)
		if err := p.Publish(ctx, n, want[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Publish(ctx, 9, want[1]); err == nil {
		t.Error("publishing epoch 1's bundle as epoch 9 succeeded")
	}

	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []format.BundleChunk
	var lastEpoch uint64
	var lastPart int64 = -1
	outOfOrder := false
	err = client.Subscriber(tt.Subscription).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		c, err := format.ParseBundleChunk(m.Data)
		if err != nil {
			t.Errorf("bad chunk: %v", err)
			return
		}
		if m.Attributes["realm"] != realmName || m.Attributes["epoch"] != strconv.FormatUint(c.Epoch, 10) || m.OrderingKey != realmName {
			t.Errorf("attributes %v / ordering key %q do not match chunk %d/%d", m.Attributes, m.OrderingKey, c.Epoch, c.Part)
		}
		mu.Lock()
		defer mu.Unlock()
		if c.Epoch < lastEpoch || (c.Epoch == lastEpoch && int64(c.Part) <= lastPart) {
			outOfOrder = true
		}
		lastEpoch, lastPart = c.Epoch, int64(c.Part)
		got = append(got, *c)
		if c.Epoch == 5 && c.Part+1 == c.Parts {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if outOfOrder {
		t.Error("chunks arrived out of order")
	}
	byEpoch := map[uint64][]format.BundleChunk{}
	for _, c := range got {
		byEpoch[c.Epoch] = append(byEpoch[c.Epoch], c)
	}
	for n, w := range want {
		if len(byEpoch[n]) < 2 {
			t.Errorf("epoch %d arrived in %d parts; the test wants several", n, len(byEpoch[n]))
		}
		b, err := format.JoinBundle(byEpoch[n])
		if err != nil {
			t.Fatalf("epoch %d: %v", n, err)
		}
		enc, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, w) {
			t.Errorf("epoch %d: reassembled bundle differs", n)
		}
	}
}
