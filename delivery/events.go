package delivery

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Statuses of a delivery; StatusUnrouted is an event with no delivery.
// The operator statements (listing, show, replay) are in store, and the
// operator API over them in admin.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusDead      = "dead"
	StatusUnrouted  = "unrouted"
)

// Adopt moves the rows written by instances of the previous version
// (see migrations/0006_deliveries.sql) into destination default, walking
// the ledger in batches of batch rows, pending rows first so that they are
// delivered soon, and returns how many it moved. Rows under a lease are
// left for a later call.
func Adopt(ctx context.Context, pool *pgxpool.Pool, batch int) (int, error) {
	total := 0
	for _, pendingOnly := range []bool{true, false} {
		after := ""
		for {
			bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			var n int
			var last *string
			err := pool.QueryRow(bctx, `SELECT adopted, last_id FROM oncehook_adopt_legacy($1, $2, $3)`, after, batch, pendingOnly).Scan(&n, &last)
			cancel()
			if err != nil {
				return total, err
			}
			total += n
			if last == nil || n < batch {
				break
			}
			after = *last
		}
	}
	return total, nil
}
