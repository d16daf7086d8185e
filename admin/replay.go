package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// DefaultBatchSize is the deliveries (or events walked) one replay
// statement handles when ReplayParams.BatchSize is 0. A replay of a
// million dead letters is a thousand short transactions, each holding
// its row locks for milliseconds, never one long statement.
const DefaultBatchSize = 1000

// MaxBatchSize bounds ReplayParams.BatchSize.
const MaxBatchSize = 10000

// ReplayParams says what Replay puts back to pending. Exactly one of three
// kinds:
//
//   - by ids: IDs, with Destination (only its delivery), Create, Existing
//     and OnlyDead as in store.ReplayIDsOptions;
//   - by filter: Status dead or delivered, with Destination, Types, Since
//     and Until (dead letters need a Destination, or are replayed at
//     every destination that has some), at most Max;
//   - a backfill: Backfill set (the destination's filter), with
//     Destination and Since: every event received since that the filter
//     matches and that the destination has no delivery of gets one.
type ReplayParams struct {
	IDs                        []string
	Create, Existing, OnlyDead bool

	Status      store.Status
	Destination string
	Types       []string
	Since       time.Time
	Until       time.Time
	// Max bounds the deliveries a replay by filter puts back; 0: no bound.
	Max int64

	Backfill *route.Filter

	// BatchSize bounds each statement. Defaults to DefaultBatchSize.
	BatchSize int
}

// ReplayResult is what a replay did.
type ReplayResult struct {
	// Replayed counts the deliveries put back to pending or created (by
	// filter or backfill), or the events replayed (by ids).
	Replayed int64
	// IDs are the events replayed, by ids: the others do not exist or had
	// nothing to replay.
	IDs []string
	// Batches is how many statements it ran.
	Batches int
}

// Replay puts deliveries back to pending as p says, batch by batch; each
// batch is its own transaction, so an error (or ctx ending) leaves the
// batches before it done, and the result says how many.
func (a *Admin) Replay(ctx context.Context, p ReplayParams) (ReplayResult, error) {
	size := p.BatchSize
	if size <= 0 {
		size = DefaultBatchSize
	}
	size = min(size, MaxBatchSize)
	switch {
	case len(p.IDs) > 0 && (p.Status != "" || p.Backfill != nil):
		return ReplayResult{}, errors.New("replay: give event ids, a status or a backfill, not several")
	case len(p.IDs) > 0:
		return a.replayIDs(ctx, p, size)
	case p.Backfill != nil && p.Status != "":
		return ReplayResult{}, errors.New("replay: a backfill creates deliveries; it takes no status")
	case p.Backfill != nil:
		return a.backfill(ctx, p, size)
	case p.Status != "":
		return a.replayMatching(ctx, p, size)
	}
	return ReplayResult{}, errors.New("replay: give event ids, a status (dead or delivered) or a backfill")
}

func (a *Admin) replayIDs(ctx context.Context, p ReplayParams, size int) (ReplayResult, error) {
	var r ReplayResult
	o := store.ReplayIDsOptions{Destination: p.Destination, Create: p.Create, Existing: p.Existing, OnlyDead: p.OnlyDead}
	for ids := range chunks(p.IDs, size) {
		found, err := a.store.ReplayIDs(ctx, ids, o)
		if err != nil {
			return r, err
		}
		r.Batches++
		r.IDs = append(r.IDs, found...)
		r.Replayed += int64(len(found))
	}
	return r, nil
}

// chunks yields s in slices of at most n.
func chunks(s []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// replayMatching walks the deliveries of p's filter oldest first, from
// the moment it began: a delivery that dies again meanwhile is not
// replayed twice.
func (a *Admin) replayMatching(ctx context.Context, p ReplayParams, size int) (ReplayResult, error) {
	var r ReplayResult
	started, err := a.store.Now(ctx)
	if err != nil {
		return r, err
	}
	dests := []string{p.Destination}
	if p.Status == store.StatusDead && p.Destination == "" {
		if dests, err = a.store.DestinationsWith(ctx, store.StatusDead); err != nil {
			return r, err
		}
	}
	for _, dest := range dests {
		f := store.DeliveryFilter{Status: p.Status, Destination: dest, Types: p.Types, Since: p.Since, Until: p.Until}
		b := store.Batch{Started: started, Size: size}
		for p.Max <= 0 || r.Replayed < p.Max {
			if p.Max > 0 {
				b.Size = int(min(int64(size), p.Max-r.Replayed))
			}
			res, err := a.store.ReplayBatch(ctx, f, b)
			if err != nil {
				return r, err
			}
			r.Batches++
			r.Replayed += res.N
			if res.Next == nil {
				break
			}
			b.After = *res.Next
		}
	}
	return r, nil
}

func (a *Admin) backfill(ctx context.Context, p ReplayParams, size int) (ReplayResult, error) {
	var r ReplayResult
	if p.Destination == "" {
		return r, errors.New("backfill: no destination")
	}
	if p.Since.IsZero() {
		return r, fmt.Errorf("backfill of %s: give the time from which events are given to it", p.Destination)
	}
	b := store.Batch{Size: size}
	for {
		res, err := a.store.BackfillBatch(ctx, p.Destination, *p.Backfill, p.Since, b)
		if err != nil {
			return r, err
		}
		r.Batches++
		r.Replayed += res.N
		if res.Next == nil {
			return r, nil
		}
		b.After = *res.Next
	}
}

// CountCap bounds a count of dead letters or of a backlog: a count that
// reaches it means "at least this many".
const CountCap = store.CountCap

// CountDead counts the dead letters at p.Destination that a replay by
// filter of p would put back, up to CountCap: what the console asks the
// user to confirm.
func (a *Admin) CountDead(ctx context.Context, p ReplayParams) (int64, error) {
	return a.store.CountDead(ctx, store.DeliveryFilter{Status: store.StatusDead, Destination: p.Destination, Types: p.Types,
		Since: p.Since, Until: p.Until})
}
