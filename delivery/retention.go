package delivery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// pruneSQL deletes one small batch of events older than the retention
// whose deliveries are all delivered (or that matched no destination), and
// those older than the dead retention with no pending delivery. It skips
// events another instance is pruning, so no statement holds locks for
// long, and walks by received_at from $4 on, so that events kept back
// (pending or dead deliveries) are passed once per pass. Deliveries and
// history go with their event (ON DELETE CASCADE). Rows of the previous
// version wait to be adopted.
// $1 retention ms, $2 dead retention ms, $3 batch size, $4 cursor.
const pruneSQL = `
WITH doomed AS (
	SELECT e.event_id, e.received_at FROM stripe_webhook_events e
	WHERE e.received_at < now() - $1::bigint * interval '1 millisecond'
		AND e.received_at >= $4
		AND e.status = 'routed'
		AND NOT EXISTS (
			SELECT 1 FROM stripe_webhook_deliveries d
			WHERE d.event_id = e.event_id
				AND (d.status = 'pending'
					OR (d.status = 'dead' AND e.received_at >= now() - $2::bigint * interval '1 millisecond')))
	ORDER BY e.received_at
	LIMIT $3
	FOR UPDATE OF e SKIP LOCKED),
gone AS (
	DELETE FROM stripe_webhook_events e USING doomed WHERE e.event_id = doomed.event_id
	RETURNING e.received_at)
SELECT count(*), max(received_at) FROM gone`

// PrunerConfig configures a Pruner.
type PrunerConfig struct {
	// Pool holds the ledger and the deliveries. Required.
	Pool *pgxpool.Pool
	// Retention is how long delivered events are kept (RETENTION). Defaults to 720h.
	Retention time.Duration
	// DeadRetention is how long an event with a dead delivery is kept for
	// replay. Defaults to 3 × Retention.
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

// Pruner deletes events older than Retention once every delivery of theirs
// is delivered, and those older than DeadRetention once none is pending;
// an event with a pending delivery is never pruned.
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

// Prune runs one pass, batch by batch, until ctx ends, and returns the
// events it deleted.
func (p *Pruner) Prune(ctx context.Context) (int64, error) {
	var total int64
	cursor := time.Time{}
	for {
		bctx, cancel := context.WithTimeout(ctx, pruneTimeout)
		var n int64
		var last pgtype.Timestamptz
		err := p.cfg.Pool.QueryRow(bctx, pruneSQL, p.cfg.Retention.Milliseconds(), p.cfg.DeadRetention.Milliseconds(),
			p.cfg.BatchSize, cursor).Scan(&n, &last)
		cancel()
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(p.cfg.BatchSize) || !last.Valid {
			return total, nil
		}
		cursor = last.Time
	}
}

// Stop ends pruning, cancelling a DELETE under way; it is safe to call
// more than once.
func (p *Pruner) Stop() {
	p.cancel()
	p.wg.Wait()
}
