package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/sink"
)

// errSinkStuck is the error of a sink call that outlived its timeout
// without returning.
var errSinkStuck = errors.New("the sink did not return within DELIVERY_TIMEOUT")

// caller runs one worker's sink calls on a goroutine of its own, which
// lives as long as the worker: a goroutine per call would grow a fresh
// stack to the depth of an HTTP client every time.
type caller struct {
	sink  sink.Sink
	calls chan *sinkCall
}

// sinkCall is one Deliver; done is closed once the sink has returned.
type sinkCall struct {
	ctx  context.Context
	ev   *event.Event
	err  error
	done chan struct{}
}

func startCaller(s sink.Sink) *caller {
	// One slot: the worker sends a call only after the last one returned
	// (afterCall), or, when Stop cut that wait short, not at all.
	c := &caller{sink: s, calls: make(chan *sinkCall, 1)}
	go func() {
		for sc := range c.calls {
			sc.err = c.sink.Deliver(sc.ctx, sc.ev)
			close(sc.done)
		}
	}()
	return c
}

// stop ends the goroutine once its call under way, if any, returns.
func (c *caller) stop() { close(c.calls) }

// call runs one Deliver and returns by ctx's deadline even when the sink
// ignores ctx (a stalled pipe, a hung disk). The channel is closed once the
// sink has really returned.
func (c *caller) call(ctx context.Context, ev *event.Event) (<-chan struct{}, error) {
	sc := &sinkCall{ctx: ctx, ev: ev, done: make(chan struct{})}
	c.calls <- sc
	select {
	case <-sc.done:
		return sc.done, sc.err
	case <-ctx.Done():
		select {
		case <-sc.done: // returned just in time
			return sc.done, sc.err
		case <-time.After(10 * time.Millisecond):
		}
		return sc.done, fmt.Errorf("delivering %s: %w (%w)", ev.ID, errSinkStuck, ctx.Err())
	}
}
