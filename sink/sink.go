// Package sink is how events reach the application: the Sink interface
// and its implementations (JSON lines, HTTP, Redis stream, NATS JetStream,
// RabbitMQ, Kafka), which one conformance suite checks. The machinery that
// calls them is in delivery.
package sink

import (
	"context"

	"github.com/oncehook/oncehook/event"
)

// Sink receives accepted events.
//
// Contract, for every implementation:
//   - Deliver is safe for concurrent use by many workers.
//   - Deliver returns nil only once the sink has the event (written, synced
//     or acknowledged); any error means the event will be delivered again.
//   - Delivery is at least once: the same event may arrive more than once
//     (after a crash or a lost acknowledgement). ev.ID is the idempotency key.
//   - Deliver honours ctx: it returns soon after ctx is done.
//   - Close flushes anything buffered and releases resources; Deliver must
//     not be called after Close. Close is safe to call more than once.
type Sink interface {
	Deliver(ctx context.Context, ev *event.Event) error
	Close() error
}
