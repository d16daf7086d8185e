package delivery_test

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/admin"
	"github.com/oncehook/oncehook/store"
)

// listDeliveries lists up to 1000 deliveries as `oncehook events list`
// does, through the operator API.
func listDeliveries(ctx context.Context, pool *pgxpool.Pool, p admin.ListParams) ([]admin.EventRow, error) {
	return admin.New(store.New(pool)).ListDeliveries(ctx, p, 1000)
}

// replayStatus replays every delivery of status (at dest, when set) as
// `oncehook replay --status` does, and returns how many.
func replayStatus(ctx context.Context, pool *pgxpool.Pool, status store.Status, dest string) (int64, error) {
	r, err := admin.New(store.New(pool)).Replay(ctx, admin.ReplayParams{Status: status, Destination: dest})
	return r.Replayed, err
}
