package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/safetext"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/store"
	"github.com/oncehook/oncehook/stripeapi"
)

// MaxLookback is how far back Stripe's Events API lists events.
const MaxLookback = 30 * 24 * time.Hour

// lockKey is the advisory lock that makes one instance the reconciler.
const lockKey = "oncehook:reconcile"

// Lister reads pages of Stripe's events; *stripeapi.Client is one.
type Lister interface {
	ListEvents(ctx context.Context, p stripeapi.ListParams) (stripeapi.Page, error)
}

// Config configures a Reconciler.
type Config struct {
	// Lister reads Stripe's events. Required.
	Lister Lister
	// Pool holds the ledger and the checkpoints. Required.
	Pool *pgxpool.Pool
	// Store stores a missing event (not needed for a dry run).
	Store dedup.Storer
	// Enqueue hands a stored event to this instance's delivery; nil leaves
	// it to the sweepers.
	Enqueue func(*event.Event, store.Lease) bool
	// Interval is the time between runs; 0 runs none in the background.
	Interval time.Duration
	// Overlap is how far before the checkpoint a run starts listing, for
	// events Stripe lists late. Defaults to 1h.
	Overlap time.Duration
	// Lookback is how far back the first run lists. Defaults to 72h, at
	// most MaxAge.
	Lookback time.Duration
	// MaxAge bounds how far back any window starts: RETENTION less a
	// margin, as an older event may have been delivered and pruned already
	// and would be stored and delivered again. Defaults to MaxLookback, the
	// Events API's own bound.
	MaxAge time.Duration
	// Slice is the longest span of created times listed before the
	// checkpoint moves: a longer window goes in slices, oldest first, so
	// that a run cut short keeps what it did. Defaults to 24h.
	Slice time.Duration
	// MaxSlicePages bounds the pages (of 100 events) listed for one slice
	// in one listing. Defaults to 10,000 (a million events).
	MaxSlicePages int
	// All lists every event, not only those Stripe failed to deliver.
	All bool
	// Types restricts the listing to these types (at most 20).
	Types []string
	// RetryBase is the first wait after a 429, a 5xx or no answer; it
	// doubles up to 30s, for at most MaxTries tries. Defaults to 1s.
	RetryBase time.Duration
	// MaxTries bounds the tries of one page. Defaults to 8.
	MaxTries int
	// PageInterval is the least time between two requests, which keeps a
	// run far below Stripe's rate limits. Defaults to 100ms.
	PageInterval time.Duration
	// Logger defaults to slog.Default(); Metrics may be nil.
	Logger  *slog.Logger
	Metrics *metrics.Metrics
}

// WithDefaults returns c with its zero fields filled.
func (c Config) WithDefaults() Config {
	if c.Overlap == 0 {
		c.Overlap = time.Hour
	}
	if c.Lookback == 0 {
		c.Lookback = 72 * time.Hour
	}
	if c.MaxAge == 0 || c.MaxAge > MaxLookback {
		c.MaxAge = MaxLookback
	}
	if c.Slice <= 0 {
		c.Slice = 24 * time.Hour
	}
	if c.MaxSlicePages <= 0 {
		c.MaxSlicePages = 10000
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.MaxTries <= 0 {
		c.MaxTries = 8
	}
	if c.PageInterval == 0 {
		c.PageInterval = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Lister == nil || c.Pool == nil:
		return errors.New("reconcile: Lister and Pool are required")
	case c.Lookback < 0 || c.Lookback > MaxLookback:
		return fmt.Errorf("reconcile: the lookback %s is beyond the Events API's 30 days", c.Lookback)
	case c.Lookback > c.MaxAge:
		return fmt.Errorf("reconcile: the lookback %s reaches past what the ledger keeps (%s): pruned events would be delivered again", c.Lookback, c.MaxAge)
	case c.Overlap < 0 || c.Interval < 0:
		return errors.New("reconcile: Overlap and Interval must not be negative")
	case len(c.Types) > 20:
		return fmt.Errorf("reconcile: %d types; Stripe lists at most 20 at once", len(c.Types))
	}
	return nil
}

// Reconciler lists Stripe's events and stores every one the ledger lacks
// through the webhook insert path, marked source reconcile.
type Reconciler struct {
	cfg     Config
	store   *store.Store
	listing string
	stop    chan struct{} // closed by Stop
	done    chan struct{} // closed when the loop has ended
	state   startstop.State
}

// New returns a Reconciler; Start runs it every Interval.
func New(cfg Config) (*Reconciler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Reconciler{cfg: cfg, store: store.New(cfg.Pool), listing: listingName(cfg.All, cfg.Types), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// listingName names a listing's checkpoint by its filter: another filter
// has listed other events, so it starts afresh.
func listingName(all bool, types []string) string {
	name := "delivery_success=false"
	if all {
		name = "all"
	}
	if len(types) > 0 {
		t := append([]string(nil), types...)
		sort.Strings(t)
		name += " types=" + strings.Join(t, ",")
	}
	return name
}

// Progress counts a run's work so far.
type Progress struct {
	Pages   int // pages read
	Seen    int // events listed
	Missing int // of those, not in the ledger
	Stored  int // of those, stored now (the others arrived meanwhile)
	// Rejected counts listed events oncehook cannot store (a webhook with
	// such a body would get 400): logged and skipped, never retried.
	Rejected int
}

// Summary is a finished run.
type Summary struct {
	Progress
	Since   time.Time // the window listed: events created since
	Through time.Time // until the run's start
	// Checkpointed is set when the checkpoint moved to Through.
	Checkpointed bool
}

// Run options.
type Run struct {
	// Since overrides the window's start; zero reads the checkpoint.
	Since time.Time
	// DryRun only counts the missing events.
	DryRun bool
	// Progress, if set, is called after each page.
	Progress func(Progress)
}

// RunOnce lists the window, in slices of created time oldest first, and
// stores what is missing; unless it is a dry run, the checkpoint moves to
// each slice's end once the slice is listed and stored, and within a
// slice too large for one listing (see listRange). It does not take the
// leader lock: Start does.
func (r *Reconciler) RunOnce(ctx context.Context, run Run) (Summary, error) {
	c := r.cfg
	if !run.DryRun && c.Store == nil {
		return Summary{}, errors.New("reconcile: no Store to store missing events in")
	}
	sum := Summary{Through: time.Now().Truncate(time.Second)}
	since := run.Since
	if since.IsZero() {
		var err error
		if since, err = r.windowStart(ctx, sum.Through); err != nil {
			return sum, err
		}
	}
	// Events older than MaxAge cannot be listed (the Events API's 30 days)
	// or must not be (the ledger may have pruned them): a window cut there
	// joins any checkpoint.
	joins := false
	if oldest := sum.Through.Add(-c.MaxAge); !since.After(oldest) {
		since, joins = oldest, true
	}
	sum.Since = since
	w := window{run: run, sum: &sum, joins: joins}
	for start := since; start.Before(sum.Through); {
		// The last slice has no upper bound: events created during the
		// run are listed now or, by the overlap, next time.
		end, last := start.Add(c.Slice), false
		if !end.Before(sum.Through) {
			end, last = sum.Through, true
		}
		if err := r.listRange(ctx, start, end, last, w); err != nil {
			return sum, err
		}
		start = end
	}
	return sum, nil
}

// window is what listRange needs of its run.
type window struct {
	run   Run
	sum   *Summary
	joins bool // the window joins any checkpoint (it starts at MaxAge)
}

// listRange lists the events created in [start, end) (the last slice:
// since start), stores the missing ones, and moves the checkpoint to end.
// A listing that reaches MaxSlicePages keeps what it listed: every event
// created after the second of the oldest one it reached. The rest,
// [start, that second's end), is listed in two halves, oldest first, each
// moving the checkpoint when it is done (and split again if it too is
// too large), so that however many events a slice holds, the checkpoint
// moves through it and a run cut short keeps what it did.
func (r *Reconciler) listRange(ctx context.Context, start, end time.Time, last bool, w window) error {
	capped, floor, err := r.listSlice(ctx, start, end, last, w.run, w.sum)
	if err != nil {
		return err
	}
	if capped {
		// Every event created from floor's next second on is listed.
		rest := floor.Truncate(time.Second).Add(time.Second)
		if !rest.After(start) || !rest.Before(end) {
			// No progress: a second holding more than the cap, or a
			// listing of events outside the range asked for.
			return fmt.Errorf("listing Stripe's events: more than %d pages for the events created in [%s, %s), and none created before %s",
				r.cfg.MaxSlicePages, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), rest.UTC().Format(time.RFC3339))
		}
		mid := start.Add(rest.Sub(start) / 2).Truncate(time.Second)
		if !mid.After(start) {
			mid = rest
		}
		for _, half := range [][2]time.Time{{start, mid}, {mid, rest}} {
			if half[0].Before(half[1]) {
				if err := r.listRange(ctx, half[0], half[1], false, w); err != nil {
					return err
				}
			}
		}
		start = rest
	}
	if w.run.DryRun {
		return nil
	}
	moved, err := r.saveCheckpoint(ctx, start, w.joins && start.Equal(w.sum.Since), end, w.sum.Since, w.sum.Through)
	if err != nil {
		return err
	}
	w.sum.Checkpointed = moved
	return nil
}

// listSlice lists the events created in [start, end) (the last slice:
// since start), newest first, and stores the missing ones. After
// MaxSlicePages pages with more to come it stops, capped, and floor is
// the created time of the oldest event it listed.
func (r *Reconciler) listSlice(ctx context.Context, start, end time.Time, last bool, run Run, sum *Summary) (capped bool, floor time.Time, err error) {
	c := r.cfg
	lp := stripeapi.ListParams{CreatedGTE: start, Types: c.Types, Limit: 100}
	if !last {
		lp.CreatedLT = end
	}
	if !c.All {
		lp.DeliverySuccess = new(bool)
	}
	for pages := 1; ; pages++ {
		page, err := r.listPage(ctx, lp, sum.Pages > 0)
		if err != nil {
			return false, floor, err
		}
		switch {
		case len(page.Events) > int(lp.Limit):
			return false, floor, fmt.Errorf("listing Stripe's events: a page of %d events, more than the %d asked for", len(page.Events), lp.Limit)
		case page.HasMore && len(page.Events) == 0:
			return false, floor, errors.New("listing Stripe's events: an empty page that says more follow")
		}
		sum.Pages++
		sum.Seen += len(page.Events)
		missing, stored, rejected, err := r.storeMissing(ctx, page.Events, run.DryRun)
		sum.Missing += missing
		sum.Stored += stored
		sum.Rejected += rejected
		c.Metrics.Reconciled(stored)
		if run.Progress != nil {
			run.Progress(sum.Progress)
		}
		if err != nil {
			return false, floor, err
		}
		for i, e := range page.Events {
			if pages == 1 && i == 0 || e.Created.Before(floor) {
				floor = e.Created
			}
		}
		if !page.HasMore {
			return false, floor, nil
		}
		if pages >= c.MaxSlicePages {
			return true, floor, nil
		}
		next := page.Events[len(page.Events)-1].ID
		if next == lp.StartingAfter {
			return false, floor, fmt.Errorf("listing Stripe's events: the page after %s ends with it again", next)
		}
		lp.StartingAfter = next
	}
}

// windowStart is the checkpoint less the overlap, or the lookback on a
// first run.
func (r *Reconciler) windowStart(ctx context.Context, now time.Time) (time.Time, error) {
	through, ok, err := r.store.Checkpoint(ctx, r.listing)
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return now.Add(-r.cfg.Lookback), nil
	}
	return through.Add(-r.cfg.Overlap), nil
}

// saveCheckpoint records that every event created before through has
// been listed and stored, the window [since, through) having been listed.
// It never moves the checkpoint back, nor past events no run listed: a
// window that starts after the checkpoint (an explicit Run.Since) leaves
// it, unless joins (nothing before since can be listed any more). A first
// checkpoint is written only by a run whose window reaches back the
// lookback, so that a short explicit window never skips the first run's
// lookback.
func (r *Reconciler) saveCheckpoint(ctx context.Context, since time.Time, joins bool, through, windowStart, runStart time.Time) (bool, error) {
	// A minute of slack: an explicit window of exactly the lookback starts
	// a moment before the run does.
	first := joins || !windowStart.After(runStart.Add(-r.cfg.Lookback+time.Minute))
	saved, err := r.store.SaveCheckpoint(ctx, store.CheckpointSave{Listing: r.listing, Since: since, Through: through, Joins: joins, First: first})
	if err != nil {
		return false, err
	}
	if !saved {
		r.cfg.Logger.Info("reconcile: the window started after the checkpoint (or, on a first run, within the lookback), which stays: the events between were not listed",
			"since", since, "through", through)
	}
	return saved, nil
}

// listPage reads one page, waiting PageInterval first unless it is the
// first, and retrying what Stripe says may be retried, with backoff.
func (r *Reconciler) listPage(ctx context.Context, lp stripeapi.ListParams, pace bool) (stripeapi.Page, error) {
	wait := time.Duration(0)
	if pace {
		wait = r.cfg.PageInterval
	}
	backoff := r.cfg.RetryBase
	for try := 1; ; try++ {
		if err := sleep(ctx, wait); err != nil {
			return stripeapi.Page{}, err
		}
		page, err := r.cfg.Lister.ListEvents(ctx, lp)
		if err == nil {
			return page, nil
		}
		var api *stripeapi.APIError
		if !errors.As(err, &api) || !api.Retryable() || try >= r.cfg.MaxTries {
			return stripeapi.Page{}, fmt.Errorf("listing Stripe's events (try %d): %w", try, err)
		}
		r.cfg.Logger.Warn("reconcile: Stripe's Events API failed; retrying", "status", api.Status, "try", try, "wait", backoff, "error", err)
		wait, backoff = backoff, min(2*backoff, 30*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// storeMissing stores the listed events the ledger lacks; it returns how
// many were missing and how many it stored. The first failure stops it:
// the checkpoint must not move past an event that was not stored.
func (r *Reconciler) storeMissing(ctx context.Context, listed []stripeapi.ListedEvent, dryRun bool) (missing, stored, rejected int, err error) {
	if len(listed) == 0 {
		return 0, 0, 0, nil
	}
	// An id no webhook could bring (a NUL, which Postgres refuses in
	// text, control characters, over 255 bytes) would fail the lookup of
	// the whole page, run after run: skip it, loudly, and look up the rest.
	ids := make([]string, 0, len(listed))
	for _, e := range listed {
		if event.ValidID(e.ID) {
			ids = append(ids, e.ID)
		}
	}
	have, err := r.store.StoredEvents(ctx, ids)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, e := range listed {
		if !event.ValidID(e.ID) {
			rejected++
			r.cfg.Metrics.ReconcileRejected()
			r.cfg.Logger.Warn("reconcile: skipped a listed event whose id oncehook cannot store", "event_id", safetext.Printable(safetext.Clean(e.ID, 255), false))
			continue
		}
		if have[e.ID] {
			continue
		}
		missing++
		if dryRun {
			continue
		}
		ad, err := dedup.Admit(ctx, r.cfg.Store, e.Raw, dedup.Intake{Source: event.SourceReconcile, ID: e.ID, Enqueue: r.cfg.Enqueue})
		if errors.Is(err, event.ErrInvalid) {
			// A body no webhook could bring (400): storing it would fail on
			// every run and hold the checkpoint for good. Skip it, loudly.
			rejected++
			r.cfg.Metrics.ReconcileRejected()
			r.cfg.Logger.Warn("reconcile: skipped an event oncehook cannot store", "event_id", safetext.Clean(e.ID, 255), "error", err)
			continue
		}
		if err != nil {
			return missing, stored, rejected, fmt.Errorf("storing event %s: %w", e.ID, err)
		}
		if ad.Result.Outcome != dedup.Accepted {
			continue // a webhook brought it meanwhile
		}
		stored++
		r.cfg.Logger.Info("reconcile: stored an event Stripe had not delivered", "event_id", ad.Event.ID, "event_type", ad.Event.Type)
	}
	return missing, stored, rejected, nil
}
