package delivery

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// OldestPendingAge returns the age in seconds of the oldest pending event, 0
// when none is pending.
func OldestPendingAge(ctx context.Context, pool *pgxpool.Pool) (float64, error) {
	var age float64
	err := pool.QueryRow(ctx, `SELECT COALESCE(extract(epoch FROM now() - min(received_at)), 0)::float8
		FROM stripe_webhook_events WHERE status = 'pending'`).Scan(&age)
	return age, err
}
