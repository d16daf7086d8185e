package sink

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const markDeliveredSQL = `
UPDATE stripe_webhook_events
SET status = 'delivered', delivered_at = now(), attempts = attempts + 1,
	locked_until = NULL, last_error = NULL
WHERE event_id = ANY($1::text[]) AND status = 'pending'`

const markFailedSQL = `
UPDATE stripe_webhook_events
SET attempts = attempts + 1, last_error = $2, locked_until = NULL,
	next_attempt_at = now() + $3::bigint * interval '1 millisecond'
WHERE event_id = $1 AND status = 'pending'`

// completer records deliveries in Postgres in batches: one UPDATE for every
// id gathered in an interval, not one transaction per event.
type completer struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	interval time.Duration
	maxBatch int

	mu      sync.Mutex
	ids     []string
	full    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

func newCompleter(pool *pgxpool.Pool, log *slog.Logger, interval time.Duration, maxBatch int) *completer {
	c := &completer{pool: pool, log: log, interval: interval, maxBatch: maxBatch,
		full: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c
}

// delivered queues id to be marked delivered.
func (c *completer) delivered(id string) {
	c.mu.Lock()
	c.ids = append(c.ids, id)
	n := len(c.ids)
	c.mu.Unlock()
	if n >= c.maxBatch {
		select {
		case c.full <- struct{}{}:
		default:
		}
	}
}

// failed records a failed attempt at once; the row stays pending and is due
// again after retryIn.
func (c *completer) failed(ctx context.Context, id string, cause error, retryIn time.Duration) {
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	if _, err := c.pool.Exec(ctx, markFailedSQL, id, msg, retryIn.Milliseconds()); err != nil {
		c.log.Error("recording a failed delivery", "event_id", id, "error", err)
	}
}

func (c *completer) run() {
	defer close(c.stopped)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-c.full:
		case <-c.stop:
			c.flush()
			return
		}
		c.flush()
	}
}

// flush writes what is gathered, in chunks of maxBatch. A failed update
// leaves rows pending: they are delivered again, never lost.
func (c *completer) flush() {
	c.mu.Lock()
	ids := c.ids
	c.ids = nil
	c.mu.Unlock()
	for len(ids) > 0 {
		n := min(len(ids), c.maxBatch)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.pool.Exec(ctx, markDeliveredSQL, ids[:n])
		cancel()
		if err != nil {
			c.log.Error("marking events delivered; they stay pending", "events", n, "error", fmt.Sprint(err))
		}
		ids = ids[n:]
	}
}

// close flushes the last batch and stops.
func (c *completer) close() {
	close(c.stop)
	<-c.stopped
}
