package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// FillConfig says what Fill adds to a receiver's ledger.
type FillConfig struct {
	// DatabaseURL is the receiver's database, already migrated. Required.
	DatabaseURL string
	// Events is how many events to add. Required.
	Events int64
	// Span is how far back the events go: they are spread evenly over the
	// Span before now. Defaults to 720h (30 days).
	Span time.Duration
	// Destinations each have a delivered delivery of every event. Defaults
	// to "default", the destination of a receiver with SINK_URL.
	Destinations []string
	// NoAttempts leaves the delivery history empty; else each delivery has
	// the one successful attempt that delivered it, as the receiver records.
	NoAttempts bool
	// Connections fill in parallel, each its share of the chunks.
	// Defaults to 2.
	Connections int
	// Chunk is how many events one transaction adds. Defaults to 20,000.
	Chunk int
	// Seed picks the payloads among the generator's bodies. Defaults to 1.
	Seed uint64
	// Progress gets a line every few seconds; nil for none.
	Progress io.Writer
}

// WithDefaults fills the zero fields.
func (c FillConfig) WithDefaults() FillConfig {
	if c.Span == 0 {
		c.Span = 720 * time.Hour
	}
	if len(c.Destinations) == 0 {
		c.Destinations = []string{"default"}
	}
	if c.Connections == 0 {
		c.Connections = 2
	}
	if c.Chunk == 0 {
		c.Chunk = 20000
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

func (c FillConfig) validate() error {
	if c.DatabaseURL == "" {
		return errors.New("fill: no database URL")
	}
	if c.Events < 1 || c.Span <= 0 || c.Connections < 1 || c.Chunk < 1 {
		return errors.New("fill: events, span, connections and chunk must be positive")
	}
	return nil
}

// FillStats is what a fill did and how long each step took.
type FillStats struct {
	Events int64 `json:"events"` // added
	// Rows is the ledger's events after the fill (pg_class.reltuples).
	Rows          int64   `json:"rows"`
	InsertSeconds float64 `json:"insert_seconds"`
	VacuumSeconds float64 `json:"vacuum_seconds"` // VACUUM (ANALYZE) and CHECKPOINT
	LedgerBytes   int64   `json:"ledger_bytes"`   // the three tables with TOAST and indexes, after
}

// fillBodyCount is how many of the generator's bodies the payloads cycle
// through, in the generator's shares of large and thin events.
const fillBodyCount = 200

// The fill's statement for events first..last of a chunk: the ledger rows,
// a delivered delivery per destination, and (with $7) the successful
// attempt of each, as the receiver leaves them. received_at climbs by $3
// µs from $2; ids begin with that second in hex, then random characters,
// so that they sort nearly in the order the events arrived and the primary
// key fills in order (random ids take much longer). A payload is one of
// the generator's bodies: head, id, mid, created (RFC 3339 in thin
// events), tail. The foreign keys hold by construction and are not
// checked (session_replication_role = replica), for speed.
// $1 id salt, $2 start, $3 step µs, $4 first, $5 last, $6 destinations,
// $7 attempts, $8 types, $9 api versions, $10 thin, $11 heads, $12 mids, $13 tails,
// $14 accounts.
const fillChunkSQL = `
WITH e AS MATERIALIZED (
	SELECT 'evt_1' || lpad(to_hex(extract(epoch FROM at)::bigint), 8, '0') || substr(md5($1 || i::text), 1, 15) AS id,
		at, 1 + abs(hashint8(i)) % cardinality($8::text[]) AS k
	FROM generate_series($4::bigint, $5::bigint) i,
		LATERAL (SELECT $2::timestamptz + i * $3::bigint * interval '1 microsecond' AS at) t
), ev AS (
	INSERT INTO stripe_webhook_events
		(event_id, event_type, livemode, account, api_version, stripe_created, payload, received_at, status)
	SELECT e.id, ($8::text[])[e.k], false, ($14::text[])[e.k], ($9::text[])[e.k],
		date_trunc(CASE WHEN ($10::bool[])[e.k] THEN 'milliseconds' ELSE 'second' END, e.at),
		($11::bytea[])[e.k] || convert_to(e.id, 'UTF8') || ($12::bytea[])[e.k] || convert_to(CASE WHEN ($10::bool[])[e.k]
			THEN '"' || to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"'
			ELSE extract(epoch FROM date_trunc('second', e.at))::bigint::text END, 'UTF8') || ($13::bytea[])[e.k],
		e.at, 'routed'
	FROM e
), dl AS (
	INSERT INTO stripe_webhook_deliveries
		(event_id, destination, status, attempts, next_attempt_at, delivered_at, received_at)
	SELECT e.id, d, 'delivered', 1, e.at, e.at + interval '80 milliseconds', e.at
	FROM e CROSS JOIN unnest($6::text[]) d
)
INSERT INTO stripe_webhook_delivery_attempts (event_id, destination, attempted_at, ok, instance)
SELECT e.id, d, e.at + interval '60 milliseconds', true, 'bench-fill'
FROM e CROSS JOIN unnest($6::text[]) d
WHERE $7::bool`

// fillBodies are the payload templates as the fill statement's arrays.
type fillBodies struct {
	types, versions, accounts []*string
	thin                      []bool
	heads, mids, tails        [][]byte
}

// newFillBodies splits the templates into arrays, with the columns the
// receiver would read from them: the API version of snapshot events, and
// the account (context) of thin ones.
func newFillBodies(ts []*template) (*fillBodies, error) {
	b := &fillBodies{}
	for _, t := range ts {
		var version, account *string
		if t.thin {
			var ev struct{ Context string }
			body := slices.Concat(t.head, []byte("evt_x"), t.mid, []byte(`"2026-01-01T00:00:00.000Z"`), t.tail)
			if err := json.Unmarshal(body, &ev); err != nil {
				return nil, fmt.Errorf("fill: a thin body: %w", err)
			}
			account = &ev.Context
		} else {
			v := apiVersion
			version = &v
		}
		typ := t.typ
		b.types, b.versions, b.accounts = append(b.types, &typ), append(b.versions, version), append(b.accounts, account)
		b.thin, b.heads, b.mids, b.tails = append(b.thin, t.thin), append(b.heads, t.head), append(b.mids, t.mid), append(b.tails, t.tail)
	}
	return b, nil
}

// Fill adds cfg.Events delivered events to the ledger in cfg.DatabaseURL
// with SQL (no HTTP), spread evenly over the cfg.Span before now, then
// vacuums, analyzes and checkpoints, so that a run after it starts from a
// settled ledger. It can be called again to grow the ledger.
func Fill(ctx context.Context, cfg FillConfig) (FillStats, error) {
	cfg = cfg.WithDefaults()
	st := FillStats{Events: cfg.Events}
	if err := cfg.validate(); err != nil {
		return st, err
	}
	out := orDiscard(cfg.Progress)
	conns := make([]*pgx.Conn, cfg.Connections)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close(context.Background())
			}
		}
	}()
	for i := range conns {
		c, err := pgx.Connect(ctx, cfg.DatabaseURL)
		if err != nil {
			return st, fmt.Errorf("fill: %w", err)
		}
		conns[i] = c
	}
	bodies, err := newFillBodies(fillTemplates(cfg.Seed, fillBodyCount))
	if err != nil {
		return st, err
	}

	start := time.Now()
	if err := insertChunks(ctx, conns, cfg, bodies, out); err != nil {
		return st, err
	}
	st.InsertSeconds = time.Since(start).Seconds()
	fmt.Fprintf(out, "fill: %d events added in %.0f s (%.0f/s); vacuuming\n", cfg.Events, st.InsertSeconds, float64(cfg.Events)/st.InsertSeconds)

	start = time.Now()
	if err := settle(ctx, conns); err != nil {
		return st, err
	}
	st.VacuumSeconds = time.Since(start).Seconds()
	err = conns[0].QueryRow(ctx, `SELECT sum(pg_total_relation_size(c))::bigint,
			(SELECT reltuples::bigint FROM pg_class WHERE oid = 'stripe_webhook_events'::regclass)
		FROM unnest(ARRAY['stripe_webhook_events', 'stripe_webhook_deliveries',
			'stripe_webhook_delivery_attempts']::regclass[]) c`).Scan(&st.LedgerBytes, &st.Rows)
	if err != nil {
		return st, fmt.Errorf("fill: measuring the ledger: %w", err)
	}
	fmt.Fprintf(out, "fill: vacuumed, analyzed and checkpointed in %.0f s; the ledger's tables take %.1f GB\n",
		st.VacuumSeconds, float64(st.LedgerBytes)/1e9)
	return st, nil
}

// insertChunks adds the events, a chunk at a time, in time order, each
// connection taking the next chunk when it is done with one.
func insertChunks(ctx context.Context, conns []*pgx.Conn, cfg FillConfig, bodies *fillBodies, out io.Writer) error {
	start := time.Now()
	first := start.Add(-cfg.Span)
	step := max(cfg.Span.Microseconds()/cfg.Events, 1)
	salt := randomLetters(8) + ":"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan int64)
	errs := make([]error, len(conns))
	var done atomic.Int64
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			for from := range chunks {
				to := min(from+int64(cfg.Chunk), cfg.Events) - 1
				if errs[i] = fillChunk(ctx, c, cfg, bodies, salt, first, step, from, to); errs[i] != nil {
					cancel()
					return
				}
				done.Add(to - from + 1)
			}
		})
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for from := int64(0); from < cfg.Events && ctx.Err() == nil; {
		select {
		case chunks <- from:
			from += int64(cfg.Chunk)
		case <-ctx.Done():
		case <-tick.C:
			n, s := done.Load(), time.Since(start).Seconds()
			fmt.Fprintf(out, "fill: %d of %d events (%.0f%%) in %.0f s, %.0f/s\n", n, cfg.Events, 100*float64(n)/float64(cfg.Events), s, float64(n)/s)
		}
	}
	close(chunks)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// fillChunk adds events from..to in one transaction.
func fillChunk(ctx context.Context, c *pgx.Conn, cfg FillConfig, b *fillBodies, salt string, first time.Time, step, from, to int64) error {
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off; SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fillChunkSQL, salt, first, step, from, to, cfg.Destinations, !cfg.NoAttempts,
			b.types, b.versions, b.thin, b.heads, b.mids, b.tails, b.accounts)
		return err
	})
	if err != nil {
		return fmt.Errorf("fill: events %d-%d: %w", from, to, err)
	}
	return nil
}

// settle vacuums and analyzes the three tables, the largest on a
// connection of its own, then checkpoints: the fill's dirty pages are
// written before anything is measured, and autovacuum finds nothing to do.
func settle(ctx context.Context, conns []*pgx.Conn) error {
	tables := [][]string{{"stripe_webhook_events"}, {"stripe_webhook_deliveries", "stripe_webhook_delivery_attempts"}}
	if len(conns) == 1 {
		tables = [][]string{append(tables[0], tables[1]...)}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(tables))
	for i, list := range tables {
		wg.Go(func() {
			for _, t := range list {
				if _, err := conns[i].Exec(ctx, "VACUUM (ANALYZE) "+t); err != nil {
					errs[i] = fmt.Errorf("fill: vacuuming %s: %w", t, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := conns[0].Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("fill: checkpoint: %w", err)
	}
	return nil
}

// fillTemplates returns n of the generator's body templates for seed, in
// its default shares of large and thin events, evenly spread.
func fillTemplates(seed uint64, n int) []*template {
	v := variantsFor(seed)
	cfg := GeneratorConfig{}.WithDefaults()
	largeCut := cfg.LargeShare * 10000
	thinCut := largeCut + cfg.ThinShare*10000
	out := make([]*template, n)
	for i := range out {
		switch d := float64(i) * 10000 / float64(n); {
		case d < largeCut:
			out[i] = &v.large[i%len(v.large)]
		case d < thinCut:
			out[i] = &v.thin[i%len(v.thin)]
		default:
			out[i] = &v.normal[i%len(v.normal)]
		}
	}
	return out
}
