// Package publish sends epoch bundles to the Pub/Sub topic verifiers
// subscribe to.
//
// (Written by the lead engineer; the epoch package uses it as is.)
//
// A bundle (format.Bundle: head, signed checkpoint, the epoch's ordered log
// records) can exceed Pub/Sub's 10 MB message limit, so it is cut into
// format.BundleChunks of at most MaxChunk bytes, each one message. Every
// message of a realm carries the ordering key = realm, so one subscription
// receives a realm's epochs and their parts in publication order (the
// publisher enables message ordering; subscriptions must too). Attributes
// repeat the chunk header for filtering and debugging: "realm", "epoch",
// "part", "parts".
//
// Delivery is at least once: the epoch function publishes from its outbox
// until it has marked the epoch published, and verifiers ignore duplicates.
package publish

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"

	"github.com/conifer-kt/conifer/format"
)

// MaxChunk is the default largest encoded chunk: 9,000,000 bytes, under the
// 10 MB Pub/Sub limit with room for attributes.
const MaxChunk = format.MaxChunkSize

// Publisher publishes a realm's epoch bundles. Safe for concurrent use.
type Publisher struct {
	p        *pubsub.Publisher
	client   *pubsub.Client // owned, if New created it
	realm    string
	maxChunk int
}

// Options configure a Publisher.
type Options struct {
	// Topic is the full topic name, projects/P/topics/T. Required.
	Topic string
	// Realm is the realm whose bundles are published (the ordering key). Required.
	Realm string
	// Client is the Pub/Sub client to use; if nil, New creates one for the
	// topic's project with ClientOptions (and Close closes it).
	Client        *pubsub.Client
	ClientOptions []option.ClientOption
	// MaxChunk is the largest encoded chunk; ≤ 0 means MaxChunk.
	MaxChunk int
}

// New returns a Publisher for opts.
func New(ctx context.Context, opts Options) (*Publisher, error) {
	if opts.Realm == "" {
		return nil, fmt.Errorf("couldn't set up the publisher: no realm")
	}
	parts := strings.Split(opts.Topic, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[2] != "topics" || parts[1] == "" || parts[3] == "" {
		return nil, fmt.Errorf("couldn't set up the publisher: topic %q is not projects/P/topics/T", opts.Topic)
	}
	pub := &Publisher{client: nil, realm: opts.Realm, maxChunk: opts.MaxChunk}
	client := opts.Client
	if client == nil {
		c, err := pubsub.NewClient(ctx, parts[1], opts.ClientOptions...)
		if err != nil {
			return nil, fmt.Errorf("couldn't create the Pub/Sub client: %w", err)
		}
		client, pub.client = c, c
	}
	pub.p = client.Publisher(opts.Topic)
	pub.p.EnableMessageOrdering = true
	if pub.maxChunk <= 0 || pub.maxChunk > MaxChunk {
		pub.maxChunk = MaxChunk
	}
	return pub, nil
}

// Publish sends an encoded bundle of epoch and waits until Pub/Sub has
// accepted every part. On failure the ordering key is resumed so a retry
// (the outbox) can publish again.
func (p *Publisher) Publish(ctx context.Context, epoch uint64, bundle []byte) error {
	chunks, err := format.SplitBundle(bundle, p.maxChunk)
	if err != nil {
		return fmt.Errorf("couldn't split the bundle of epoch %d: %w", epoch, err)
	}
	results := make([]*pubsub.PublishResult, 0, len(chunks))
	for i := range chunks {
		c := &chunks[i]
		if c.Epoch != epoch || c.Realm != p.realm {
			return fmt.Errorf("couldn't publish epoch %d: the bundle is of realm %q epoch %d", epoch, c.Realm, c.Epoch)
		}
		data, err := c.Marshal()
		if err != nil {
			return fmt.Errorf("couldn't encode part %d of epoch %d: %w", c.Part, epoch, err)
		}
		results = append(results, p.p.Publish(ctx, &pubsub.Message{
			Data:        data,
			OrderingKey: p.realm,
			Attributes: map[string]string{
				"realm": p.realm,
				"epoch": strconv.FormatUint(epoch, 10),
				"part":  strconv.FormatUint(uint64(c.Part), 10),
				"parts": strconv.FormatUint(uint64(c.Parts), 10),
			},
		}))
	}
	for i, r := range results {
		if _, err := r.Get(ctx); err != nil {
			p.p.ResumePublish(p.realm)
			return fmt.Errorf("couldn't publish part %d of epoch %d: %w", i, epoch, err)
		}
	}
	return nil
}

// Close flushes and stops the publisher (and closes the client New made).
func (p *Publisher) Close() {
	p.p.Stop()
	if p.client != nil {
		p.client.Close()
	}
}
