package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// LedgerConfig says what a run reads from the receiver's database: the
// ledger's inserts and deletes over the measured phase.
type LedgerConfig struct {
	// DatabaseURL is the receiver's database. Required.
	DatabaseURL string
	// Filled is how many events bench fill put in the ledger before the
	// run; reported (the growth curve's x).
	Filled int64
	// Retention, if set, is the receiver's RETENTION, shorter than the
	// filled events' age: the run waits until the pruner deletes before
	// its measured phase opens.
	Retention time.Duration
	// PrunerWait bounds that wait. Defaults to 2m.
	PrunerWait time.Duration
}

func (c LedgerConfig) validate() error {
	if c.DatabaseURL == "" {
		return errors.New("ledger: no database URL")
	}
	if c.Filled < 0 || c.Retention < 0 || c.PrunerWait < 0 {
		return errors.New("ledger: filled, retention and pruner wait must not be negative")
	}
	return nil
}

// LedgerWindow is what the ledger table (stripe_webhook_events) did over a
// run's measured phase, from its statistics (pg_stat_user_tables), which
// each backend publishes about once a second: a window of 10 s is right to
// a few percent.
type LedgerWindow struct {
	Filled  int64 `json:"filled"`
	Pruning bool  `json:"pruning"` // the receiver had filled events to prune
	// Rows is the ledger's live rows when the window opened (estimated).
	Rows     int64   `json:"rows"`
	Inserted int64   `json:"inserted"` // rows inserted in the window: the intake
	Deleted  int64   `json:"deleted"`  // rows deleted in the window: the pruner
	Seconds  float64 `json:"seconds"`
	// PrunerSeen says the pruner was seen deleting before the window
	// opened, PrunerWaitMS after how long.
	PrunerSeen   bool    `json:"pruner_seen,omitempty"`
	PrunerWaitMS float64 `json:"pruner_wait_ms,omitempty"`
	// BacklogLeft says events older than the retention were still there
	// when the window closed: the pruner was busy all along.
	BacklogLeft bool `json:"backlog_left,omitempty"`
}

// InsertRate and DeleteRate are per second over the window.
func (w *LedgerWindow) InsertRate() float64 { return rate(w.Inserted, w.Seconds) }

// DeleteRate is the pruner's deletes per second over the window.
func (w *LedgerWindow) DeleteRate() float64 { return rate(w.Deleted, w.Seconds) }

func rate(n int64, s float64) float64 {
	if s <= 0 {
		return 0
	}
	return float64(n) / s
}

// ledgerProbe reads the ledger's statistics for one run.
type ledgerProbe struct {
	cfg  LedgerConfig
	conn *pgx.Conn
	win  LedgerWindow
	at   time.Time
	ins  int64
	del  int64
}

func openLedgerProbe(ctx context.Context, cfg LedgerConfig) (*ledgerProbe, error) {
	if cfg.PrunerWait == 0 {
		cfg.PrunerWait = 2 * time.Minute
	}
	c, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return &ledgerProbe{cfg: cfg, conn: c, win: LedgerWindow{Filled: cfg.Filled, Pruning: cfg.Retention > 0}}, nil
}

func (p *ledgerProbe) close() { _ = p.conn.Close(context.Background()) }

// counters reads the table's inserts, deletes and live rows.
func (p *ledgerProbe) counters(ctx context.Context) (ins, del, live int64, err error) {
	err = p.conn.QueryRow(ctx, `SELECT n_tup_ins, n_tup_del, n_live_tup FROM pg_stat_user_tables
		WHERE relid = 'stripe_webhook_events'::regclass`).Scan(&ins, &del, &live)
	if err != nil {
		err = fmt.Errorf("ledger: reading the table statistics: %w", err)
	}
	return ins, del, live, err
}

// waitPruning waits, if the receiver prunes and has events left to prune,
// until the table's deletes grow, or PrunerWait.
func (p *ledgerProbe) waitPruning(ctx context.Context, progress io.Writer, name string) error {
	if p.cfg.Retention == 0 {
		return nil
	}
	start := time.Now()
	_, first, _, err := p.counters(ctx)
	if err != nil {
		return err
	}
	if left, err := p.backlog(ctx); err != nil || !left {
		if err == nil {
			fmt.Fprintf(progress, "%-14s the pruner has nothing left to delete\n", name)
		}
		return err
	}
	fmt.Fprintf(progress, "%-14s waiting for the pruner to delete\n", name)
	for time.Since(start) < p.cfg.PrunerWait {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		_, del, _, err := p.counters(ctx)
		if err != nil {
			return err
		}
		if del > first {
			p.win.PrunerSeen, p.win.PrunerWaitMS = true, float64(time.Since(start).Microseconds())/1000
			return nil
		}
	}
	fmt.Fprintf(progress, "%-14s the pruner deleted nothing in %s\n", name, p.cfg.PrunerWait)
	return nil
}

// open notes the counters as the measured phase starts.
func (p *ledgerProbe) open(ctx context.Context) error {
	ins, del, live, err := p.counters(ctx)
	p.at, p.ins, p.del, p.win.Rows = time.Now(), ins, del, live
	return err
}

// shut reads the counters as the measured phase ends and returns the window.
func (p *ledgerProbe) shut(ctx context.Context) (*LedgerWindow, error) {
	ins, del, _, err := p.counters(ctx)
	if err != nil {
		return nil, err
	}
	p.win.Seconds = time.Since(p.at).Seconds()
	p.win.Inserted, p.win.Deleted = ins-p.ins, del-p.del
	if p.cfg.Retention > 0 {
		if p.win.BacklogLeft, err = p.backlog(ctx); err != nil {
			return nil, err
		}
	}
	w := p.win
	return &w, nil
}

// backlog reports whether the pruner has events left to delete. It walks
// from the oldest event, so it has while the newest hour it may prune is
// still there; that hour is found quickly, unlike the oldest events
// among the dead rows of those it has just deleted.
func (p *ledgerProbe) backlog(ctx context.Context) (bool, error) {
	var left bool
	err := p.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stripe_webhook_events
		WHERE received_at < now() - $1::bigint * interval '1 millisecond'
			AND received_at >= now() - $1::bigint * interval '1 millisecond' - interval '1 hour')`,
		p.cfg.Retention.Milliseconds()).Scan(&left)
	if err != nil {
		return false, fmt.Errorf("ledger: looking for prunable events: %w", err)
	}
	return left, nil
}
