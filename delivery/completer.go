package delivery

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/pgerr"
	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/internal/safetext"
	"github.com/oncehook/oncehook/internal/startstop"
)

// A result applies only while its writer still holds the lease: the row is
// pending and its locked_until is still the one the writer was given. A
// result that finds another lease (taken over after this one ran out) is
// stale, and is counted and left alone.
//
// "Pending" is written as status NOT IN ('delivered', 'dead') (the same,
// by the table's CHECK): status = 'pending' would let the planner walk the
// pending partial index, which its statistics may show as nearly empty
// while a backlog fills it, instead of probing the primary key.

// markDeliveredSQL closes deliveries that succeeded.
// $1 ids, $2 destinations, $3 leases.
const markDeliveredSQL = `
UPDATE stripe_webhook_deliveries d
SET status = 'delivered', delivered_at = now(), attempts = d.attempts + 1,
	locked_until = NULL, last_error = NULL
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS r(id, destination, lease)
WHERE d.event_id = r.id AND d.destination = r.destination AND d.status NOT IN ('delivered', 'dead') AND d.locked_until = r.lease
RETURNING d.destination`

// markFailedSQL schedules the next attempt of deliveries that failed:
// RetryBase × 2^attempts (the exponent capped, so it cannot overflow),
// capped at RetryMax, less up to half of it at random; dead after the
// destination's MaxAttempts.
// $1 ids, $2 destinations, $3 leases, $4 errors, $5 MaxAttempts, $6 RetryBase ms, $7 RetryMax ms.
const markFailedSQL = `
UPDATE stripe_webhook_deliveries d
SET attempts = d.attempts + 1,
	last_error = f.err,
	locked_until = NULL,
	status = CASE WHEN d.attempts + 1 >= f.max_attempts THEN 'dead' ELSE 'pending' END,
	dead_at = CASE WHEN d.attempts + 1 >= f.max_attempts THEN now() END,
	next_attempt_at = now() + least($6::float8 * power(2::float8, least(d.attempts, 62)), $7::float8)
		* (1 - random() / 2) * interval '1 millisecond'
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int[]) AS f(id, destination, lease, err, max_attempts)
WHERE d.event_id = f.id AND d.destination = f.destination AND d.status NOT IN ('delivered', 'dead') AND d.locked_until = f.lease
RETURNING d.destination, d.status`

// recordAttemptsSQL appends to the delivery history, stale results too:
// the attempt was made.
const recordAttemptsSQL = `
INSERT INTO stripe_webhook_delivery_attempts (event_id, destination, ok, error, instance)
SELECT a.id, a.destination, a.ok, NULLIF(a.err, ''), $5
FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[]) AS a(id, destination, ok, err)
WHERE EXISTS (SELECT 1 FROM stripe_webhook_events e WHERE e.event_id = a.id)`

// indexPlansSQL makes the result statements find each row by its primary
// key. Left to itself, the planner joins a batch of results by hashing
// every pending row found through a partial index whose statistics say it
// is small; but the pending set, and that index's dead entries until the
// next vacuum, grow with a backlog, and so would every write. It also
// sequentially scanned a ledger that had grown since its plan was cached.
const indexPlansSQL = `SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
	set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`

// maxErrorLen bounds a stored error, in bytes.
const maxErrorLen = 1000

// unstorableError replaces an error text that Postgres still refused after
// cleaning, so that the result itself is not lost.
const unstorableError = "the delivery failed; its error text could not be stored"

// result is one delivery's outcome, ready to store.
type result struct {
	id          string
	dest        string
	lease       time.Time // the locked_until the delivery was made under
	maxAttempts int       // the destination's
	err         string    // "" when delivered; cleaned text otherwise
	ok          bool
}

// completer writes delivery results in batches: every FlushInterval (or
// MaxBatch results) one transaction updates the rows and appends the
// history, never one transaction per event. A chunk that Postgres refuses
// because of its data is split, so that one row cannot block the others.
// Results that cannot be written leave their rows pending: they are
// delivered again after the lease, never lost.
type completer struct {
	cfg    DispatcherConfig
	errLog ratelog.Logger
	stale  ratelog.Logger

	mu      sync.Mutex
	pending []result

	full    chan struct{}
	ctx     context.Context // bounds every write; cancelled at Stop's deadline
	cancel  context.CancelFunc
	stopped chan struct{}
	stop    chan time.Time // the deadline of the last flush
	state   startstop.State
}

func newCompleter(cfg DispatcherConfig) *completer {
	c := &completer{cfg: cfg, errLog: ratelog.Logger{Log: cfg.Logger}, stale: ratelog.Logger{Log: cfg.Logger},
		full: make(chan struct{}, 1), stop: make(chan time.Time, 1), stopped: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Start writes results every FlushInterval until Stop; ctx's end does not
// stop it. A second Start does nothing.
func (c *completer) Start(ctx context.Context) error {
	return c.state.Start(ctx, func(context.Context) error {
		go c.run()
		return nil
	})
}

// add records one delivery's result (r without err and ok); err's text is
// cleaned here, before it can reach a statement.
func (c *completer) add(r result, err error) {
	r.ok = err == nil
	if err != nil {
		r.err = safetext.Clean(err.Error(), maxErrorLen)
	}
	c.mu.Lock()
	c.pending = append(c.pending, r)
	n := len(c.pending)
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
		case deadline := <-c.stop:
			c.drain(deadline)
			return
		}
		c.flush(c.ctx)
	}
}

// drain writes what is held until nothing is left or deadline passes,
// trying again while Postgres is unavailable.
func (c *completer) drain(deadline time.Time) {
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	for ctx.Err() == nil && c.flush(ctx) {
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
	}
	c.mu.Lock()
	left := len(c.pending)
	c.pending = nil
	c.mu.Unlock()
	if left > 0 {
		c.cfg.Logger.Warn("delivery results not written before the shutdown deadline; their rows stay pending and are delivered again",
			"results", left)
	}
}

// flush writes what is gathered in chunks of at most MaxBatch results and
// reports whether some were held back because Postgres failed. Held
// results wait for the next flush, up to maxHeld; past that the rows are
// left to be delivered again.
func (c *completer) flush(ctx context.Context) bool {
	for {
		c.mu.Lock()
		n := min(len(c.pending), c.cfg.MaxBatch)
		chunk := c.pending[:n:n]
		c.pending = c.pending[n:]
		c.mu.Unlock()
		if n == 0 {
			return false
		}
		held, err := c.writeSplitting(ctx, chunk)
		if len(held) == 0 {
			continue
		}
		c.cfg.Metrics.PostgresError("write results")
		c.mu.Lock()
		total := len(c.pending) + len(held)
		dropped := total > c.maxHeld()
		if !dropped {
			c.pending = append(held, c.pending...)
		}
		c.mu.Unlock()
		c.errLog.Warn("writing delivery results failed; retrying",
			"results", len(held), "held", total, "dropped", dropped, "error", err)
		return true
	}
}

// writeSplitting writes chunk. A chunk refused for its data is halved until
// the bad row stands alone; a lone bad row is written again without its
// error text, then given up. It returns the results to retry later because
// Postgres itself failed, with that error.
func (c *completer) writeSplitting(ctx context.Context, chunk []result) ([]result, error) {
	err := c.write(ctx, chunk)
	switch {
	case err == nil:
		return nil, nil
	case !pgerr.IsRowError(err):
		return chunk, err
	case len(chunk) > 1:
		half := len(chunk) / 2
		held, err1 := c.writeSplitting(ctx, chunk[:half])
		held2, err2 := c.writeSplitting(ctx, chunk[half:])
		return append(held, held2...), errors.Join(err1, err2)
	}
	r := chunk[0]
	c.errLog.Warn("a delivery result was refused by Postgres; storing it without its error text",
		"event_id", r.id, "destination", r.dest, "error", err)
	if !r.ok {
		r.err = unstorableError
		if err = c.write(ctx, []result{r}); err == nil {
			return nil, nil
		}
	}
	c.cfg.Logger.Error("a delivery result could not be stored; its row stays pending and is delivered again after its lease",
		"event_id", r.id, "destination", r.dest, "error", err)
	return nil, nil
}

// maxHeld bounds the results kept while Postgres cannot take them (each at
// most maxErrorLen of text). Dropped results leave their rows pending, to
// be delivered again after the lease.
func (c *completer) maxHeld() int { return 10 * c.cfg.MaxBatch }

// write records one chunk in one transaction, within 10s and ctx.
func (c *completer) write(ctx context.Context, chunk []result) error {
	var ok, failed resultColumns
	var all resultColumns
	for _, r := range chunk {
		all.add(r)
		if r.ok {
			ok.add(r)
		} else {
			failed.add(r)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	applied := map[[2]string]int{} // (destination, result) -> count
	// One round trip: the transaction, its plan settings and the three
	// statements go as one batch. A statement that fails aborts the
	// transaction and its COMMIT (the pool drops the connection); if the
	// answer is lost after the COMMIT ran, the chunk is written again and
	// finds its leases gone: counted stale, with its attempts recorded twice.
	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(indexPlansSQL)
	b.Queue(markDeliveredSQL, ok.ids, ok.dests, ok.leases).Query(func(rows pgx.Rows) error {
		dests, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, d := range dests {
			applied[[2]string{d, metrics.Delivered}]++
		}
		return err
	})
	b.Queue(markFailedSQL, failed.ids, failed.dests, failed.leases, failed.errs, failed.maxAttempts,
		c.cfg.RetryBase.Milliseconds(), c.cfg.RetryMax.Milliseconds()).
		Query(func(rows pgx.Rows) error {
			var dest, status string
			_, err := pgx.ForEachRow(rows, []any{&dest, &status}, func() error {
				if status == StatusDead {
					applied[[2]string{dest, metrics.Dead}]++
				} else {
					applied[[2]string{dest, metrics.Retry}]++
				}
				return nil
			})
			return err
		})
	b.Queue(recordAttemptsSQL, all.ids, all.dests, all.oks, all.errs, c.cfg.Instance)
	b.Queue("COMMIT")
	if err := c.cfg.Pool.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	sent := map[string]int{}
	for _, r := range chunk {
		sent[r.dest]++
	}
	for k, n := range applied {
		c.cfg.Metrics.Deliveries(k[0], k[1], n)
		sent[k[0]] -= n
	}
	for dest, stale := range sent {
		if stale > 0 {
			c.cfg.Metrics.Deliveries(dest, metrics.Stale, stale)
			c.stale.Warn("delivery results arrived after their lease was taken over; not applied",
				"destination", dest, "results", stale, "of", len(chunk))
		}
	}
	return nil
}

// resultColumns holds results as the statements' arrays.
type resultColumns struct {
	ids, dests, errs []string
	leases           []time.Time
	maxAttempts      []int32
	oks              []bool
}

func (rc *resultColumns) add(r result) {
	rc.ids = append(rc.ids, r.id)
	rc.dests = append(rc.dests, r.dest)
	rc.errs = append(rc.errs, r.err)
	rc.leases = append(rc.leases, r.lease)
	rc.maxAttempts = append(rc.maxAttempts, int32(r.maxAttempts))
	rc.oks = append(rc.oks, r.ok)
}

// completerStopTimeout bounds Stop when its ctx has no deadline.
const completerStopTimeout = 10 * time.Second

// Stop writes the last results, trying until ctx's deadline (10s without
// one), and stops. The last writes run under the completer's own context,
// never one already cancelled, and a write under way is cancelled at the
// deadline. A second Stop does nothing.
func (c *completer) Stop(ctx context.Context) error {
	return c.state.Stop(ctx, func(ctx context.Context) error {
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(completerStopTimeout)
		}
		t := time.AfterFunc(time.Until(deadline), c.cancel)
		defer t.Stop()
		defer c.cancel()
		c.stop <- deadline
		<-c.stopped
		return nil
	})
}
