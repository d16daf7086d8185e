package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	// Pool holds stripe_webhook_events, where delivery state is kept. Required.
	Pool *pgxpool.Pool
	// Sink receives the events. Required.
	Sink Sink
	// Workers is the number of delivery goroutines. Defaults to 32.
	Workers int
	// QueueSize bounds the in-process hand-off. Defaults to 10000.
	QueueSize int
	// DeliveryTimeout bounds one Deliver call. Defaults to 10s.
	DeliveryTimeout time.Duration
	// MaxAttempts is how many failed attempts make an event dead. Defaults to 15.
	MaxAttempts int
	// RetryBase is the delay after the first failure; each further failure
	// doubles it, up to RetryMax, with jitter of up to half. Defaults to 1s.
	RetryBase time.Duration
	// RetryMax caps the delay between attempts. Defaults to 1h.
	RetryMax time.Duration
	// Lease is how long an instance owns a row it is delivering; another
	// instance's sweeper takes the row only after it. It must match the
	// intake's dedup.Config.Lease. Defaults to the larger of 1m and
	// 3 × DeliveryTimeout.
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
		return errors.New("sink: DispatcherConfig.Pool and Sink are required")
	case c.Workers < 1 || c.QueueSize < 1 || c.MaxBatch < 1 || c.SweepBatch < 1 || c.MaxAttempts < 1:
		return errors.New("sink: Workers, QueueSize, MaxBatch, SweepBatch and MaxAttempts must be positive")
	case c.DeliveryTimeout <= 0 || c.FlushInterval <= 0 || c.RetryBase <= 0 || c.RetryMax < c.RetryBase || c.SweepInterval <= 0:
		return errors.New("sink: DeliveryTimeout, FlushInterval, RetryBase and SweepInterval must be positive, RetryMax at least RetryBase")
	case c.Lease < c.DeliveryTimeout+2*leaseMargin:
		return fmt.Errorf("sink: Lease %s must exceed DeliveryTimeout by at least %s", c.Lease, 2*leaseMargin)
	}
	return nil
}

// job is one event to deliver while this instance holds its lease.
type job struct {
	ev         *dedup.Event
	leaseUntil time.Time // local clock; already less leaseMargin
}

// Dispatcher delivers events to the Sink: those the intake hands over, and
// those its sweeper claims from Postgres (due retries, and rows whose owner
// died). The queue is bounded; an event that does not fit stays pending.
type Dispatcher struct {
	cfg      DispatcherConfig
	queue    chan job
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
// blocking; leasedAt is no later than the start of the row's lease. It
// reports false when the queue is full or stopping; the row then stays
// pending and a sweeper delivers it once its lease ends.
func (d *Dispatcher) Enqueue(ev *dedup.Event, leasedAt time.Time) bool {
	return d.offer(job{ev: ev, leaseUntil: leasedAt.Add(d.cfg.Lease - leaseMargin)})
}

func (d *Dispatcher) offer(j job) bool {
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

// free is the room left in the queue.
func (d *Dispatcher) free() int { return cap(d.queue) - len(d.queue) }

// QueueDepth is the number of events waiting for a worker.
func (d *Dispatcher) QueueDepth() int { return len(d.queue) }

func (d *Dispatcher) work() {
	defer d.workers.Done()
	for j := range d.queue {
		d.deliver(j)
	}
}

func (d *Dispatcher) deliver(j job) {
	if d.ctx.Err() != nil {
		return // stopping: the row stays pending
	}
	if time.Now().Add(d.cfg.DeliveryTimeout).After(j.leaseUntil) {
		return // the lease could end mid-delivery: leave the row to a sweeper
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.DeliveryTimeout)
	err := d.cfg.Sink.Deliver(ctx, j.ev)
	cancel()
	if err != nil && d.ctx.Err() != nil {
		return // aborted by Stop, not the sink's fault: the row stays pending, no attempt counted
	}
	if err != nil {
		d.failLog.Warn("delivery failed; will retry", "event_id", j.ev.ID, "event_type", j.ev.Type, "error", err)
	}
	d.results.add(j.ev.ID, err)
}

// Stop takes no more events, stops the sweeper, lets the workers drain the
// queue until ctx is done, then aborts what is left (it stays pending in
// Postgres), writes the last results and closes the sink. It is safe to
// call more than once.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() {
		d.sweeper.stop()
		d.mu.Lock()
		d.closed = true
		close(d.queue)
		d.mu.Unlock()
		drained := make(chan struct{})
		go func() { d.workers.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-ctx.Done():
			d.cancel()
			<-drained
			d.stopErr = errors.New("sink: shutdown timeout reached; undelivered events stay pending")
		}
		d.cancel()
		d.results.close()
		if err := d.cfg.Sink.Close(); err != nil && d.stopErr == nil {
			d.stopErr = err
		}
	})
	return d.stopErr
}
