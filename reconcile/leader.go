package reconcile

import (
	"context"
	"time"
)

// runTimeout bounds one background run.
const runTimeout = time.Hour

// Start runs the reconciler every Interval (the first run after one
// interval), on one instance at a time: a run holds a Postgres advisory
// lock on its own connection, so when its instance dies the lock goes
// with the connection and another instance's next tick takes over, from
// the checkpoint. Interval 0 starts nothing.
func (r *Reconciler) Start() {
	if r.cfg.Interval <= 0 {
		return
	}
	r.started = true
	go r.loop()
}

// Stop ends the loop and waits for a run under way to stop; idempotent.
func (r *Reconciler) Stop() {
	if !r.started {
		return
	}
	r.once.Do(func() { close(r.stop) })
	<-r.done
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
