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

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/pgerr"
	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// maxBatchTries bounds retries of a batch that hit a deadlock or a
// serialization failure.
const maxBatchTries = 3

type insertReq struct {
	ev       *event.Event
	inserted bool
	routes   int         // the destinations ev matches, counted by fill
	lease    store.Lease // Start taken before the INSERT that stored ev began
	err      error
	done     chan struct{}
}

// batchWriter group-commits inserts: up to Flushers batches run at once,
// each one INSERT of at most MaxBatch rows.
type batchWriter struct {
	store   *store.Store
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
		store:   store.New(cfg.Pool),
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
func (w *batchWriter) insert(ctx context.Context, ev *event.Event) (bool, store.Lease, error) {
	r := w.reqPool.Get().(*insertReq)
	r.ev = ev
	if err := w.loop.send(r); err != nil {
		w.reqPool.Put(r)
		if errors.Is(err, errLoopClosed) {
			return false, store.Lease{}, fmt.Errorf("inserting %s: %w: the writer is not running", ev.ID, ErrUnavailable)
		}
		return false, store.Lease{}, ErrOverloaded
	}
	<-r.done
	inserted, lease, err := r.inserted, r.lease, r.err
	r.ev, r.err, r.lease = nil, nil, store.Lease{}
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
		w.metrics.PostgresError("insert", err)
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
	inserted, err := w.store.InsertEvents(ctx, &b.events, w.lease)
	if err != nil {
		return err
	}
	// rows and inserted are both sorted by id: merge.
	j := 0
	for _, r := range rows {
		for j < len(inserted) && inserted[j].ID < r.ev.ID {
			j++
		}
		r.inserted = j < len(inserted) && inserted[j].ID == r.ev.ID
		r.lease = store.Lease{}
		if r.inserted {
			r.lease = store.Lease{Start: start, Until: inserted[j].Lease, Length: w.lease}
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
	events     store.EventBatch
}

// fill puts rows in b's events, counting each one's destinations.
func (b *batch) fill(rows []*insertReq, routes *route.Table) {
	b.events.Reset()
	for _, r := range rows {
		r.routes = b.events.Add(r.ev, routes)
	}
}
