package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/startstop"
	"github.com/oncehook/oncehook/store"
	"github.com/oncehook/oncehook/stripeapi"
)

// healLockKey makes one instance the healer of failovers. It is not the
// reconciler's lock: a regular run may hold that one for long (a first
// run lists 72h), and a failover's window should not wait behind it.
const healLockKey = "oncehook:failover-heal"

// HealerConfig configures a Healer.
type HealerConfig struct {
	// Lister reads Stripe's events. Required.
	Lister Lister
	// Pool holds the ledger and the failovers (store.ObserveTimeline
	// records them). Required.
	Pool *pgxpool.Pool
	// Store stores a missing event. Required.
	Store dedup.Storer
	// Enqueue hands a stored event to this instance's delivery; nil leaves
	// it to the sweepers.
	Enqueue func(*event.Event, store.Lease) bool
	// Interval is how often the failovers are looked for. Defaults to 2s:
	// the look is one query on a table of a few rows.
	Interval time.Duration
	// Slice is the span of created times listed before the failover's
	// checkpoint moves. Defaults to 10 minutes.
	Slice time.Duration
	// Types restricts the listing to these types (at most 20), as
	// Config.Types does the reconciler's: RECONCILE_TYPES.
	Types []string
	// MaxAge bounds how far back a window is listed: RETENTION less a
	// margin (Config.MaxAge). A window healed later than that, such as
	// one recorded without an API key, would otherwise store again the
	// delivered events the pruner has deleted since, and deliver them a
	// second time. 0 means MaxLookback.
	MaxAge time.Duration
	// MaxSlicePages bounds the pages of one slice (a listing that never
	// ends holds the heal's lock for nothing). Defaults to 10,000.
	MaxSlicePages int
	// RetryBase, MaxTries and PageInterval are the reconciler's (Config).
	RetryBase    time.Duration
	MaxTries     int
	PageInterval time.Duration
	// Logger defaults to slog.Default(); Metrics may be nil.
	Logger  *slog.Logger
	Metrics *metrics.Metrics
}

// Healer reconciles the window of each Postgres failover recorded in
// oncehook_failovers (see store.ObserveTimeline): it lists every event
// Stripe created in the window, delivered or not (Stripe counts an event
// acknowledged by the server that was failed over from as delivered), and
// stores those the promoted server's ledger lacks through the webhook
// insert path, so that they are routed to the destinations. One instance
// heals at a time (an advisory lock); the failover's row holds the
// checkpoint, so another instance goes on where a dead one stopped.
type Healer struct {
	cfg   HealerConfig
	r     *Reconciler // lists and stores; its own checkpoints are not used
	store *store.Store
	stop  chan struct{}
	done  chan struct{}
	state startstop.State
}

// NewHealer returns a Healer; Start runs it every Interval.
func NewHealer(cfg HealerConfig) (*Healer, error) {
	if cfg.Lister == nil || cfg.Pool == nil || cfg.Store == nil {
		return nil, errors.New("reconcile: the healer needs a Lister, a Pool and a Store")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Slice <= 0 {
		cfg.Slice = 10 * time.Minute
	}
	if cfg.MaxAge <= 0 || cfg.MaxAge > MaxLookback {
		cfg.MaxAge = MaxLookback
	}
	if cfg.MaxSlicePages <= 0 {
		cfg.MaxSlicePages = 10_000
	}
	if len(cfg.Types) > 20 {
		return nil, fmt.Errorf("reconcile: %d types; Stripe lists at most 20 at once", len(cfg.Types))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r, err := New(Config{Lister: cfg.Lister, Pool: cfg.Pool, Store: cfg.Store, Enqueue: cfg.Enqueue, All: true,
		RetryBase: cfg.RetryBase, MaxTries: cfg.MaxTries, PageInterval: cfg.PageInterval, Logger: cfg.Logger, Metrics: cfg.Metrics})
	if err != nil {
		return nil, err
	}
	return &Healer{cfg: cfg, r: r, store: store.New(cfg.Pool), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Start looks for failovers to heal now and then every Interval, until
// Stop. A second Start does nothing; a Start after Stop returns
// startstop.ErrStopped.
func (h *Healer) Start(ctx context.Context) error {
	return h.state.Start(ctx, func(context.Context) error {
		go h.loop()
		return nil
	})
}

// Stop ends the loop, cancelling a heal under way (its checkpoint stays),
// and waits for it until ctx ends.
func (h *Healer) Stop(ctx context.Context) error {
	return h.state.Stop(ctx, func(ctx context.Context) error {
		close(h.stop)
		return startstop.Wait(ctx, h.done)
	})
}

func (h *Healer) loop() {
	defer close(h.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-h.stop
		cancel()
	}()
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := h.HealOnce(ctx); err != nil && ctx.Err() == nil {
			h.cfg.Logger.Error("postgres failover heal failed; retried from its checkpoint", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// HealOnce heals every failover not yet healed, if this instance takes
// the lock, and returns those it healed.
func (h *Healer) HealOnce(ctx context.Context) ([]store.Failover, error) {
	todo, err := h.store.UnhealedFailovers(ctx)
	if err != nil || len(todo) == 0 {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	release, leader, err := h.store.TryLead(ctx, healLockKey)
	if err != nil || !leader {
		return nil, err
	}
	defer release()
	// Read again under the lock: another leader may have healed them.
	if todo, err = h.store.UnhealedFailovers(ctx); err != nil {
		return nil, err
	}
	var healed []store.Failover
	for _, f := range todo {
		done, err := h.heal(ctx, f)
		if err != nil {
			return healed, err
		}
		healed = append(healed, done)
	}
	return healed, nil
}

// heal lists f's window from its checkpoint, in slices oldest first,
// moving the checkpoint after each, then marks it healed.
func (h *Healer) heal(ctx context.Context, f store.Failover) (store.Failover, error) {
	started := time.Now()
	from := f.ListedThrough
	if floor := started.Add(-h.cfg.MaxAge); from.Before(floor) {
		// Older events may have been delivered and pruned: stored again,
		// they would be delivered twice. Say what is left unlisted.
		h.cfg.Logger.Error("postgres failover: part of its window is older than the ledger keeps events; not listed, "+
			"as pruned events would be delivered again: check it by hand", "new_timeline", f.NewTimeline,
			"unlisted_from", from, "unlisted_to", minTime(floor, f.WindowEnd))
		from = floor
	}
	for start := from; start.Before(f.WindowEnd); {
		end := start.Add(h.cfg.Slice)
		if end.After(f.WindowEnd) {
			end = f.WindowEnd
		}
		stored, err := h.listWindow(ctx, start, end)
		h.cfg.Metrics.FailoverRecovered(stored)
		if err != nil {
			// Those stored stay stored, and counted: the slice is listed
			// again, where they are found in the ledger.
			if _, serr := h.store.SaveFailoverProgress(ctx, f.NewTimeline, start, stored); serr != nil {
				err = errors.Join(err, serr)
			}
			return f, fmt.Errorf("healing the failover to timeline %d: %w", f.NewTimeline, err)
		}
		if _, err := h.store.SaveFailoverProgress(ctx, f.NewTimeline, end, stored); err != nil {
			return f, err
		}
		start = end
	}
	done, err := h.store.MarkFailoverHealed(ctx, f.NewTimeline)
	if err != nil {
		return f, err
	}
	args := []any{"old_timeline", done.OldTimeline, "new_timeline", done.NewTimeline, "recovered", done.Recovered,
		"window_start", done.WindowStart, "window_end", done.WindowEnd, "took", time.Since(started).Round(time.Millisecond).String()}
	msg := fmt.Sprintf("postgres failover healed: recovered %d events the promoted server lacked (timeline %d -> %d)",
		done.Recovered, done.OldTimeline, done.NewTimeline)
	if done.Recovered > 0 {
		h.cfg.Logger.Warn(msg, args...)
	} else {
		h.cfg.Logger.Info(msg, args...)
	}
	return done, nil
}

// listWindow lists every event created in [start, end), newest first,
// and stores those the ledger lacks; it returns how many it stored.
func (h *Healer) listWindow(ctx context.Context, start, end time.Time) (int, error) {
	lp := stripeapi.ListParams{CreatedGTE: start, CreatedLT: end, Limit: 100, Types: h.cfg.Types}
	stored := 0
	for pages := 1; ; pages++ {
		if pages > h.cfg.MaxSlicePages {
			return stored, fmt.Errorf("listing Stripe's events: more than %d pages created in [%s, %s)",
				h.cfg.MaxSlicePages, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
		}
		page, err := h.r.listPage(ctx, lp, pages > 1)
		if err != nil {
			return stored, err
		}
		switch {
		case len(page.Events) > int(lp.Limit):
			return stored, fmt.Errorf("listing Stripe's events: a page of %d events, more than the %d asked for", len(page.Events), lp.Limit)
		case page.HasMore && len(page.Events) == 0:
			return stored, errors.New("listing Stripe's events: an empty page that says more follow")
		}
		_, n, _, err := h.r.storeMissing(ctx, page.Events, false)
		stored += n
		h.cfg.Metrics.Reconciled(n)
		if err != nil || !page.HasMore {
			return stored, err
		}
		next := page.Events[len(page.Events)-1].ID
		if next == lp.StartingAfter {
			return stored, fmt.Errorf("listing Stripe's events: the page after %s ends with it again", next)
		}
		lp.StartingAfter = next
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
