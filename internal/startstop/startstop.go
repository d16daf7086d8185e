// Package startstop holds the start and stop state that every background
// part of oncehook shares, so that each has one lifecycle:
//
//	Start(ctx context.Context) error
//	Stop(ctx context.Context) error
//
// Start runs the part's start function once. A second Start while it runs
// is a no-op that returns nil; a Start after Stop returns ErrStopped: a
// part does not start again (build a new one). A start function that fails
// leaves the part not started, so Start may be called again.
//
// Stop runs the part's stop function once, if Start succeeded. Stop before
// Start, and every Stop after the first, are no-ops as to the part: a later
// Stop waits for the first one to finish, until its own ctx ends, and
// returns the first one's error (or its ctx's). Stop's ctx bounds the
// drain: the stop function returns by ctx's end, leaving behind what did
// not finish.
//
// After river's rivershared/startstop, smaller: oncehook's parts are not
// restarted.
package startstop

import (
	"context"
	"errors"
	"sync"
)

// ErrStopped is Start's answer after Stop.
var ErrStopped = errors.New("stopped; a stopped part does not start again")

// State is one part's lifecycle. Its zero value is ready to use; it must
// not be copied.
type State struct {
	mu       sync.Mutex
	started  bool
	stopping bool
	done     chan struct{} // closed once the first Stop has returned
	err      error         // the first Stop's; read after done is closed
}

// Start runs start unless the part is started or stopped already.
func (s *State) Start(ctx context.Context, start func(context.Context) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopping:
		return ErrStopped
	case s.started:
		return nil
	}
	if err := start(ctx); err != nil {
		return err
	}
	s.started = true
	return nil
}

// Stop runs stop the first time it is called, if Start succeeded before.
func (s *State) Stop(ctx context.Context, stop func(context.Context) error) error {
	s.mu.Lock()
	if s.stopping {
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
			return s.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.stopping = true
	s.done = make(chan struct{})
	started := s.started
	s.mu.Unlock()
	if started {
		s.err = stop(ctx)
	}
	close(s.done)
	return s.err
}

// Started reports whether Start succeeded; it stays true after Stop.
func (s *State) Started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// Wait waits for done until ctx ends, and then returns ctx's error: a stop
// function's bounded wait for its goroutines. What is still running then
// is left behind.
func Wait(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitGroup waits for wg like Wait.
func WaitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return Wait(ctx, done)
}
