package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/ratelog"
)

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
