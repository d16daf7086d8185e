package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/migrations"
)

func TestAllIsOrdered(t *testing.T) {
	t.Parallel()
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Version != 1 || migrations.Latest() != all[len(all)-1].Version {
		t.Fatalf("migrations %+v, latest %d", all, migrations.Latest())
	}
}

// TestConcurrentApply starts several "instances" migrating one schema at
// once, as instances behind a load balancer do.
func TestConcurrentApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := testenv.EmptySchema(t, testenv.DatabaseURL(t))
	if v, err := migrations.Current(ctx, base); err != nil || v != 0 {
		t.Fatalf("Current on an empty schema: %d, %v", v, err)
	}
	cfg := base.Config()
	var wg sync.WaitGroup
	applied := make(chan []int, 5)
	for range 5 {
		wg.Go(func() {
			pool, err := pgxpool.NewWithConfig(ctx, cfg.Copy())
			if err != nil {
				t.Error(err)
				return
			}
			defer pool.Close()
			v, err := migrations.Apply(ctx, pool)
			if err != nil {
				t.Error(err)
				return
			}
			applied <- v
		})
	}
	wg.Wait()
	close(applied)
	total := 0
	for v := range applied {
		total += len(v)
	}
	if total != migrations.Latest() {
		t.Fatalf("%d migrations applied in all, want each of %d once", total, migrations.Latest())
	}
	if v, err := migrations.Current(ctx, base); err != nil || v != migrations.Latest() {
		t.Fatalf("Current: %d, %v", v, err)
	}
	if _, err := base.Exec(ctx, "SELECT e.event_id, d.status, d.locked_until FROM stripe_webhook_events e JOIN stripe_webhook_deliveries d USING (event_id)"); err != nil {
		t.Fatal(err)
	}
}
