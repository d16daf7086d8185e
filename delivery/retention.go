package delivery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// pruneSQL deletes one small batch of old rows of one status, skipping rows
// another instance is pruning, so no statement holds locks for long. The
// delivery history goes with its event (ON DELETE CASCADE).
// $1 status, $2 age ms, $3 batch size.
const pruneSQL = `
DELETE FROM stripe_webhook_events
WHERE event_id IN (
	SELECT event_id FROM stripe_webhook_events
	WHERE status = $1 AND received_at < now() - $2::bigint * interval '1 millisecond'
	LIMIT $3
	FOR UPDATE SKIP LOCKED)`

// PrunerConfig configures a Pruner.
type PrunerConfig struct {
	// Pool holds stripe_webhook_events. Required.
	Pool *pgxpool.Pool
	// Retention is how long delivered rows are kept (RETENTION). Defaults to 720h.
	Retention time.Duration
	// DeadRetention is how long dead rows are kept for replay. Defaults to
	// 3 × Retention.
	DeadRetention time.Duration
	// Interval is the pause between pruning passes. Defaults to 1m.
	Interval time.Duration
	// BatchSize bounds the rows of one DELETE. Defaults to 500.
	BatchSize int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics counts errors; nil records nothing.
	Metrics *metrics.Metrics
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c PrunerConfig) WithDefaults() PrunerConfig {
	if c.Retention == 0 {
		c.Retention = 720 * time.Hour
	}
	if c.DeadRetention == 0 {
		c.DeadRetention = 3 * c.Retention
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Pruner deletes delivered rows older than Retention and dead rows older
// than DeadRetention; pending rows are never pruned.
type Pruner struct {
	cfg    PrunerConfig
	errs   ratelog.Logger
	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewPruner checks cfg; call Start to prune in the background, or Prune
// for one pass.
func NewPruner(cfg PrunerConfig) (*Pruner, error) {
	cfg = cfg.WithDefaults()
	if cfg.Pool == nil || cfg.Retention <= 0 || cfg.DeadRetention < cfg.Retention || cfg.BatchSize < 1 || cfg.Interval <= 0 {
		return nil, errors.New("delivery: PrunerConfig needs a Pool, positive Retention, Interval and BatchSize, and DeadRetention at least Retention")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pruner{cfg: cfg, errs: ratelog.Logger{Log: cfg.Logger}, ctx: ctx, cancel: cancel}, nil
}

// Start prunes every Interval until Stop.
func (p *Pruner) Start() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			if _, err := p.Prune(p.ctx); err != nil && p.ctx.Err() == nil {
				p.cfg.Metrics.PostgresError("prune")
				p.errs.Warn("pruning old events failed", "error", err)
			}
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(p.cfg.Interval):
			}
		}
	}()
}

// pruneTimeout bounds one DELETE.
const pruneTimeout = 30 * time.Second

// Prune runs one pass, batch by batch, until ctx ends, and returns the rows
// it deleted.
func (p *Pruner) Prune(ctx context.Context) (int64, error) {
	var total int64
	for _, rule := range []struct {
		status string
		age    time.Duration
	}{{"delivered", p.cfg.Retention}, {"dead", p.cfg.DeadRetention}} {
		for {
			bctx, cancel := context.WithTimeout(ctx, pruneTimeout)
			tag, err := p.cfg.Pool.Exec(bctx, pruneSQL, rule.status, rule.age.Milliseconds(), p.cfg.BatchSize)
			cancel()
			if err != nil {
				return total, err
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < int64(p.cfg.BatchSize) {
				break
			}
		}
	}
	return total, nil
}

// Stop ends pruning, cancelling a DELETE under way; it is safe to call
// more than once.
func (p *Pruner) Stop() {
	p.cancel()
	p.wg.Wait()
}
