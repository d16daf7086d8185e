package startstop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/startstop"
)

func TestStartAndStopRunOnce(t *testing.T) {
	t.Parallel()
	var s startstop.State
	starts, stops := 0, 0
	start := func(context.Context) error { starts++; return nil }
	stopErr := errors.New("not drained")
	stop := func(context.Context) error { stops++; return stopErr }
	ctx := context.Background()
	if err := s.Start(ctx, start); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, start); err != nil || starts != 1 {
		t.Fatalf("second Start: %v, %d starts; want nil and 1", err, starts)
	}
	if err := s.Stop(ctx, stop); !errors.Is(err, stopErr) {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(ctx, stop); !errors.Is(err, stopErr) || stops != 1 {
		t.Fatalf("second Stop: %v, %d stops; want the first one's error and 1", err, stops)
	}
	if err := s.Start(ctx, start); !errors.Is(err, startstop.ErrStopped) || starts != 1 {
		t.Fatalf("Start after Stop: %v, %d starts", err, starts)
	}
}

func TestStopBeforeStartDoesNothing(t *testing.T) {
	t.Parallel()
	var s startstop.State
	if err := s.Stop(context.Background(), func(context.Context) error { t.Error("stop ran"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background(), func(context.Context) error { t.Error("start ran"); return nil }); !errors.Is(err, startstop.ErrStopped) {
		t.Fatalf("Start after Stop: %v", err)
	}
}

func TestFailedStartMayBeRetried(t *testing.T) {
	t.Parallel()
	var s startstop.State
	if err := s.Start(context.Background(), func(context.Context) error { return errors.New("no port") }); err == nil || s.Started() {
		t.Fatalf("failed Start: %v, started %v", err, s.Started())
	}
	if err := s.Start(context.Background(), func(context.Context) error { return nil }); err != nil || !s.Started() {
		t.Fatalf("second Start: %v, started %v", err, s.Started())
	}
}

// A second Stop while the first drains waits for it, until its own ctx ends.
func TestSecondStopWaitsForTheFirst(t *testing.T) {
	t.Parallel()
	var s startstop.State
	_ = s.Start(context.Background(), func(context.Context) error { return nil })
	entered, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Stop(context.Background(), func(context.Context) error { close(entered); <-release; return nil })
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx, func(context.Context) error { t.Error("stop ran twice"); return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Stop during the first: %v, want its ctx's deadline", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}
