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
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/store"
)

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
	// ScanSize bounds the events one batch looks at, kept or not, so
	// that the walk moves over a block of kept events (a destination's
	// dead letters, a backlog no one serves) a bounded statement at a
	// time. Defaults to 20 × BatchSize.
	ScanSize int
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
	if c.ScanSize == 0 {
		c.ScanSize = 20 * c.BatchSize
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
// where the last one ended, ScanSize events a batch whether it deletes
// them or not; once an hour it walks the whole ledger again, for events
// behind the cursor whose deliveries have finished since.
type Pruner struct {
	cursor   store.PruneCursor // where the walk goes on; only the Start loop moves it
	lastWalk time.Time         // when the walk last started from the beginning
	cfg      PrunerConfig
	store    *store.Store
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
	if cfg.Pool == nil || cfg.Retention <= 0 || cfg.DeadRetention < cfg.Retention || cfg.BatchSize < 1 || cfg.ScanSize < cfg.BatchSize || cfg.Interval <= 0 ||
		!(cfg.Duty > 0 && cfg.Duty <= 1) {
		return nil, errors.New("delivery: PrunerConfig needs a Pool, positive Retention, Interval and BatchSize, ScanSize at least BatchSize, DeadRetention at least Retention, and Duty in (0, 1]")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pruner{cfg: cfg, store: store.New(cfg.Pool), errs: ratelog.Logger{Log: cfg.Logger}, ctx: ctx, cancel: cancel}, nil
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
			p.cursor, p.lastWalk = store.PruneCursor{}, time.Now()
		}
		_, cursor, err := p.prune(p.ctx, p.cursor)
		if err != nil && p.ctx.Err() == nil {
			p.cfg.Metrics.PostgresError("prune", err)
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

// pruneTimeout bounds one batch.
const pruneTimeout = 30 * time.Second

// Prune runs one pass over the whole ledger, batch by batch, until ctx
// ends, and returns the events it deleted.
func (p *Pruner) Prune(ctx context.Context) (int64, error) {
	n, _, err := p.prune(ctx, store.PruneCursor{})
	return n, err
}

// prune walks from cursor to the newest event older than the retention
// and returns the events deleted and where the walk ended.
func (p *Pruner) prune(ctx context.Context, cursor store.PruneCursor) (int64, store.PruneCursor, error) {
	var total int64
	for {
		start := time.Now()
		bctx, cancel := context.WithTimeout(ctx, pruneTimeout)
		res, err := p.batch(bctx, cursor)
		cancel()
		if err != nil {
			return total, cursor, err
		}
		total += res.Deleted
		cursor = res.Next
		if res.Done {
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

// batch deletes one batch, walking from cursor.
func (p *Pruner) batch(ctx context.Context, cursor store.PruneCursor) (store.PruneBatchResult, error) {
	return p.store.PruneBatch(ctx, store.PruneParams{
		Retention: p.cfg.Retention, DeadRetention: p.cfg.DeadRetention, BatchSize: p.cfg.BatchSize, ScanSize: p.cfg.ScanSize, After: cursor,
	})
}

// Stop ends pruning, cancelling a DELETE under way, and waits for it until
// ctx ends. Stop before Start and a second Stop do nothing.
func (p *Pruner) Stop(ctx context.Context) error {
	return p.state.Stop(ctx, func(ctx context.Context) error {
		p.cancel()
		return startstop.WaitGroup(ctx, &p.wg)
	})
}
