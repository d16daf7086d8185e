package delivery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/pgerr"
	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/internal/safetext"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/store"
)

// maxErrorLen bounds a stored error, in bytes.
const maxErrorLen = 1000

// unstorableError replaces an error text that Postgres still refused after
// cleaning, so that the result itself is not lost.
const unstorableError = "the delivery failed; its error text could not be stored"

// deadLinesPerInterval bounds the dead letters logged one by one in a
// ratelog.Interval; the rest of a burst is summarised in one line.
const deadLinesPerInterval = 20

// result is one delivery's outcome, ready to store.
type result struct {
	id          string
	typ         string // the event's type, for the log
	dest        string
	lease       time.Time // the locked_until the delivery was made under
	maxAttempts int       // the destination's
	err         string    // "" when delivered; cleaned text otherwise
	ok          bool
	ordered     bool // the delivery has an order key
}

// completer writes delivery results in batches: every FlushInterval (or
// MaxBatch results) one transaction updates the rows and appends the
// history, never one transaction per event. A chunk that Postgres refuses
// because of its data is split, so that one row cannot block the others.
// Results that cannot be written leave their rows pending: they are
// delivered again after the lease, never lost.
type completer struct {
	cfg    DispatcherConfig
	store  *store.Store
	errLog ratelog.Logger
	stale  ratelog.Logger
	dead   *ratelog.Burst
	retry  map[string]*ratelog.Logger // by destination; only run's goroutine uses it

	// wake is told the destinations of ordered results just written whose
	// next deliveries were not all handed over: they may be due. Set
	// before Start.
	wake func(dests map[string]bool)
	// handOver queues the next deliveries of finished order keys, leased
	// to this instance by the result write (their lease counted from
	// start), and returns those it could not queue. Set before Start;
	// nil: the next deliveries are made due for the sweepers instead.
	handOver func(start time.Time, next []store.Next) (left []store.Next)

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
	c := &completer{cfg: cfg, store: store.New(cfg.Pool), errLog: ratelog.Logger{Log: cfg.Logger}, stale: ratelog.Logger{Log: cfg.Logger},
		dead: newDeadLog(cfg.Logger), retry: map[string]*ratelog.Logger{},
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
			c.dead.Flush(true)
			return
		}
		c.flush(c.ctx)
		c.dead.Flush(false)
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
		c.cfg.Metrics.PostgresError("write results", err)
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
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	results := make([]store.Result, len(chunk))
	for i, r := range chunk {
		results[i] = store.Result{EventID: r.id, Destination: r.dest, Lease: r.lease, MaxAttempts: r.maxAttempts, OK: r.ok, Err: r.err,
			EventType: r.typ}
	}
	backoff := store.Backoff{Base: c.cfg.RetryBase, Max: c.cfg.RetryMax}
	start := time.Now() // no later than the start of the next deliveries' leases
	var applied store.Applied
	var err error
	if c.handOver != nil {
		applied, err = c.store.WriteResultsClaimingNext(ctx, results, backoff, c.cfg.Instance, c.cfg.Lease)
	} else {
		applied, err = c.store.WriteResults(ctx, results, backoff, c.cfg.Instance)
	}
	if err != nil {
		return err
	}
	c.handOverNext(ctx, chunk, start, applied)
	c.logFailures(applied.Failed)
	sent := map[string]int{}
	for _, r := range chunk {
		sent[r.dest]++
	}
	for outcome, counts := range map[string]map[string]int{
		metrics.Delivered: applied.Delivered, metrics.Retry: applied.Retry, metrics.Dead: applied.Dead,
	} {
		for dest, n := range counts {
			c.cfg.Metrics.Deliveries(dest, outcome, n)
			sent[dest] -= n
		}
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

// handOverNext queues the next deliveries of the finished order keys that
// the write leased to this instance, gives back those the lanes cannot
// take, and wakes the sweepers of destinations whose next deliveries were
// not all handed over.
func (c *completer) handOverNext(ctx context.Context, chunk []result, start time.Time, applied store.Applied) {
	var wake map[string]bool
	if applied.WakeErr != nil {
		c.cfg.Metrics.PostgresError("wake order keys", applied.WakeErr)
		c.errLog.Warn("waking the next deliveries of finished order keys failed; they go when their park ends", "error", applied.WakeErr)
	}
	if c.handOver == nil || applied.WakeErr != nil {
		for _, r := range chunk {
			if r.ordered {
				if wake == nil {
					wake = map[string]bool{}
				}
				wake[r.dest] = true
			}
		}
	}
	if c.handOver != nil && len(applied.Next) > 0 {
		left := c.handOver(start, applied.Next)
		if len(left) > 0 {
			// Given back at once rather than held until the lease ends; if
			// that fails, they go when it ends.
			if err := c.store.GiveBack(ctx, left); err != nil {
				c.cfg.Metrics.PostgresError("give back", err)
				c.errLog.Warn("giving back next deliveries the queue had no room for failed; they go when their lease ends", "error", err)
			}
			if wake == nil {
				wake = map[string]bool{}
			}
			for _, n := range left {
				wake[n.Destination] = true
			}
		}
	}
	if wake != nil && c.wake != nil {
		c.wake(wake)
	}
}

// newDeadLog logs each delivery that goes dead, a burst in one summary.
func newDeadLog(log *slog.Logger) *ratelog.Burst {
	return &ratelog.Burst{Log: log, Max: deadLinesPerInterval, Interval: ratelog.Interval, Key: "destinations",
		Summary: "deliveries went dead: out of attempts; not logged one by one (see the dead-letter list)"}
}

// logFailures logs the failed results that were applied: each that went
// dead at ERROR (a burst summarised), the retries at WARN, rate-limited
// per destination. The error text was cleaned and bounded in add.
func (c *completer) logFailures(failed []store.Failure) {
	for _, f := range failed {
		if f.Dead {
			c.dead.Error(f.Destination, "delivery dead: out of attempts; replay it once the destination is fixed",
				"destination", f.Destination, "event_id", f.EventID, "event_type", f.EventType,
				"attempts", f.Attempts, "error", f.Err)
			continue
		}
		l := c.retry[f.Destination]
		if l == nil {
			l = &ratelog.Logger{Log: c.cfg.Logger}
			c.retry[f.Destination] = l
		}
		l.Warn("delivery failed; will retry", "destination", f.Destination, "event_id", f.EventID, "event_type", f.EventType,
			"attempts", f.Attempts, "max_attempts", f.MaxAttempts, "next_attempt_at", f.NextAttempt, "error", f.Err)
	}
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
