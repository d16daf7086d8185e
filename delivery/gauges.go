package delivery

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// OldestPendingAge returns the age in seconds of destination's oldest
// pending delivery, 0 when none is pending. It reads one index entry.
func OldestPendingAge(ctx context.Context, pool *pgxpool.Pool, destination string) (float64, error) {
	var age float64
	err := pool.QueryRow(ctx, `SELECT COALESCE(extract(epoch FROM now() - min(received_at)), 0)::float8
		FROM stripe_webhook_deliveries WHERE destination = $1 AND status = 'pending'`, destination).Scan(&age)
	return age, err
}
