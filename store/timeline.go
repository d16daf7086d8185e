package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier runs a statement: a *pgx.Conn (a pool's new connection, before
// the pool hands it out), a *pgxpool.Pool or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// currentTimeline reads the timeline of the WAL the server writes now,
// from the name of its current WAL file (its first 8 hex digits). A
// promotion starts a new, higher timeline at once, where
// pg_control_checkpoint() would lag until the next checkpoint. Any user
// may run it, on a primary; a server in recovery refuses it.
const currentTimeline = `SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint`

// Timeline returns the timeline of the server q is connected to: it
// changes when a standby is promoted.
func Timeline(ctx context.Context, q Querier) (int64, error) {
	var tl int64
	if err := q.QueryRow(ctx, currentTimeline).Scan(&tl); err != nil {
		return 0, fmt.Errorf("reading the Postgres timeline: %w", err)
	}
	return tl, nil
}

// Timeline is the timeline of the server the pool's connections reach.
func (s *Store) Timeline(ctx context.Context) (int64, error) { return Timeline(ctx, s.pool) }

// Failover is one row of oncehook_failovers: a promotion detected, and
// the reconciling of its window.
type Failover struct {
	OldTimeline, NewTimeline int64
	DetectedAt               time.Time
	// WindowStart and WindowEnd bound the Stripe created times listed to
	// recover what the promoted server lacks.
	WindowStart, WindowEnd time.Time
	// ListedThrough is the heal's checkpoint: every event created in
	// [WindowStart, ListedThrough) has been listed and the missing stored.
	ListedThrough time.Time
	// HealedAt is set once the window is listed; zero before.
	HealedAt time.Time
	// Recovered counts the events stored so far.
	Recovered int64
}

// FailoverWindow sizes a failover's window when it is recorded.
type FailoverWindow struct {
	// Overlap is subtracted from the window's anchor: the newest
	// received_at in the promoted server's ledger, or the detection if
	// that is older.
	Overlap time.Duration
	// Margin is added to the detection for the window's end.
	Margin time.Duration
}

// IsUndefinedTable reports whether err is Postgres's "relation does not
// exist": the migrations have not run yet.
func IsUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// ObserveTimeline records that the server q reaches is on timeline
// current. The first observation of a database records it and is no
// failover. A timeline higher than the one recorded is a failover: its
// row is inserted (once, however many instances observe it at the same
// time: the record's row is locked) with its window, and returned with
// recorded true. A lower timeline (a database restored into a new
// cluster) is recorded as it is, and is no failover.
func ObserveTimeline(ctx context.Context, q Querier, current int64, w FailoverWindow) (f Failover, recorded bool, err error) {
	err = pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
		// Another instance's record that never ends (its host lost
		// mid-transaction) must not hold this one for good.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
			return err
		}
		var prev int64
		var prevSince time.Time // when prev was recorded
		err := tx.QueryRow(ctx, `SELECT timeline, updated_at FROM oncehook_timeline FOR UPDATE`).Scan(&prev, &prevSince)
		if errors.Is(err, pgx.ErrNoRows) {
			tag, err := tx.Exec(ctx, `INSERT INTO oncehook_timeline (timeline) VALUES ($1) ON CONFLICT (only_row) DO NOTHING`, current)
			if err != nil || tag.RowsAffected() == 1 {
				return err // the first observation
			}
			// Another instance inserted it meanwhile: read it, locked.
			err = tx.QueryRow(ctx, `SELECT timeline, updated_at FROM oncehook_timeline FOR UPDATE`).Scan(&prev, &prevSince)
		}
		if err != nil || prev == current {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE oncehook_timeline SET timeline = $1, updated_at = now()`, current); err != nil || current < prev {
			return err
		}
		// The window starts at the newest event the promoted server holds
		// (it lacks what came after), less the overlap; an index on
		// received_at makes max() one probe. A row for this timeline
		// detected before prev was recorded is another cluster's history
		// (the database moved to a cluster on a lower timeline since): it
		// gives way to this failover.
		err = tx.QueryRow(ctx, `INSERT INTO oncehook_failovers (new_timeline, old_timeline, window_start, window_end, listed_through)
			SELECT $1, $2, s, now() + $4::bigint * interval '1 millisecond', s
			FROM (SELECT LEAST(COALESCE((SELECT max(received_at) FROM stripe_webhook_events), now()), now())
				- $3::bigint * interval '1 millisecond' AS s) w
			ON CONFLICT (new_timeline) DO UPDATE SET old_timeline = EXCLUDED.old_timeline, detected_at = now(),
				window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
				listed_through = EXCLUDED.listed_through, healed_at = NULL, recovered = 0
			WHERE oncehook_failovers.detected_at < $5
			RETURNING old_timeline, new_timeline, detected_at, window_start, window_end, listed_through`,
			current, prev, w.Overlap.Milliseconds(), w.Margin.Milliseconds(), prevSince).
			Scan(&f.OldTimeline, &f.NewTimeline, &f.DetectedAt, &f.WindowStart, &f.WindowEnd, &f.ListedThrough)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // recorded before, by an instance that saw a lower timeline in between
		}
		recorded = err == nil
		return err
	})
	if err != nil {
		return Failover{}, false, fmt.Errorf("recording the Postgres timeline: %w", err)
	}
	return f, recorded, nil
}

const failoverColumns = `old_timeline, new_timeline, detected_at, window_start, window_end, listed_through, healed_at, recovered`

func scanFailovers(rows pgx.Rows) ([]Failover, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Failover, error) {
		var f Failover
		var healed *time.Time
		err := r.Scan(&f.OldTimeline, &f.NewTimeline, &f.DetectedAt, &f.WindowStart, &f.WindowEnd, &f.ListedThrough, &healed, &f.Recovered)
		if healed != nil {
			f.HealedAt = *healed
		}
		return f, err
	})
}

// Failovers returns every failover recorded, oldest first.
func (s *Store) Failovers(ctx context.Context) ([]Failover, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+failoverColumns+` FROM oncehook_failovers ORDER BY new_timeline`)
	if err != nil {
		return nil, fmt.Errorf("reading the failovers: %w", err)
	}
	fs, err := scanFailovers(rows)
	if err != nil {
		return nil, fmt.Errorf("reading the failovers: %w", err)
	}
	return fs, nil
}

// UnhealedFailovers returns the failovers whose window is not yet listed,
// oldest first.
func (s *Store) UnhealedFailovers(ctx context.Context) ([]Failover, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+failoverColumns+` FROM oncehook_failovers WHERE healed_at IS NULL ORDER BY new_timeline`)
	if err != nil {
		return nil, fmt.Errorf("reading the failovers to heal: %w", err)
	}
	fs, err := scanFailovers(rows)
	if err != nil {
		return nil, fmt.Errorf("reading the failovers to heal: %w", err)
	}
	return fs, nil
}

// SaveFailoverProgress moves a failover's checkpoint forward to through
// (never back) and adds stored to its count. It reports false when the
// failover is healed already (another leader did it).
func (s *Store) SaveFailoverProgress(ctx context.Context, newTimeline int64, through time.Time, stored int) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE oncehook_failovers SET listed_through = GREATEST(listed_through, $2), recovered = recovered + $3
		WHERE new_timeline = $1 AND healed_at IS NULL`, newTimeline, through, stored)
	if err != nil {
		return false, fmt.Errorf("saving the failover heal's checkpoint: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkFailoverHealed records that a failover's window is listed, and
// returns its row as it is then.
func (s *Store) MarkFailoverHealed(ctx context.Context, newTimeline int64) (Failover, error) {
	rows, err := s.pool.Query(ctx, `UPDATE oncehook_failovers SET healed_at = COALESCE(healed_at, now())
		WHERE new_timeline = $1 RETURNING `+failoverColumns, newTimeline)
	if err != nil {
		return Failover{}, fmt.Errorf("marking the failover healed: %w", err)
	}
	fs, err := scanFailovers(rows)
	if err != nil {
		return Failover{}, fmt.Errorf("marking the failover healed: %w", err)
	}
	if len(fs) != 1 {
		return Failover{}, fmt.Errorf("marking the failover healed: no failover to timeline %d", newTimeline)
	}
	return fs[0], nil
}

// Replication is what the primary says of its standbys.
type Replication struct {
	// SynchronousStandbyNames is the setting; empty: every standby is
	// asynchronous.
	SynchronousStandbyNames string
	// Standbys counts the WAL senders streaming to standbys (and to
	// pg_receivewal), which any user may count.
	Standbys int
}

// OnlyAsynchronous reports whether acknowledged commits can be lost at a
// failover: standbys stream, and none is synchronous.
func (r Replication) OnlyAsynchronous() bool {
	return r.Standbys > 0 && r.SynchronousStandbyNames == ""
}

// Replication reads the primary's replication setting and standbys.
func (s *Store) Replication(ctx context.Context) (Replication, error) {
	var r Replication
	err := s.pool.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names'), (SELECT count(*) FROM pg_stat_replication)`).
		Scan(&r.SynchronousStandbyNames, &r.Standbys)
	if err != nil {
		return Replication{}, fmt.Errorf("reading the replication state: %w", err)
	}
	return r, nil
}
