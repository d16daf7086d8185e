package reconcile

import (
	"context"
	"time"

	"github.com/oncehook/oncehook/internal/startstop"
)

// runTimeout bounds one background run.
const runTimeout = time.Hour

// Start runs the reconciler every Interval (the first run after one
// interval), on one instance at a time: a run holds a Postgres advisory
// lock on its own connection, so when its instance dies the lock goes
// with the connection and another instance's next tick takes over, from
// the checkpoint. Interval 0 starts nothing. The loop runs until Stop:
// ctx's end does not stop it. A second Start does nothing; a Start after
// Stop returns startstop.ErrStopped.
func (r *Reconciler) Start(ctx context.Context) error {
	return r.state.Start(ctx, func(context.Context) error {
		if r.cfg.Interval <= 0 {
			close(r.done)
			return nil
		}
		go r.loop()
		return nil
	})
}

// Stop ends the loop, cancelling a run under way, and waits for the run
// to stop until ctx ends. Stop before Start and a second Stop do nothing.
func (r *Reconciler) Stop(ctx context.Context) error {
	return r.state.Stop(ctx, func(ctx context.Context) error {
		close(r.stop)
		return startstop.Wait(ctx, r.done)
	})
}

func (r *Reconciler) loop() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-r.stop
		cancel()
	}()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.tick(ctx)
	}
}

// tick runs once if this instance gets the lock.
func (r *Reconciler) tick(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	release, leader, err := r.store.TryLead(ctx, lockKey)
	if err != nil {
		r.cfg.Logger.Warn("reconcile: taking the leader lock failed", "error", err)
		r.cfg.Metrics.ReconcileRun("failed")
		return
	}
	if !leader {
		r.cfg.Metrics.ReconcileRun("skipped")
		return
	}
	defer release()
	// Every instance ticks each Interval; the lock only keeps runs apart.
	// One that finds the checkpoint moved less than half an interval ago
	// leaves the run to the instance that moved it.
	if recent, err := r.store.CheckpointMovedWithin(ctx, r.listing, r.cfg.Interval/2); err == nil && recent {
		r.cfg.Metrics.ReconcileRun("skipped")
		return
	}
	sum, err := r.RunOnce(ctx, Run{})
	if err != nil {
		r.cfg.Logger.Error("reconcile: run failed; the next run goes on from the checkpoint (moved only past slices fully stored)",
			"pages", sum.Pages, "seen", sum.Seen, "missing", sum.Missing, "stored", sum.Stored, "error", err)
		r.cfg.Metrics.ReconcileRun("failed")
		return
	}
	r.cfg.Logger.Info("reconcile: run done", "since", sum.Since, "through", sum.Through,
		"pages", sum.Pages, "seen", sum.Seen, "missing", sum.Missing, "stored", sum.Stored)
	r.cfg.Metrics.ReconcileRun("ok")
}
