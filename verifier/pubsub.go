package verifier

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
)

// ReceivePubSub receives the epoch topic's messages from sub and sends
// them to out (for Run) until ctx ends or the subscription fails. The
// subscription should have message ordering enabled (the keyserver
// publishes with the realm as ordering key), but Run does not depend on
// it. A message still held when ctx ends is nacked.
//
// Flow control keeps at most 1,000 messages or 256 MiB outstanding unless
// sub's ReceiveSettings say otherwise; the client extends ack deadlines
// while the verifier holds messages (catching up from the feed, say).
func ReceivePubSub(ctx context.Context, sub *pubsub.Subscriber, out chan<- Message) error {
	if sub.ReceiveSettings.MaxOutstandingBytes == 0 {
		sub.ReceiveSettings.MaxOutstandingBytes = 256 << 20
	}
	err := sub.Receive(ctx, func(ctx context.Context, m *pubsub.Message) {
		select {
		case out <- Message{Data: m.Data, Ack: m.Ack, Nack: m.Nack}:
		case <-ctx.Done():
			m.Nack()
		}
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("couldn't receive from %s: %w", sub, err)
	}
	return nil
}
