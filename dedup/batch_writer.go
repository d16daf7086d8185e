package dedup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/pgerr"
	"github.com/oncehook/oncehook/route"
)

// insertSQL stores one batch: each new event's ledger row, written once,
// and one delivery row per destination it matches, in one statement and so
// one transaction. Rows go in event_id order, so that batches from several
// instances take row locks in the same order. It returns the new ids and
// their lease: a new delivery is leased to this instance ($8 ms), and no
// sweeper takes it before then.
// $1..$7 and $11 the events, $8 lease ms, $9/$10 (event id, destination) pairs.
const insertSQL = `
WITH ins AS (
	INSERT INTO stripe_webhook_events
		(event_id, event_type, livemode, account, api_version, stripe_created, payload, status, source)
	SELECT e.id, e.type, e.livemode, NULLIF(e.account, ''), NULLIF(e.api_version, ''), e.created, e.payload, 'routed',
		NULLIF(e.source, '')
	FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[], $11::text[])
		AS e(id, type, livemode, account, api_version, created, payload, source)
	ORDER BY e.id
	ON CONFLICT (event_id) DO NOTHING
	RETURNING event_id),
routed AS (
	INSERT INTO stripe_webhook_deliveries (event_id, destination, locked_until, next_attempt_at)
	SELECT r.id, r.destination, now() + $8::bigint * interval '1 millisecond', now() + $8::bigint * interval '1 millisecond'
	FROM unnest($9::text[], $10::text[]) AS r(id, destination)
	WHERE r.id IN (SELECT event_id FROM ins)
	ORDER BY r.id, r.destination)
SELECT event_id, now() + $8::bigint * interval '1 millisecond' FROM ins`

// maxBatchTries bounds retries of a batch that hit a deadlock or a
// serialization failure.
const maxBatchTries = 3

type insertReq struct {
	ev       *event.Event
	inserted bool
	routes   int   // the destinations ev matches, counted by fill
	lease    Lease // Start taken before the INSERT that stored ev began
	err      error
	done     chan struct{}
}

// batchWriter group-commits inserts: up to Flushers batches run at once,
// each one INSERT of at most MaxBatch rows.
type batchWriter struct {
	pool    *pgxpool.Pool
	loop    *batchLoop[*insertReq]
	bufs    sync.Pool // *batch, one per running flush
	timeout time.Duration
	lease   time.Duration
	routes  *route.Table
	reqPool sync.Pool
	batches atomic.Uint64 // statements run
	rows    atomic.Uint64 // rows sent in them
	metrics *metrics.Metrics
}

func newBatchWriter(cfg Config) *batchWriter {
	w := &batchWriter{
		pool:    cfg.Pool,
		timeout: cfg.CommitTimeout,
		lease:   cfg.Lease,
		routes:  cfg.Routes,
		metrics: cfg.Metrics,
	}
	w.reqPool.New = func() any { return &insertReq{done: make(chan struct{}, 1)} }
	w.bufs.New = func() any { return new(batch) }
	w.loop = newBatchLoop(cfg.Flushers, cfg.QueueSize, cfg.MaxBatch, func(reqs []*insertReq) {
		b := w.bufs.Get().(*batch)
		b.reqs = reqs
		w.flush(b)
		b.reqs = nil
		w.bufs.Put(b)
	})
	return w
}

// insert commits ev and reports whether its row is new, and its lease. It
// waits for the outcome even when ctx ends, so the caller always knows what
// happened.
func (w *batchWriter) insert(ctx context.Context, ev *event.Event) (bool, Lease, error) {
	r := w.reqPool.Get().(*insertReq)
	r.ev = ev
	if err := w.loop.send(r); err != nil {
		w.reqPool.Put(r)
		if errors.Is(err, errLoopClosed) {
			return false, Lease{}, fmt.Errorf("inserting %s: %w: the writer is not running", ev.ID, ErrUnavailable)
		}
		return false, Lease{}, ErrOverloaded
	}
	<-r.done
	inserted, lease, err := r.inserted, r.lease, r.err
	r.ev, r.err, r.lease = nil, nil, Lease{}
	w.reqPool.Put(r)
	return inserted, lease, err
}

// start starts the flushers; before, inserts fail with ErrUnavailable.
func (w *batchWriter) start() { w.loop.start() }

// close flushes what is queued and stops the flushers; later inserts fail
// with ErrUnavailable.
func (w *batchWriter) close() { w.loop.close() }

func (w *batchWriter) flush(b *batch) {
	reqs := b.reqs
	slices.SortFunc(reqs, func(x, y *insertReq) int { return strings.Compare(x.ev.ID, y.ev.ID) })
	// Repeats of one id inside the batch: only the first goes to Postgres.
	uniq := b.uniq[:0]
	for i, r := range reqs {
		if i == 0 || r.ev.ID != reqs[i-1].ev.ID {
			uniq = append(uniq, r)
		}
	}
	b.uniq = uniq
	err := w.exec(b, uniq)
	if err != nil && len(uniq) > 1 && pgerr.IsRowError(err) {
		// One bad row must not fail the others: insert them one by one.
		for _, r := range uniq {
			r.err = w.exec(b, []*insertReq{r})
		}
	} else {
		for _, r := range uniq {
			r.err = err
		}
	}
	for i, r := range reqs {
		if i > 0 && r.ev.ID == reqs[i-1].ev.ID {
			r.inserted, r.err = false, reqs[i-1].err
		}
	}
	// Signal only after every result is set: a signalled request is reused.
	for _, r := range reqs {
		r.done <- struct{}{}
	}
}

// exec inserts rows in one statement and sets each one's inserted flag.
func (w *batchWriter) exec(b *batch, rows []*insertReq) error {
	b.fill(rows, w.routes)
	var err error
	for try := 1; try <= maxBatchTries; try++ {
		err = w.query(b, rows)
		if err == nil || !pgerr.IsRetryable(err) {
			break
		}
	}
	if err != nil {
		w.metrics.PostgresError("insert")
		for _, r := range rows {
			r.inserted = false
		}
		return fmt.Errorf("inserting %d events: %w", len(rows), errors.Join(ErrUnavailable, err))
	}
	return nil
}

func (w *batchWriter) query(b *batch, rows []*insertReq) error {
	w.batches.Add(1)
	w.rows.Add(uint64(len(rows)))
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	start := time.Now() // before the statement's now(), where the leases begin
	defer func() { w.metrics.Batch(len(rows), time.Since(start)) }()
	dbRows, err := w.pool.Query(ctx, insertSQL, b.ids, b.types, b.livemodes, b.accounts, b.versions, b.created, b.payloads,
		w.lease.Milliseconds(), b.routeIDs, b.routeDests, b.sources)
	if err != nil {
		return err
	}
	b.returned = b.returned[:0]
	for dbRows.Next() {
		var ret returnedRow
		if err := dbRows.Scan(&ret.id, &ret.lease); err != nil {
			dbRows.Close()
			return err
		}
		b.returned = append(b.returned, ret)
	}
	if err := dbRows.Err(); err != nil {
		return err
	}
	// rows are sorted by id; sort the returned ids and merge.
	slices.SortFunc(b.returned, func(x, y returnedRow) int { return strings.Compare(x.id, y.id) })
	j := 0
	for _, r := range rows {
		for j < len(b.returned) && b.returned[j].id < r.ev.ID {
			j++
		}
		r.inserted = j < len(b.returned) && b.returned[j].id == r.ev.ID
		r.lease = Lease{}
		if r.inserted {
			r.lease = Lease{Start: start, Until: b.returned[j].lease, Length: w.lease}
			if r.routes == 0 {
				w.metrics.Unrouted()
			}
		}
	}
	return nil
}

// batch holds one flusher's reusable buffers.
type batch struct {
	reqs, uniq []*insertReq
	ids        []string
	types      []string
	livemodes  []bool
	accounts   []string
	versions   []string
	created    []pgtype.Timestamptz
	payloads   [][]byte
	sources    []string
	routeIDs   []string // one (id, destination) pair per delivery row
	routeDests []string
	returned   []returnedRow
}

// returnedRow is one row the INSERT stored: its id and its locked_until.
type returnedRow struct {
	id    string
	lease time.Time
}

func (b *batch) fill(rows []*insertReq, routes *route.Table) {
	b.ids, b.types, b.accounts, b.versions = b.ids[:0], b.types[:0], b.accounts[:0], b.versions[:0]
	b.livemodes, b.created, b.payloads, b.sources = b.livemodes[:0], b.created[:0], b.payloads[:0], b.sources[:0]
	b.routeIDs, b.routeDests = b.routeIDs[:0], b.routeDests[:0]
	for _, r := range rows {
		ev := r.ev
		b.ids = append(b.ids, ev.ID)
		b.types = append(b.types, ev.Type)
		b.livemodes = append(b.livemodes, ev.Livemode)
		b.accounts = append(b.accounts, ev.Account)
		b.versions = append(b.versions, ev.APIVersion)
		b.created = append(b.created, pgtype.Timestamptz{Time: ev.Created, Valid: !ev.Created.IsZero()})
		b.payloads = append(b.payloads, ev.Payload)
		b.sources = append(b.sources, ev.Source)
		n := len(b.routeDests)
		b.routeDests = routes.Match(b.routeDests, ev.Type, ev.Livemode)
		r.routes = len(b.routeDests) - n
		for range r.routes {
			b.routeIDs = append(b.routeIDs, ev.ID)
		}
	}
}
