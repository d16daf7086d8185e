package store_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

// planStart is when the scaled ledger's 30 days begin.
var planStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// planDestinations is how many destinations fillScaledLedger routes to.
const planDestinations = 3

// fillScaledLedger stores n events over 30 days, three to a timestamp,
// with random-looking ids and about 100-byte payloads: 2% unrouted; the
// rest delivered to a and b, and 40% also to c; dead at a, b and c for
// 0.2%, 0.1% and 0.8% of their deliveries (about 0.6% of events); pending
// at a and c for the newest 10 minutes, at b (a backlog) for the newest
// hour. One event in 20,000 is of a rare type. It logs how long each step
// takes. The foreign key is not checked while filling (the rows satisfy it
// by construction), to keep a fill of millions of rows quick.
func fillScaledLedger(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	ctx := context.Background()
	step := (30 * 24 * time.Hour * 3 / time.Duration(n)).Microseconds() // per group of three
	// dice is a per-event number in [0, 1000), independent of the type.
	const events = `SELECT i, 'evt_' || substr(md5(i::text), 1, 24) AS event_id,
			$2::timestamptz + (i / 3) * $3::bigint * interval '1 microsecond' AS received_at,
			abs(hashint4(i)::bigint) % 1000 AS dice
		FROM generate_series(1, $1::int) i`
	start := time.Now()
	lap := func(what string) {
		t.Logf("%d events: %s in %v", n, what, time.Since(start).Round(time.Millisecond))
		start = time.Now()
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off; SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, livemode, payload, received_at, status)
			SELECT event_id, CASE WHEN abs(hashint4(i * 7)::bigint) % 20000 = 0 THEN 'radar.early_fraud_warning.created'
				ELSE (ARRAY['charge.succeeded', 'charge.succeeded', 'charge.succeeded', 'charge.succeeded',
					'payment_intent.succeeded', 'payment_intent.succeeded', 'payment_intent.succeeded', 'payment_intent.succeeded',
					'payment_intent.created', 'payment_intent.created', 'payment_intent.created',
					'invoice.paid', 'invoice.paid', 'invoice.payment_succeeded', 'invoice.payment_succeeded', 'invoice.payment_failed',
					'customer.updated', 'customer.updated', 'customer.subscription.updated', 'checkout.session.completed'])[i % 20 + 1] END,
				i % 50 <> 0, convert_to(format('{"id":"%s","object":"event","data":{"object":{"amount":%s,"currency":"eur"}}}', event_id, i % 10000), 'UTF8'),
				received_at, 'routed'
			FROM (`+events+`) e`, n, planStart, step); err != nil {
			return err
		}
		lap("events stored")
		_, err := tx.Exec(ctx, `INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, delivered_at, dead_at, received_at)
			SELECT event_id, d.destination, s.status, CASE s.status WHEN 'delivered' THEN 1 WHEN 'dead' THEN 15 ELSE 2 END,
				CASE WHEN s.status = 'delivered' THEN received_at + interval '1 second' END,
				CASE WHEN s.status = 'dead' THEN received_at + interval '3 days' END, received_at
			FROM (`+events+`) e
			CROSS JOIN (VALUES ('a', 4320, 2), ('b', 720, 1), ('c', 4320, 8)) d(destination, backlog, dead)
			CROSS JOIN LATERAL (SELECT CASE WHEN i > $1 - $1 / d.backlog THEN 'pending'
				WHEN abs(hashint4(i * 31 + d.dead)::bigint) % 1000 < d.dead THEN 'dead' ELSE 'delivered' END AS status) s
			WHERE dice >= 20 AND (d.destination <> 'c' OR dice >= 600)`, n, planStart, step)
		return err
	})
	if err != nil {
		t.Fatalf("filling the ledger: %v", err)
	}
	lap("deliveries stored")
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) stripe_webhook_events, stripe_webhook_deliveries`); err != nil {
		t.Fatal(err)
	}
	lap("vacuumed and analyzed")
}

// planNode is a node of an EXPLAIN (ANALYZE, FORMAT JSON) plan.
type planNode struct {
	NodeType         string     `json:"Node Type"`
	Relation         string     `json:"Relation Name"`
	Index            string     `json:"Index Name"`
	Parent           string     `json:"Parent Relationship"`
	Rows             float64    `json:"Actual Rows"`
	Loops            float64    `json:"Actual Loops"`
	RemovedByFilter  float64    `json:"Rows Removed by Filter"`
	RemovedByRecheck float64    `json:"Rows Removed by Index Recheck"`
	HitBlocks        int        `json:"Shared Hit Blocks"`
	ReadBlocks       int        `json:"Shared Read Blocks"`
	Plans            []planNode `json:"Plans"`
}

type explained struct {
	Plan      planNode `json:"Plan"`
	Planning  float64  `json:"Planning Time"`
	Execution float64  `json:"Execution Time"`
	JIT       struct {
		Timing struct{ Total float64 }
	}
}

const explain = `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `

// explainCustom plans sql with its arguments' values, as the first
// executions of a prepared statement are.
func explainCustom(ctx context.Context, pool *pgxpool.Pool, sql string, args pgx.NamedArgs) (explained, error) {
	var out []explained
	err := pool.QueryRow(ctx, explain+sql, args).Scan(&out)
	if err == nil && len(out) != 1 {
		err = fmt.Errorf("%d plans", len(out))
	}
	return first(out), err
}

// explainGeneric plans sql as a prepared statement with a generic plan,
// which Postgres may settle on after five executions: PREPARE, then
// EXPLAIN EXECUTE with plan_cache_mode = force_generic_plan (a
// parameterized EXPLAIN would plan with the values).
func explainGeneric(ctx context.Context, pool *pgxpool.Pool, sql string, args pgx.NamedArgs) (explained, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return explained{}, err
	}
	defer conn.Release()
	positional, values, err := args.RewriteQuery(ctx, conn.Conn(), sql, nil)
	if err != nil {
		return explained{}, err
	}
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan; PREPARE plan_check AS `+positional); err != nil {
		return explained{}, err
	}
	defer func() { _, _ = conn.Exec(ctx, `DEALLOCATE plan_check`) }()
	params := make([]string, len(values))
	for i := range values {
		params[i] = "$" + strconv.Itoa(i+1)
	}
	var out []explained
	err = conn.QueryRow(ctx, explain+`EXECUTE plan_check(`+strings.Join(params, ", ")+`)`,
		append([]any{pgx.QueryExecModeSimpleProtocol}, values...)...).Scan(&out)
	if err == nil && len(out) != 1 {
		err = fmt.Errorf("%d plans", len(out))
	}
	return first(out), err
}

func first(out []explained) explained {
	if len(out) == 0 {
		return explained{}
	}
	return out[0]
}

// ledgerRelations are the tables a page must never read whole.
var ledgerRelations = []string{"stripe_webhook_events", "stripe_webhook_deliveries"}

// rowsRead sums the rows that scans of the ledger tables read (returned
// or filtered out, over all loops) and lists their sequential scans.
func rowsRead(n planNode) (rows float64, seqScans []string) {
	if slices.Contains(ledgerRelations, n.Relation) {
		rows = (n.Rows + n.RemovedByFilter + n.RemovedByRecheck) * n.Loops
		if n.NodeType == "Seq Scan" {
			seqScans = append(seqScans, n.Relation)
		}
	}
	for _, c := range n.Plans {
		r, s := rowsRead(c)
		rows += r
		seqScans = append(seqScans, s...)
	}
	return rows, seqScans
}

// render prints a plan tree, one node a line, for a failure message.
func render(b *strings.Builder, n planNode, depth int) {
	fmt.Fprintf(b, "\n%s%s", strings.Repeat("  ", depth), n.NodeType)
	if n.Relation != "" {
		fmt.Fprintf(b, " on %s", n.Relation)
	}
	if n.Index != "" {
		fmt.Fprintf(b, " using %s", n.Index)
	}
	if n.Parent == "SubPlan" || n.Parent == "InitPlan" {
		fmt.Fprintf(b, " (%s)", n.Parent)
	}
	fmt.Fprintf(b, " rows=%.0f removed=%.0f loops=%.0f", n.Rows, n.RemovedByFilter+n.RemovedByRecheck, n.Loops)
	for _, c := range n.Plans {
		render(b, c, depth+1)
	}
}

var offsetClause = regexp.MustCompile(`(?i)\bOFFSET\b`)

// pagesRows is PAGES_ROWS, the ledger's size, by default 200,000. Below
// 100,000 events a sequential scan of the deliveries (a hashed subplan)
// is a fair plan, so the checks would not hold.
func pagesRows(t *testing.T) int {
	v := os.Getenv("PAGES_ROWS")
	if v == "" {
		return 200_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100_000 {
		t.Fatalf("PAGES_ROWS=%q: want a number of at least 100000", v)
	}
	return n
}

// planPool is another pool on pool's schema whose statements are all
// planned with plan_cache_mode (force_custom_plan or force_generic_plan).
func planPool(t *testing.T, pool *pgxpool.Pool, mode string) *pgxpool.Pool {
	cfg := pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = mode
	// As ListEvents runs them; and a work_mem at which a hashed subplan
	// over every delivery would look cheap, so that none may creep in.
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	cfg.ConnConfig.RuntimeParams["work_mem"] = "64MB"
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// medianPage times ListEvents five times and returns the median.
func medianPage(t *testing.T, pool *pgxpool.Pool, f store.ListParams) (time.Duration, store.Page) {
	t.Helper()
	var times []time.Duration
	var p store.Page
	for range 5 {
		start := time.Now()
		var err error
		if p, err = store.New(pool).ListEvents(context.Background(), f); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[2], p
}

// TestListEventsPlans checks the query plans of the paging statements on
// a ledger of PAGES_ROWS events (default 200,000; the figures that matter
// are at 10,000,000): for every kind of filter, with the plan for the
// arguments' values and with a generic plan, no sequential scan of the
// ledger tables, no OFFSET, and a bounded number of rows read. It logs
// each statement's execution time and ListEvents's median time; from
// 1,000,000 events on, a page that takes 50 ms or more fails.
func TestListEventsPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := pagesRows(t)
	pool := testenv.Postgres(t)
	fillScaledLedger(t, pool, n)
	rows, err := pool.Query(ctx, `SELECT relname, reltuples::bigint::text, pg_size_pretty(pg_table_size(oid)), pg_size_pretty(pg_indexes_size(oid))
		FROM pg_class WHERE oid IN ('stripe_webhook_events'::regclass, 'stripe_webhook_deliveries'::regclass) ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Rows, Table, Indexes string }])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sizes {
		t.Logf("%s: %s rows, table %s, indexes %s", s.Name, s.Rows, s.Table, s.Indexes)
	}
	var mid store.Cursor
	if err := pool.QueryRow(ctx, `SELECT received_at, event_id FROM stripe_webhook_events
		WHERE event_id = 'evt_' || substr(md5(($1::int / 2)::text), 1, 24)`, n).Scan(&mid.At, &mid.ID); err != nil {
		t.Fatal(err)
	}
	pools := []struct {
		mode string
		pool *pgxpool.Pool
	}{{"custom", planPool(t, pool, "force_custom_plan")}, {"generic", planPool(t, pool, "force_generic_plan")}}

	filters := []struct {
		name string
		f    store.ListParams
	}{
		{"newest", store.ListParams{}},
		{"deep", store.ListParams{After: mid}},
		{"type invoice.", store.ListParams{Types: []string{"invoice.*"}}},
		{"type radar. (rare)", store.ListParams{Types: []string{"radar.*"}}},
		{"dead", store.ListParams{Status: store.StatusDead}},
		{"dead at c", store.ListParams{Status: store.StatusDead, Destination: "c"}},
		{"dead radar. (rare)", store.ListParams{Status: store.StatusDead, Types: []string{"radar.*"}}},
		{"pending", store.ListParams{Status: store.StatusPending}},
		{"delivered at a", store.ListParams{Status: store.StatusDelivered, Destination: "a"}},
		{"delivered at b", store.ListParams{Status: store.StatusDelivered, Destination: "b"}}, // behind its backlog
		{"unrouted", store.ListParams{Status: store.StatusUnrouted}},
		{"one day", store.ListParams{Since: planStart.AddDate(0, 0, 10), Until: planStart.AddDate(0, 0, 11)}},
	}
	// A page walks at most PageScanBudget entries of the ledger, or of the
	// destinations' deliveries together, and looks each one up once in the
	// other table; the margin is for ties.
	maxRows := float64(2*store.PageScanBudget + 1000)
	for _, c := range filters {
		for _, p := range pools {
			took, page := medianPage(t, p.pool, c.f)
			t.Logf("%-18s ListEvents %-7s: %6.2f ms median of 5 (%d events, partial %t)",
				c.name, p.mode, float64(took.Microseconds())/1000, len(page.Events), page.Partial)
			if n >= 1_000_000 && took >= 50*time.Millisecond {
				t.Errorf("%s: ListEvents with %s plans takes %v (median of 5) on %d events, want under 50 ms", c.name, p.mode, took, n)
			}
		}
		page, edge, args, err := store.New(pool).PageQueries(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct{ name, sql string }{{"page", page}, {"edge", edge}} {
			if offsetClause.MatchString(s.sql) {
				t.Errorf("%s %s: the statement uses OFFSET:\n%s", c.name, s.name, s.sql)
			}
			for _, p := range pools {
				var e explained
				var err error
				if p.mode == "custom" {
					e, err = explainCustom(ctx, p.pool, s.sql, args)
				} else {
					e, err = explainGeneric(ctx, p.pool, s.sql, args)
				}
				if err != nil {
					t.Fatalf("%s %s, %s plan: %v", c.name, s.name, p.mode, err)
				}
				read, seqScans := rowsRead(e.Plan)
				t.Logf("%-18s %s %-7s: %7.2f ms (planning %.2f ms, JIT %.2f ms), %6.0f ledger rows read, buffers %d hit %d read",
					c.name, s.name, p.mode, e.Execution, e.Planning, e.JIT.Timing.Total, read, e.Plan.HitBlocks, e.Plan.ReadBlocks)
				if len(seqScans) > 0 || read > maxRows {
					var b strings.Builder
					render(&b, e.Plan, 1)
					t.Errorf("%s %s, %s plan: sequential scans of %v, %.0f ledger rows read (at most %.0f):%s",
						c.name, s.name, p.mode, seqScans, read, maxRows, b.String())
				}
			}
		}
	}
}
