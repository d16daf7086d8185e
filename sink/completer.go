package sink

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// markDeliveredSQL closes rows whose delivery succeeded.
const markDeliveredSQL = `
UPDATE stripe_webhook_events
SET status = 'delivered', delivered_at = now(), attempts = attempts + 1,
	locked_until = NULL, last_error = NULL
WHERE event_id = ANY($1::text[]) AND status = 'pending'`

// markFailedSQL schedules the next attempt of rows whose delivery failed:
// RetryBase × 2^attempts, capped at RetryMax, less up to half of it at
// random; dead after MaxAttempts.
// $1 ids, $2 errors, $3 MaxAttempts, $4 RetryBase ms, $5 RetryMax ms.
const markFailedSQL = `
UPDATE stripe_webhook_events e
SET attempts = e.attempts + 1,
	last_error = f.err,
	locked_until = NULL,
	status = CASE WHEN e.attempts + 1 >= $3 THEN 'dead' ELSE 'pending' END,
	next_attempt_at = now() + least($4::float8 * power(2, e.attempts), $5::float8)
		* (1 - random() / 2) * interval '1 millisecond'
FROM unnest($1::text[], $2::text[]) AS f(id, err)
WHERE e.event_id = f.id AND e.status = 'pending'
RETURNING e.status`

// recordAttemptsSQL appends to the delivery history.
const recordAttemptsSQL = `
INSERT INTO stripe_webhook_delivery_attempts (event_id, ok, error, instance)
SELECT a.id, a.ok, NULLIF(a.err, ''), $4
FROM unnest($1::text[], $2::bool[], $3::text[]) AS a(id, ok, err)
WHERE EXISTS (SELECT 1 FROM stripe_webhook_events e WHERE e.event_id = a.id)`

// maxErrorLen bounds a stored last_error.
const maxErrorLen = 1000

// completer writes delivery results in batches: every FlushInterval (or
// MaxBatch results) one transaction updates the rows and appends the
// history, never one transaction per event. Results that cannot be written
// leave their rows pending: they are delivered again, never lost.
type completer struct {
	cfg    DispatcherConfig
	errLog ratelog.Logger

	mu     sync.Mutex
	ok     []string
	failed []string
	errs   []string

	full    chan struct{}
	stopped chan struct{}
	stop    chan struct{}
}

func newCompleter(cfg DispatcherConfig) *completer {
	c := &completer{cfg: cfg, errLog: ratelog.Logger{Log: cfg.Logger},
		full: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c
}

// add records one delivery's result.
func (c *completer) add(id string, err error) {
	c.mu.Lock()
	if err == nil {
		c.ok = append(c.ok, id)
	} else {
		msg := err.Error()
		if len(msg) > maxErrorLen {
			msg = msg[:maxErrorLen]
		}
		c.failed = append(c.failed, id)
		c.errs = append(c.errs, msg)
	}
	n := len(c.ok) + len(c.failed)
	c.mu.Unlock()
	if n >= c.cfg.MaxBatch {
		select {
		case c.full <- struct{}{}:
		default:
		}
	}
}

func (c *completer) run() {
	defer close(c.stopped)
	t := time.NewTicker(c.cfg.FlushInterval)
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

// flush writes what is gathered in chunks of at most MaxBatch results. A
// chunk that fails to write goes back to wait for the next tick, up to
// maxHeld results; past that the rows are left to be delivered again.
func (c *completer) flush() {
	for {
		c.mu.Lock()
		n := min(len(c.ok), c.cfg.MaxBatch)
		m := min(len(c.failed), c.cfg.MaxBatch-n)
		ok, failed, errs := c.ok[:n:n], c.failed[:m:m], c.errs[:m:m]
		c.ok, c.failed, c.errs = c.ok[n:], c.failed[m:], c.errs[m:]
		c.mu.Unlock()
		if n+m == 0 {
			return
		}
		if err := c.write(ok, failed, errs); err != nil {
			c.cfg.Metrics.PostgresError("write results")
			c.mu.Lock()
			held := len(c.ok) + len(c.failed) + n + m
			if held <= c.maxHeld() {
				c.ok = append(ok, c.ok...)
				c.failed = append(failed, c.failed...)
				c.errs = append(errs, c.errs...)
			}
			c.mu.Unlock()
			c.errLog.Warn("writing delivery results failed; retrying",
				"results", n+m, "held", held, "dropped", held > c.maxHeld(), "error", err)
			return
		}
	}
}

// maxHeld bounds the results kept while Postgres cannot take them. Dropped
// results leave their rows pending, to be delivered again after the lease.
func (c *completer) maxHeld() int { return 50 * c.cfg.MaxBatch }

// write records one chunk in one transaction.
func (c *completer) write(ok, failed, errs []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dead int
	err := pgx.BeginFunc(ctx, c.cfg.Pool, func(tx pgx.Tx) error {
		dead = 0
		var b pgx.Batch
		b.Queue(markDeliveredSQL, ok)
		b.Queue(markFailedSQL, failed, errs, c.cfg.MaxAttempts, c.cfg.RetryBase.Milliseconds(), c.cfg.RetryMax.Milliseconds()).
			Query(func(rows pgx.Rows) error {
				statuses, err := pgx.CollectRows(rows, pgx.RowTo[string])
				for _, s := range statuses {
					if s == StatusDead {
						dead++
					}
				}
				return err
			})
		ids := append(append(make([]string, 0, len(ok)+len(failed)), ok...), failed...)
		oks := make([]bool, len(ids))
		texts := make([]string, len(ids))
		for i := range ok {
			oks[i] = true
		}
		copy(texts[len(ok):], errs)
		b.Queue(recordAttemptsSQL, ids, oks, texts, c.cfg.Instance)
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return err
	}
	c.cfg.Metrics.Deliveries(metrics.Delivered, len(ok))
	c.cfg.Metrics.Deliveries(metrics.Retry, len(failed)-dead)
	c.cfg.Metrics.Deliveries(metrics.Dead, dead)
	return nil
}

// close writes the last results and stops.
func (c *completer) close() {
	close(c.stop)
	<-c.stopped
}
