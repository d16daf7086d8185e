package sink

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/dedup"
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
	// RetryDelay is how long a failed event waits before it is due again.
	// Defaults to 30s.
	RetryDelay time.Duration
	// FlushInterval is how often delivered ids are written. Defaults to 20ms.
	FlushInterval time.Duration
	// MaxBatch bounds the ids of one completion UPDATE. Defaults to 500.
	MaxBatch int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
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
	if c.RetryDelay == 0 {
		c.RetryDelay = 30 * time.Second
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 20 * time.Millisecond
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 500
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c DispatcherConfig) validate() error {
	switch {
	case c.Pool == nil || c.Sink == nil:
		return errors.New("sink: DispatcherConfig.Pool and Sink are required")
	case c.Workers < 1 || c.QueueSize < 1 || c.MaxBatch < 1:
		return errors.New("sink: Workers, QueueSize and MaxBatch must be positive")
	case c.DeliveryTimeout <= 0 || c.FlushInterval <= 0 || c.RetryDelay <= 0:
		return errors.New("sink: DeliveryTimeout, FlushInterval and RetryDelay must be positive")
	}
	return nil
}

// Dispatcher hands accepted events to worker goroutines that call the Sink.
// The queue is bounded; an event that does not fit stays pending in Postgres.
type Dispatcher struct {
	cfg       DispatcherConfig
	queue     chan *dedup.Event
	done      *completer
	ctx       context.Context // cancelled to abort deliveries at the end of Stop
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	mu        sync.RWMutex // guards closed against Enqueue
	closed    bool
	closeOnce sync.Once
	stopErr   error
}

// NewDispatcher starts the workers. Stop them with Stop.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		cfg:    cfg,
		queue:  make(chan *dedup.Event, cfg.QueueSize),
		done:   newCompleter(cfg.Pool, cfg.Logger, cfg.FlushInterval, cfg.MaxBatch),
		ctx:    ctx,
		cancel: cancel,
	}
	for range cfg.Workers {
		d.wg.Add(1)
		go d.work()
	}
	return d, nil
}

// Enqueue hands ev to the workers without blocking. It reports false when
// the queue is full or stopping; the event's row then stays pending.
func (d *Dispatcher) Enqueue(ev *dedup.Event) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return false
	}
	select {
	case d.queue <- ev:
		return true
	default:
		return false
	}
}

// QueueDepth is the number of events waiting for a worker.
func (d *Dispatcher) QueueDepth() int { return len(d.queue) }

func (d *Dispatcher) work() {
	defer d.wg.Done()
	for ev := range d.queue {
		d.deliver(ev)
	}
}

func (d *Dispatcher) deliver(ev *dedup.Event) {
	if d.ctx.Err() != nil {
		return // stopping: the row stays pending
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.DeliveryTimeout)
	err := d.cfg.Sink.Deliver(ctx, ev)
	cancel()
	if err == nil {
		d.done.delivered(ev.ID)
		return
	}
	d.cfg.Logger.Warn("delivery failed; the event stays pending", "event_id", ev.ID, "event_type", ev.Type, "error", err)
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	d.done.failed(fctx, ev.ID, err, d.cfg.RetryDelay)
	fcancel()
}

// Stop takes no more events, lets the workers drain the queue until ctx is
// done, then aborts what is left (it stays pending in Postgres), writes the
// last completions and closes the sink. It is safe to call more than once.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		close(d.queue)
		d.mu.Unlock()
		drained := make(chan struct{})
		go func() { d.wg.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-ctx.Done():
			d.cancel()
			<-drained
			d.stopErr = errors.New("sink: shutdown timeout reached; undelivered events stay pending")
		}
		d.cancel()
		d.done.close()
		if err := d.cfg.Sink.Close(); err != nil && d.stopErr == nil {
			d.stopErr = err
		}
	})
	return d.stopErr
}
