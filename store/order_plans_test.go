package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/oncehook/oncehook/internal/testenv"
)

// TestOrderHeadStatementsWalkTheKeyIndex: the statements that find a key's
// head (the claim's, the result writer's wake and claim of the next), with
// their generic plans (the ones pgx's statement cache runs) and the
// settings they run under, read each key's head from the key's own entries
// of the order index, never by walking every due keyed delivery of the
// destination and filtering on the key, even where the statistics are
// stale: the table was analyzed when it held no keyed delivery and now
// holds a backlog of thousands. (Before, the claim of a bench with 1,000 keys read
// 11,000 index entries per key it looked at.)
func TestOrderHeadStatementsWalkTheKeyIndex(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
			SELECT 'evt_done_' || i, 'invoice.paid', '{}', 'routed' FROM generate_series(1, 2000) i;
		INSERT INTO stripe_webhook_deliveries (event_id, destination, status, delivered_at)
			SELECT event_id, 'default', 'delivered', now() FROM stripe_webhook_events;
		ANALYZE stripe_webhook_events, stripe_webhook_deliveries;
		INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
			SELECT 'evt_plan_' || i, 'invoice.paid', '{}', 'routed' FROM generate_series(1, 20000) i;
		INSERT INTO stripe_webhook_deliveries (event_id, destination, order_key, order_created, next_attempt_at)
			SELECT event_id, 'default', 'key' || (substr(event_id, 10)::int % 400), now(), now() FROM stripe_webhook_events
			WHERE event_id LIKE 'evt_plan_%'`)
	if err != nil {
		t.Fatal(err)
	}
	stmts := map[string]struct {
		sql, args string
		head      bool // it reads keys' heads
		list      bool // it joins a list given with the ids, for its values
	}{
		"claim heads": {orderHeadsSQL, `('default', '{key1,key2}')`, true, true},
		"wake next":   {wakeNextSQL, `('{default,default}', '{key1,key2}')`, true, true},
		"claim next":  {claimNextSQL, `('{default,default}', '{key1,key2}', 60000)`, true, true},
		"arrivals":    {claimArrivalsSQL, arrivalsArgs(200), true, true},
		"alone":       {aloneArrivalsSQL, strings.TrimSuffix(arrivalsArgs(200), ", 60000)") + ")", true, true},
		"lease heads": {claimHeadsSQL, `('{evt_plan_1}', 60000, 1000000, 'default')`, false, false},
		"park":        {parkSQL, `('default', '{evt_plan_1}', ARRAY[now()], ARRAY[NULL::timestamptz], 60000)`, false, true},
	}
	for name, s := range stmts {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for _, q := range []string{"SET LOCAL plan_cache_mode = force_generic_plan", orderPlansSQL, "PREPARE plan_check AS " + s.sql} {
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
			for _, bad := range []string{"order_due_idx", "pending_received_idx", "Seq Scan", "Hash Join", "Bitmap", "Merge", "Sort", "JIT"} {
				if strings.Contains(plan, bad) && (s.head || bad != "Sort") { // the byte room's running sum sorts the rows leased
					t.Errorf("%s: the plan has a %s, walking more than the rows it looks up:\n%s", name, bad, plan)
				}
			}
			for i, l := range lines {
				if strings.Contains(l, "using stripe_webhook_deliveries_order_") && (i+1 == len(lines) || !strings.Contains(lines[i+1], "order_key =")) {
					t.Errorf("%s: the plan reads an order index without the key, not the key's deliveries alone:\n%s", name, plan)
				}
			}
			if !s.list && strings.Contains(plan, "Function Scan") {
				t.Errorf("%s: the plan reads the list of ids for each row it finds, not the rows by their key alone:\n%s", name, plan)
			}
			if s.head && !strings.Contains(plan, "stripe_webhook_deliveries_order_idx") {
				t.Errorf("%s: the plan does not read the keys' heads from the order index:\n%s", name, plan)
			}
			if !s.head && !strings.Contains(plan, "stripe_webhook_deliveries_pkey") {
				t.Errorf("%s: the plan finds no row by its primary key:\n%s", name, plan)
			}
			_, err = tx.Exec(ctx, "DEALLOCATE plan_check")
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// arrivalsArgs are claimArrivalsSQL's arguments for n arrivals, each of a
// key of its own: a batch of many keys, which must not be read again for
// each row looked at.
func arrivalsArgs(n int) string {
	var ids, keys, leases []string
	for i := range n {
		ids, keys, leases = append(ids, fmt.Sprintf("evt_plan_%d", i+1)), append(keys, fmt.Sprintf("key%d", i)), append(leases, "now()")
	}
	return fmt.Sprintf("('{%s}', '{%s}', ARRAY[%s], 'default', 60000)", strings.Join(ids, ","), strings.Join(keys, ","), strings.Join(leases, ","))
}
