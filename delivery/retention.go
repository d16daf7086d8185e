package delivery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
	"github.com/oncehook/oncehook/internal/startstop"
)

// keptSQL is true for an event that must be kept: a delivery of it is
// pending, or went dead less than the dead retention ago ($2 ms).
const keptSQL = `EXISTS (
	SELECT 1 FROM stripe_webhook_deliveries d
	WHERE d.event_id = e.event_id
		AND (d.status = 'pending'
			OR (d.status = 'dead' AND COALESCE(d.dead_at, e.received_at) >= now() - $2::bigint * interval '1 millisecond')))`

// pickSQL locks one small batch of events older than the retention ($1
// ms) that look prunable: every delivery delivered (or none: unrouted),
// or dead long enough. It skips events another transaction holds (another
// pruner, or a replay giving one a pending delivery), and walks by
// received_at from $4 on, so that the events kept are passed once per
// walk. Rows of the previous version wait to be adopted.
// $1 retention ms, $2 dead retention ms, $3 batch size, $4 cursor.
const pickSQL = `
SELECT e.event_id, e.received_at FROM stripe_webhook_events e
WHERE e.received_at < now() - $1::bigint * interval '1 millisecond'
	AND e.received_at >= $4
	AND e.status = 'routed'
	AND NOT ` + keptSQL + `
ORDER BY e.received_at
LIMIT $3
FOR UPDATE OF e SKIP LOCKED`

// pruneSQL deletes the picked events, checking their deliveries again in a
// statement of its own, so with a fresh snapshot: a delivery put back to
// pending after pickSQL began keeps its event. Deliveries and history go
// with their event (ON DELETE CASCADE).
// $1 event ids, $2 dead retention ms.
const pruneSQL = `
DELETE FROM stripe_webhook_events e
WHERE e.event_id = ANY($1::text[]) AND NOT ` + keptSQL

// PrunerConfig configures a Pruner.
type PrunerConfig struct {
	// Pool holds the ledger and the deliveries. Required.
	Pool *pgxpool.Pool
	// Retention is how long delivered events are kept (RETENTION). Defaults to 720h.
	Retention time.Duration
	// DeadRetention is how long an event is kept for replay after a delivery
	// of it went dead. Defaults to 3 × Retention.
	DeadRetention time.Duration
	// Interval is the pause between pruning passes. Defaults to 1m.
	Interval time.Duration
	// BatchSize bounds the rows of one DELETE. Defaults to 500.
	BatchSize int
	// Duty is the most of its time the pruner spends deleting: after a
	// batch that took t it rests t × (1/Duty − 1), so that a backlog of
	// old events does not take the CPU and I/O the intake needs. 1 never
	// rests. Defaults to 0.75.
	Duty float64
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
	if c.Duty == 0 {
		c.Duty = 0.75
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Pruner deletes events older than Retention once every delivery of theirs
// is delivered; a delivery that went dead keeps its event DeadRetention
// from then, and a pending one keeps it always. Each pass walks on from
// where the last one ended; once an hour it walks the whole ledger again,
// for events behind the cursor whose deliveries have finished since.
type Pruner struct {
	cursor   time.Time // where the walk goes on; only the Start loop moves it
	lastWalk time.Time // when the walk last started from the beginning
	cfg      PrunerConfig
	errs     ratelog.Logger
	ctx      context.Context // cancelled by Stop
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	state    startstop.State
}

// NewPruner checks cfg; call Start to prune in the background, or Prune
// for one pass.
func NewPruner(cfg PrunerConfig) (*Pruner, error) {
	cfg = cfg.WithDefaults()
	if cfg.Pool == nil || cfg.Retention <= 0 || cfg.DeadRetention < cfg.Retention || cfg.BatchSize < 1 || cfg.Interval <= 0 ||
		!(cfg.Duty > 0 && cfg.Duty <= 1) {
		return nil, errors.New("delivery: PrunerConfig needs a Pool, positive Retention, Interval and BatchSize, DeadRetention at least Retention, and Duty in (0, 1]")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pruner{cfg: cfg, errs: ratelog.Logger{Log: cfg.Logger}, ctx: ctx, cancel: cancel}, nil
}

// Start prunes at once, then every Interval until Stop; ctx's end does not
// stop it. A second Start does nothing; a Start after Stop returns
// startstop.ErrStopped.
func (p *Pruner) Start(ctx context.Context) error {
	return p.state.Start(ctx, func(context.Context) error {
		p.wg.Add(1)
		go p.run()
		return nil
	})
}

func (p *Pruner) run() {
	defer p.wg.Done()
	for {
		if time.Since(p.lastWalk) > fullWalkEvery {
			p.cursor, p.lastWalk = time.Time{}, time.Now()
		}
		_, cursor, err := p.prune(p.ctx, p.cursor)
		if err != nil && p.ctx.Err() == nil {
			p.cfg.Metrics.PostgresError("prune")
			p.errs.Warn("pruning old events failed", "error", err)
		}
		p.cursor = cursor
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(p.cfg.Interval):
		}
	}
}

// fullWalkEvery is how often a pass starts from the oldest event again.
const fullWalkEvery = time.Hour

// pruneTimeout bounds one DELETE.
const pruneTimeout = 30 * time.Second

// Prune runs one pass over the whole ledger, batch by batch, until ctx
// ends, and returns the events it deleted.
func (p *Pruner) Prune(ctx context.Context) (int64, error) {
	n, _, err := p.prune(ctx, time.Time{})
	return n, err
}

// prune walks from cursor to the newest prunable event and returns the
// events deleted and where the walk ended.
func (p *Pruner) prune(ctx context.Context, cursor time.Time) (int64, time.Time, error) {
	var total int64
	for {
		start := time.Now()
		bctx, cancel := context.WithTimeout(ctx, pruneTimeout)
		picked, deleted, last, err := p.batch(bctx, cursor)
		cancel()
		if err != nil {
			return total, cursor, err
		}
		total += deleted
		if picked > 0 {
			cursor = last
		}
		if picked < p.cfg.BatchSize {
			return total, cursor, nil
		}
		select {
		case <-ctx.Done():
			return total, cursor, ctx.Err()
		case <-time.After(rest(time.Since(start), p.cfg.Duty)):
		}
	}
}

// rest is the pause after a batch that took took, so that deleting takes
// at most duty of the pruner's time.
func rest(took time.Duration, duty float64) time.Duration {
	return time.Duration(float64(took) * (1/duty - 1))
}

// batch picks and deletes one batch in one transaction and returns how
// many it picked and deleted, and the received_at of the last one picked.
func (p *Pruner) batch(ctx context.Context, cursor time.Time) (picked int, deleted int64, last time.Time, err error) {
	err = pgx.BeginFunc(ctx, p.cfg.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, pickSQL, p.cfg.Retention.Milliseconds(), p.cfg.DeadRetention.Milliseconds(), p.cfg.BatchSize, cursor)
		if err != nil {
			return err
		}
		var ids []string
		var id string
		var at time.Time
		if _, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error {
			ids, last = append(ids, id), at
			return nil
		}); err != nil {
			return err
		}
		picked = len(ids)
		if picked == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, pruneSQL, ids, p.cfg.DeadRetention.Milliseconds())
		deleted = tag.RowsAffected()
		return err
	})
	return picked, deleted, last, err
}

// Stop ends pruning, cancelling a DELETE under way, and waits for it until
// ctx ends. Stop before Start and a second Stop do nothing.
func (p *Pruner) Stop(ctx context.Context) error {
	return p.state.Stop(ctx, func(ctx context.Context) error {
		p.cancel()
		return startstop.WaitGroup(ctx, &p.wg)
	})
}
