package delivery

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/startstop"
)

// job is one event to deliver while this instance holds its lease.
type job struct {
	ev         *event.Event
	lease      time.Time // the delivery row's locked_until: the lease's token
	leaseUntil time.Time // local clock; already less leaseMargin
}

// lane is one destination's delivery: its bounded queue (in events and in
// bytes), its workers and its sweeper. Lanes share nothing but the result
// writer, so a destination that is down or slow holds up only its own.
type lane struct {
	dest     Destination
	d        *Dispatcher
	queue    chan job
	maxBytes int64
	bytes    atomic.Int64 // payload bytes of queued jobs, calls under way and held arrivals
	sweeper  *sweeper
	pacer    *pacer
	workers  sync.WaitGroup
	mu       sync.RWMutex // guards closed against offers
	closed   bool
	stopping chan struct{} // closed with the queue: a wait for a slot gives up
	state    startstop.State
}

func newLane(d *Dispatcher, dest Destination, maxBytes int64) (*lane, error) {
	p, err := newPacer(d.cfg, dest)
	if err != nil {
		return nil, err
	}
	l := &lane{dest: dest, d: d, queue: make(chan job, d.cfg.QueueSize), maxBytes: maxBytes, pacer: p, stopping: make(chan struct{})}
	l.sweeper = newSweeper(d.cfg, l)
	return l, nil
}

// Start starts the lane's workers and its sweeper. Events offered before
// wait in the queue. A second Start does nothing.
func (l *lane) Start(ctx context.Context) error {
	return l.state.Start(ctx, func(ctx context.Context) error {
		for range l.dest.Workers {
			l.workers.Add(1)
			go l.work()
		}
		return l.sweeper.Start(ctx)
	})
}

// Stop stops the sweeper, takes no more events and lets the workers drain
// the queue until ctx ends; then it returns ctx's error, and the workers
// still running end once the Dispatcher aborts its deliveries. A second
// Stop does nothing.
func (l *lane) Stop(ctx context.Context) error {
	return l.state.Stop(ctx, func(ctx context.Context) error {
		_ = l.sweeper.Stop(ctx) // a cancelled claim's rows are swept again after their lease
		l.close()
		return startstop.WaitGroup(ctx, &l.workers)
	})
}

func (l *lane) offer(j job) bool {
	if !l.reserve(int64(len(j.ev.Payload))) {
		return false
	}
	if !l.offerReserved(j) {
		l.release(int64(len(j.ev.Payload)))
		return false
	}
	return true
}

// offerReserved queues j, whose bytes the caller has reserved.
func (l *lane) offerReserved(j job) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false
	}
	select {
	case l.queue <- j:
		return true
	default:
		return false
	}
}

// reserve takes n bytes of the lane's share. An event larger than the
// whole share still goes through alone, so that none waits forever.
func (l *lane) reserve(n int64) bool {
	for {
		held := l.bytes.Load()
		if held > 0 && held+n > l.maxBytes {
			return false
		}
		if l.bytes.CompareAndSwap(held, held+n) {
			return true
		}
	}
}

func (l *lane) release(n int64) { l.bytes.Add(-n) }

// roomBytes is what is left of the lane's share (negative past it).
func (l *lane) roomBytes() int64 { return l.maxBytes - l.bytes.Load() }

// freeSlots is the room left in the queue, in events.
func (l *lane) freeSlots() int { return cap(l.queue) - len(l.queue) }

func (l *lane) work() {
	defer l.workers.Done()
	c := startCaller(l.dest.Sink)
	defer c.stop()
	for j := range l.queue {
		l.deliver(j, c)
	}
}

func (l *lane) deliver(j job, c *caller) {
	size := int64(len(j.ev.Payload))
	ctx := l.d.ctx
	if ctx.Err() != nil {
		l.release(size)
		return // stopping: the row stays pending
	}
	if time.Now().Add(l.dest.DeliveryTimeout).After(j.leaseUntil) {
		l.release(size)
		return // the lease could end mid-delivery: leave the row to a sweeper
	}
	if !l.pacer.take(ctx, j.leaseUntil.Add(-l.dest.DeliveryTimeout), l.stopping) {
		l.release(size)
		return // no slot within the lease, or stopping: the row stays pending for a sweeper, no attempt counted
	}
	cctx, cancel := context.WithTimeout(ctx, l.dest.DeliveryTimeout)
	returned, err := c.call(cctx, j.ev)
	cancel()
	if err != nil && ctx.Err() != nil {
		l.afterCall(returned, size)
		return // aborted by Stop, not the sink's fault: the row stays pending, no attempt counted
	}
	// A failure is logged once its result is written: only then is it
	// known whether the delivery will be retried or went dead.
	l.d.results.add(result{id: j.ev.ID, typ: j.ev.Type, dest: l.dest.Name, lease: j.lease, maxAttempts: l.dest.MaxAttempts,
		ordered: j.ev.OrderKey != ""}, err)
	l.afterCall(returned, size)
}

// afterCall waits for an abandoned sink call to return before the worker
// takes the next event, so stuck calls never outnumber the workers and
// their payloads (and in-flight slots) stay counted; Stop ends the wait.
func (l *lane) afterCall(returned <-chan struct{}, size int64) {
	select {
	case <-returned:
		l.release(size)
		l.pacer.done()
	case <-l.d.ctx.Done():
		go func() { <-returned; l.release(size); l.pacer.done() }()
	}
}

// close takes no more events; the workers drain what is queued.
func (l *lane) close() {
	l.mu.Lock()
	l.closed = true
	close(l.queue)
	close(l.stopping)
	l.mu.Unlock()
}
