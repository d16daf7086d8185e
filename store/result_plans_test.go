package store

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/internal/testenv"
)

// TestResultStatementsProbeByPrimaryKey: the result writer's statements,
// with their generic plans (the ones pgx's statement cache runs) and the
// settings of indexPlansSQL, find each row through a primary key, never by
// a sequential scan, a bitmap of the pending index or a hash of it, even
// where the statistics are stale: the deliveries' pending index holds
// thousands of rows it did not hold when last analyzed.
func TestResultStatementsProbeByPrimaryKey(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
			SELECT 'evt_plan_' || i, 'invoice.paid', '{}', 'routed' FROM generate_series(1, 20000) i;
		INSERT INTO stripe_webhook_deliveries (event_id, destination, status, delivered_at)
			SELECT event_id, 'default', 'delivered', now() FROM stripe_webhook_events;
		ANALYZE stripe_webhook_events, stripe_webhook_deliveries;
		UPDATE stripe_webhook_deliveries SET status = 'pending', locked_until = now() + interval '1 minute'
			WHERE event_id < 'evt_plan_5'`)
	if err != nil {
		t.Fatal(err)
	}
	stmts := map[string]struct {
		sql  string
		args string
	}{
		"delivered": {markDeliveredSQL, `('{evt_plan_1}', '{default}', ARRAY[now()])`},
		"failed":    {markFailedSQL, `('{evt_plan_1}', '{default}', ARRAY[now()], '{boom}', '{5}', 1000, 60000)`},
		"attempts":  {recordAttemptsSQL, `('{evt_plan_1}', '{default}', '{true}', '{""}', 'test')`},
	}
	for name, s := range stmts {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for _, q := range []string{"SET LOCAL plan_cache_mode = force_generic_plan", indexPlansSQL,
				"PREPARE plan_check AS " + s.sql} {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			rows, err := tx.Query(ctx, "EXPLAIN EXECUTE plan_check"+s.args)
			if err != nil {
				return err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			plan := strings.Join(lines, "\n")
			for _, bad := range []string{"Seq Scan", "Hash", "Bitmap", "Merge"} {
				if strings.Contains(plan, bad) {
					t.Errorf("%s: the plan has a %s:\n%s", name, bad, plan)
				}
			}
			if !strings.Contains(plan, "_pkey") {
				t.Errorf("%s: the plan uses no primary key:\n%s", name, plan)
			}
			_, err = tx.Exec(ctx, "DEALLOCATE plan_check")
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
