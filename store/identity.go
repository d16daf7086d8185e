package store

import (
	"context"
	"fmt"
)

// Namespace returns the database's identity: a random value its
// migrations made once (oncehook_identity). Redis keys are bound to it, so
// that deployments with separate databases never share keys on one Redis.
func (s *Store) Namespace(ctx context.Context) (string, error) {
	var ns string
	if err := s.pool.QueryRow(ctx, `SELECT namespace FROM oncehook_identity`).Scan(&ns); err != nil {
		return "", fmt.Errorf("reading the Redis key namespace (oncehook_identity; run the migrations): %w", err)
	}
	return ns, nil
}
