package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/store"
)

// adoptBatch bounds the legacy rows adopted by one statement, so that
// each holds its row locks briefly.
const adoptBatch = 1000

// adopter moves rows of the previous version (the ledger's rows from
// before the upgrade, and those that previous-version instances still
// write during a rolling upgrade) into destination "default", once their
// lease has ended, so that they are delivered, listed and pruned like any
// other; see migrations/0006_deliveries.sql. After an upgrade it works
// through the old ledger batch by batch; later it finds nothing, through
// an empty partial index.
type adopter struct {
	cfg    DispatcherConfig
	errs   ratelog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	state  startstop.State
}

func newAdopter(cfg DispatcherConfig) *adopter {
	return &adopter{cfg: cfg, errs: ratelog.Logger{Log: cfg.Logger}}
}

// Start adopts every SweepInterval until Stop; ctx's end does not stop it.
// A second Start does nothing.
func (a *adopter) Start(ctx context.Context) error {
	return a.state.Start(ctx, func(ctx context.Context) error {
		a.ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
		a.wg.Add(1)
		go a.run()
		return nil
	})
}

func (a *adopter) run() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(a.cfg.SweepInterval):
		}
		start := time.Now()
		n, err := store.New(a.cfg.Pool).AdoptLegacy(a.ctx, adoptBatch)
		if err != nil && a.ctx.Err() == nil {
			a.cfg.Metrics.PostgresError("adopt", err)
			a.errs.Warn("adopting rows of the previous version failed", "error", err, "adopted", n)
		}
		if n > 0 {
			a.cfg.Logger.Info("adopted rows of the previous version into destination default",
				"rows", n, "took", time.Since(start).Round(time.Millisecond).String())
		}
	}
}

// Stop ends the adoption, cancelling a statement under way, and waits for
// it until ctx ends; a second Stop does nothing.
func (a *adopter) Stop(ctx context.Context) error {
	return a.state.Stop(ctx, func(ctx context.Context) error {
		a.cancel()
		return startstop.WaitGroup(ctx, &a.wg)
	})
}
