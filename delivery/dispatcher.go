package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/sink"
)

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	// Pool holds stripe_webhook_events, where delivery state is kept. Required.
	Pool *pgxpool.Pool
	// Sink receives the events. Required.
	Sink sink.Sink
	// Workers is the number of delivery goroutines. Defaults to 32.
	Workers int
	// QueueSize bounds the events in the in-process hand-off. Defaults to 10000.
	QueueSize int
	// QueueMaxBytes bounds the payload bytes held by queued events and
	// deliveries under way; the sweeper may pass it by one event, so that a
	// large one is never stuck. An event that does not fit stays pending in
	// Postgres for the sweeper. Defaults to 64 MiB.
	QueueMaxBytes int64
	// DeliveryTimeout bounds one Deliver call. Defaults to 10s.
	DeliveryTimeout time.Duration
	// MaxAttempts is how many failed attempts make an event dead, at most
	// MaxAttemptsLimit. Defaults to 15.
	MaxAttempts int
	// RetryBase is the delay after the first failure; each further failure
	// doubles it, up to RetryMax, with jitter of up to half. Defaults to 1s.
	RetryBase time.Duration
	// RetryMax caps the delay between attempts. Defaults to 1h.
	RetryMax time.Duration
	// Lease is how long the sweeper's claims last: an instance owns a row
	// it claimed for this long, and another instance's sweeper takes the
	// row only after it. Rows handed over by the intake come with their own
	// lease (dedup.Lease). Defaults to the larger of 1m and 3 × DeliveryTimeout.
	Lease time.Duration
	// SweepInterval is how often due and orphaned rows are claimed. Defaults to 1s.
	SweepInterval time.Duration
	// SweepBatch bounds the rows claimed at once. Defaults to 200.
	SweepBatch int
	// FlushInterval is how often delivery results are written. Defaults to 20ms.
	FlushInterval time.Duration
	// MaxBatch bounds the results of one write. Defaults to 1000.
	MaxBatch int
	// Instance names this process in the delivery history. Defaults to host:pid.
	Instance string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics counts deliveries and errors; nil records nothing.
	Metrics *metrics.Metrics
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c DispatcherConfig) WithDefaults() DispatcherConfig {
	if c.Workers == 0 {
		c.Workers = 32
	}
	if c.QueueSize == 0 {
		c.QueueSize = 10000
	}
	if c.QueueMaxBytes == 0 {
		c.QueueMaxBytes = DefaultQueueMaxBytes
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 10 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 15
	}
	if c.RetryBase == 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = time.Hour
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease(c.DeliveryTimeout)
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Second
	}
	if c.SweepBatch == 0 {
		c.SweepBatch = 200
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 20 * time.Millisecond
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1000
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// DefaultQueueMaxBytes is QueueMaxBytes's default.
const DefaultQueueMaxBytes = 64 << 20

// MaxAttemptsLimit bounds MaxAttempts: past a thousand failures an event is
// better dead and replayed by hand than retried hourly for six weeks.
const MaxAttemptsLimit = 1000

// DefaultLease is the lease for a delivery timeout: the larger of 1m and
// 3 × timeout.
func DefaultLease(deliveryTimeout time.Duration) time.Duration {
	return max(time.Minute, 3*deliveryTimeout)
}

// leaseMargin is kept free at the end of a lease: a worker does not start a
// delivery that could still run then, because the row may be re-claimed.
const leaseMargin = 5 * time.Second

func (c DispatcherConfig) validate() error {
	switch {
	case c.Pool == nil || c.Sink == nil:
		return errors.New("delivery: DispatcherConfig.Pool and Sink are required")
	case c.Workers < 1 || c.QueueSize < 1 || c.QueueMaxBytes < 1 || c.MaxBatch < 1 || c.SweepBatch < 1 || c.MaxAttempts < 1:
		return errors.New("delivery: Workers, QueueSize, QueueMaxBytes, MaxBatch, SweepBatch and MaxAttempts must be positive")
	case c.MaxAttempts > MaxAttemptsLimit:
		return fmt.Errorf("delivery: MaxAttempts %d is more than %d", c.MaxAttempts, MaxAttemptsLimit)
	case c.DeliveryTimeout <= 0 || c.FlushInterval <= 0 || c.RetryBase <= 0 || c.RetryMax < c.RetryBase || c.SweepInterval <= 0:
		return errors.New("delivery: DeliveryTimeout, FlushInterval, RetryBase and SweepInterval must be positive, RetryMax at least RetryBase")
	case c.Lease < c.DeliveryTimeout+2*leaseMargin:
		return fmt.Errorf("delivery: Lease %s must exceed DeliveryTimeout by at least %s", c.Lease, 2*leaseMargin)
	}
	return nil
}

// job is one event to deliver while this instance holds its lease.
type job struct {
	ev         *dedup.Event
	lease      time.Time // the row's locked_until: the lease's token
	leaseUntil time.Time // local clock; already less leaseMargin
}

// Dispatcher delivers events to the Sink: those the intake hands over, and
// those its sweeper claims from Postgres (due retries, and rows whose owner
// died). The queue is bounded in events and in bytes; an event that does
// not fit stays pending.
type Dispatcher struct {
	cfg      DispatcherConfig
	queue    chan job
	bytes    atomic.Int64 // payload bytes of queued jobs and calls under way
	results  *completer
	sweeper  *sweeper
	ctx      context.Context // cancelled to abort deliveries at the end of Stop
	cancel   context.CancelFunc
	workers  sync.WaitGroup
	mu       sync.RWMutex // guards closed against Enqueue
	closed   bool
	stopOnce sync.Once
	stopErr  error
	failLog  ratelog.Logger
}

// NewDispatcher starts the workers and the sweeper. Stop them with Stop.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		cfg:     cfg,
		queue:   make(chan job, cfg.QueueSize),
		results: newCompleter(cfg),
		ctx:     ctx,
		cancel:  cancel,
		failLog: ratelog.Logger{Log: cfg.Logger},
	}
	for range cfg.Workers {
		d.workers.Add(1)
		go d.work()
	}
	d.sweeper = startSweeper(cfg, d)
	return d, nil
}

// Enqueue hands an event the intake just stored to the workers, without
// blocking. It reports false when the queue is full (in events or bytes)
// or stopping; the row then stays pending and a sweeper delivers it once
// its lease ends.
func (d *Dispatcher) Enqueue(ev *dedup.Event, lease dedup.Lease) bool {
	return d.offer(job{ev: ev, lease: lease.Until, leaseUntil: lease.Start.Add(lease.Length - leaseMargin)})
}

func (d *Dispatcher) offer(j job) bool {
	if !d.reserve(int64(len(j.ev.Payload))) {
		return false
	}
	if !d.offerReserved(j) {
		d.release(int64(len(j.ev.Payload)))
		return false
	}
	return true
}

// offerReserved queues j, whose bytes the caller has reserved.
func (d *Dispatcher) offerReserved(j job) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return false
	}
	select {
	case d.queue <- j:
		return true
	default:
		return false
	}
}

// reserve takes n bytes of QueueMaxBytes. An event larger than the whole
// bound still goes through alone, so that none waits forever.
func (d *Dispatcher) reserve(n int64) bool {
	for {
		held := d.bytes.Load()
		if held > 0 && held+n > d.cfg.QueueMaxBytes {
			return false
		}
		if d.bytes.CompareAndSwap(held, held+n) {
			return true
		}
	}
}

func (d *Dispatcher) release(n int64) { d.bytes.Add(-n) }

// roomBytes is what is left under QueueMaxBytes (negative past it).
func (d *Dispatcher) roomBytes() int64 { return d.cfg.QueueMaxBytes - d.bytes.Load() }

// freeSlots is the room left in the queue, in events.
func (d *Dispatcher) freeSlots() int { return cap(d.queue) - len(d.queue) }

// QueueDepth is the number of events waiting for a worker.
func (d *Dispatcher) QueueDepth() int { return len(d.queue) }

// QueueBytes is the payload bytes held by queued events and deliveries
// under way.
func (d *Dispatcher) QueueBytes() int64 { return d.bytes.Load() }

func (d *Dispatcher) work() {
	defer d.workers.Done()
	for j := range d.queue {
		d.deliver(j)
	}
}

func (d *Dispatcher) deliver(j job) {
	size := int64(len(j.ev.Payload))
	if d.ctx.Err() != nil {
		d.release(size)
		return // stopping: the row stays pending
	}
	if time.Now().Add(d.cfg.DeliveryTimeout).After(j.leaseUntil) {
		d.release(size)
		return // the lease could end mid-delivery: leave the row to a sweeper
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.DeliveryTimeout)
	returned, err := d.call(ctx, j.ev)
	cancel()
	if err != nil && d.ctx.Err() != nil {
		d.afterCall(returned, size)
		return // aborted by Stop, not the sink's fault: the row stays pending, no attempt counted
	}
	if err != nil {
		d.failLog.Warn("delivery failed; will retry", "event_id", j.ev.ID, "event_type", j.ev.Type, "error", err)
	}
	d.results.add(j.ev.ID, j.lease, err)
	d.afterCall(returned, size)
}

// errSinkStuck is the error of a sink call that outlived its timeout
// without returning.
var errSinkStuck = errors.New("the sink did not return within DELIVERY_TIMEOUT")

// call runs one Deliver and returns by ctx's deadline even when the sink
// ignores ctx (a stalled pipe, a hung disk). The channel is closed once the
// sink has really returned.
func (d *Dispatcher) call(ctx context.Context, ev *dedup.Event) (<-chan struct{}, error) {
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = d.cfg.Sink.Deliver(ctx, ev)
	}()
	select {
	case <-done:
		return done, err
	case <-ctx.Done():
		select {
		case <-done: // returned just in time
			return done, err
		case <-time.After(10 * time.Millisecond):
		}
		return done, fmt.Errorf("delivering %s: %w (%w)", ev.ID, errSinkStuck, ctx.Err())
	}
}

// afterCall waits for an abandoned sink call to return before the worker
// takes the next event, so stuck calls never outnumber the workers and
// their payloads stay counted; Stop ends the wait.
func (d *Dispatcher) afterCall(returned <-chan struct{}, size int64) {
	select {
	case <-returned:
		d.release(size)
	case <-d.ctx.Done():
		go func() { <-returned; d.release(size) }()
	}
}

// stopReserve is the share of Stop's time kept for writing the last results
// and closing the sink after the workers are aborted.
func stopReserve(ctx context.Context) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return min(time.Until(deadline)/4, 2*time.Second)
}

// Stop takes no more events, stops the sweeper, lets the workers drain the
// queue until ctx is nearly done, then aborts what is left (it stays
// pending in Postgres), writes the last results and closes the sink. Every
// step ends by ctx's deadline, even with a sink that does not return. It
// is safe to call more than once.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() {
		deadline, hasDeadline := ctx.Deadline()
		drainCtx, cancelDrain := context.WithDeadline(ctx, deadline.Add(-stopReserve(ctx)))
		if !hasDeadline {
			cancelDrain()
			drainCtx, cancelDrain = context.WithCancel(ctx)
		}
		defer cancelDrain()
		d.sweeper.stop(drainCtx)
		d.mu.Lock()
		d.closed = true
		close(d.queue)
		d.mu.Unlock()
		drained := make(chan struct{})
		go func() { d.workers.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-drainCtx.Done():
			d.cancel()
			<-drained // prompt: calls under way return at once when cancelled, or are abandoned
			d.stopErr = errors.New("delivery: shutdown timeout reached; undelivered events stay pending")
		}
		d.cancel()
		if !hasDeadline {
			deadline = time.Now().Add(10 * time.Second)
		}
		d.results.close(deadline)
		closed := make(chan error, 1)
		go func() { closed <- d.cfg.Sink.Close() }()
		select {
		case err := <-closed:
			if err != nil && d.stopErr == nil {
				d.stopErr = err
			}
		case <-time.After(time.Until(deadline)):
			if d.stopErr == nil {
				d.stopErr = errors.New("delivery: closing the sink did not finish by the shutdown deadline")
			}
		}
	})
	return d.stopErr
}
