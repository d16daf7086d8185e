package dedup

import (
	"errors"
	"sync"
)

var (
	errLoopFull   = errors.New("queue full")
	errLoopClosed = errors.New("not running")
)

// batchLoop is group commit in general: items sent by many goroutines are
// handed to fn in batches. A worker takes the first item waiting, then what
// else is already queued, up to max, without waiting; so an idle loop runs
// each item at once and a busy one gathers while earlier batches run.
type batchLoop[T any] struct {
	in      chan T
	max     int
	workers int
	fn      func([]T)
	stop    chan struct{}
	wg      sync.WaitGroup

	mu     sync.RWMutex // guards open and closed against send
	open   bool         // between start and close
	closed bool
}

// newBatchLoop makes a loop whose start runs workers running fn over
// batches of at most max items; at most queue items wait.
func newBatchLoop[T any](workers, queue, max int, fn func([]T)) *batchLoop[T] {
	return &batchLoop[T]{in: make(chan T, queue), max: max, workers: workers, fn: fn, stop: make(chan struct{})}
}

// start starts the workers, once; a closed loop stays closed.
func (l *batchLoop[T]) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open || l.closed {
		return
	}
	l.open = true
	for range l.workers {
		l.wg.Add(1)
		go l.run()
	}
}

// send queues v without blocking: errLoopFull or errLoopClosed (also
// before start) when it cannot.
func (l *batchLoop[T]) send(v T) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.open {
		return errLoopClosed
	}
	select {
	case l.in <- v:
		return nil
	default:
		return errLoopFull
	}
}

// busy reports whether the queue is more than half full.
func (l *batchLoop[T]) busy() bool { return 2*len(l.in) > cap(l.in) }

// close runs what is queued and stops the workers; later sends fail.
func (l *batchLoop[T]) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	wasOpen := l.open
	l.open, l.closed = false, true
	l.mu.Unlock()
	if wasOpen {
		close(l.stop)
		l.wg.Wait()
	}
}

func (l *batchLoop[T]) run() {
	defer l.wg.Done()
	batch := make([]T, 0, l.max)
	for {
		select {
		case v := <-l.in:
			batch = append(batch[:0], v)
		case <-l.stop:
			for { // drain what is left
				batch = l.gather(batch[:0])
				if len(batch) == 0 {
					return
				}
				l.fn(batch)
			}
		}
		l.fn(l.gather(batch))
	}
}

// gather adds what is already queued, up to max, without waiting.
func (l *batchLoop[T]) gather(batch []T) []T {
	for len(batch) < l.max {
		select {
		case v := <-l.in:
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}
