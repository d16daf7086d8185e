package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// DestinationStats is one destination's deliveries in Postgres.
type DestinationStats struct {
	Name      string `json:"name"`
	Pending   int64  `json:"pending"`
	Delivered int64  `json:"delivered"`
	Dead      int64  `json:"dead"`
	// OldestPendingSeconds is the age of the oldest pending delivery's event.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
}

// Stats counts every destination's deliveries (a scan of the deliveries
// table: for the command line, not for a metric).
func (s *Store) Stats(ctx context.Context) ([]DestinationStats, error) {
	rows, err := s.pool.Query(ctx, `SELECT destination,
			count(*) FILTER (WHERE status = 'pending'),
			count(*) FILTER (WHERE status = 'delivered'),
			count(*) FILTER (WHERE status = 'dead'),
			COALESCE(extract(epoch FROM now() - min(received_at) FILTER (WHERE status = 'pending')), 0)::float8
		FROM stripe_webhook_deliveries GROUP BY destination ORDER BY destination`)
	if err != nil {
		return nil, fmt.Errorf("counting deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DestinationStats, error) {
		var s DestinationStats
		err := row.Scan(&s.Name, &s.Pending, &s.Delivered, &s.Dead, &s.OldestPendingSeconds)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("counting deliveries: %w", err)
	}
	return out, nil
}

// DestinationsWith returns the destinations that have deliveries of status
// (pending or dead), one index probe per destination.
func (s *Store) DestinationsWith(ctx context.Context, status Status) ([]string, error) {
	if status != StatusPending && status != StatusDead {
		return nil, fmt.Errorf("listing destinations with %s deliveries: only pending and dead ones are indexed", status)
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE `+distinctDestinations(status, "n")+`
		SELECT destination FROM n WHERE destination IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("listing destinations with %s deliveries: %w", status, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing destinations with %s deliveries: %w", status, err)
	}
	return names, nil
}

// Backlog is one destination's undelivered work.
type Backlog struct {
	Destination string `json:"destination"`
	// Configured is set for a destination of the names Backlogs was given.
	Configured bool  `json:"configured"`
	Pending    int64 `json:"pending"`
	Dead       int64 `json:"dead"`
	// OldestPendingSeconds is the age of the oldest pending delivery.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
}

// Backlogs returns the backlog of every destination of configured and of
// every other destination that has pending or dead deliveries, reading
// only the partial indexes of those two states; each count stops at
// CountCap.
func (s *Store) Backlogs(ctx context.Context, configured []string) ([]Backlog, error) {
	if configured == nil {
		configured = []string{} // NULL would make = ANY() NULL
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE `+distinctDestinations(StatusPending, "p")+`,
		`+distinctDestinations(StatusDead, "x")+`,
		names AS (
			SELECT unnest($1::text[]) AS destination
			UNION SELECT destination FROM p WHERE destination IS NOT NULL
			UNION SELECT destination FROM x WHERE destination IS NOT NULL)
		SELECT n.destination, n.destination = ANY($1::text[]),
			(SELECT count(*) FROM (SELECT 1 FROM stripe_webhook_deliveries
				WHERE destination = n.destination AND status = 'pending' LIMIT $2) p),
			(SELECT count(*) FROM (SELECT 1 FROM stripe_webhook_deliveries
				WHERE destination = n.destination AND status = 'dead' LIMIT $2) x),
			COALESCE((SELECT extract(epoch FROM now() - min(received_at)) FROM stripe_webhook_deliveries
				WHERE destination = n.destination AND status = 'pending'), 0)::float8
		FROM names n ORDER BY n.destination`, configured, CountCap)
	if err != nil {
		return nil, fmt.Errorf("reading backlogs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Backlog, error) {
		var b Backlog
		err := r.Scan(&b.Destination, &b.Configured, &b.Pending, &b.Dead, &b.OldestPendingSeconds)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading backlogs: %w", err)
	}
	return out, nil
}

// UnservedPending counts the pending deliveries to destinations not in
// served, up to CountCap per destination: deliveries that wait for an
// instance that serves their destination.
func (s *Store) UnservedPending(ctx context.Context, served []string) (int64, error) {
	if served == nil {
		served = []string{}
	}
	var n int64
	err := s.pool.QueryRow(ctx, `WITH RECURSIVE `+distinctDestinations(StatusPending, "p")+`
		SELECT COALESCE(sum((SELECT count(*) FROM (SELECT 1 FROM stripe_webhook_deliveries
				WHERE destination = p.destination AND status = 'pending' LIMIT $2) c)), 0)::bigint
		FROM p WHERE p.destination IS NOT NULL AND NOT p.destination = ANY($1::text[])`, served, CountCap).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting unserved pending deliveries: %w", err)
	}
	return n, nil
}

// DeadLetterCounts counts the dead letters of each destination of
// configured (0 when it has none) and of every other destination that has
// some, reading only the dead-letter index; each count stops at CountCap.
// It is what a metric reads at each scrape.
func (s *Store) DeadLetterCounts(ctx context.Context, configured []string) (map[string]int64, error) {
	if configured == nil {
		configured = []string{}
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE `+distinctDestinations(StatusDead, "x")+`,
		names AS (
			SELECT unnest($1::text[]) AS destination
			UNION SELECT destination FROM x WHERE destination IS NOT NULL)
		SELECT n.destination, (SELECT count(*) FROM (SELECT 1 FROM stripe_webhook_deliveries
				WHERE destination = n.destination AND status = 'dead' LIMIT $2) c)
		FROM names n`, configured, CountCap)
	if err != nil {
		return nil, fmt.Errorf("counting dead letters: %w", err)
	}
	out := map[string]int64{}
	var name string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { out[name] = n; return nil }); err != nil {
		return nil, fmt.Errorf("counting dead letters: %w", err)
	}
	return out, nil
}
