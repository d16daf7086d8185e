package dedup

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Namespace returns the Redis key namespace of the database behind pool: a
// random value its migrations made once. Binding the keys to it means two
// deployments with separate databases never share keys on one Redis, so
// one cannot take the other's events for duplicates.
func Namespace(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var ns string
	if err := pool.QueryRow(ctx, `SELECT namespace FROM oncehook_identity`).Scan(&ns); err != nil {
		return "", fmt.Errorf("reading the Redis key namespace (oncehook_identity; run the migrations): %w", err)
	}
	return ns, nil
}

// KeyPrefixFor is the default KeyPrefix for a namespace.
func KeyPrefixFor(namespace string) string { return "oncehook:" + namespace + ":" }
