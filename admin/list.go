package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/oncehook/oncehook/store"
)

// The listing's types are the store's: one parameters type for every
// caller.
type (
	// ListParams selects a page of events; see store.ListParams.
	ListParams = store.ListParams
	// Cursor is a position in a listing (newest first).
	Cursor = store.Cursor
	// Page is one page of a listing.
	Page = store.Page
	// PageEvent is one event of a page, with its deliveries.
	PageEvent = store.PageEvent
	// EventRow is one delivery of an event, or an unrouted event.
	EventRow = store.EventRow
)

// List returns one page of the events p selects, newest first; p.After
// is where it starts, and the page's Next where the next one does. A
// page reads a bounded number of index entries (store.PageScanBudget):
// with a filter that matches few events it may come back short, Partial,
// with a Next to go on from.
func (a *Admin) List(ctx context.Context, p ListParams) (Page, error) {
	return a.store.ListEvents(ctx, p)
}

// ListDeliveries walks List's pages from p.After and returns up to max
// rows, newest event first: one per delivery that p selects (of p.Status
// and at p.Destination, when set), and one per event that matched no
// destination (when p.Status is empty or unrouted).
func (a *Admin) ListDeliveries(ctx context.Context, p ListParams, max int) ([]EventRow, error) {
	if max <= 0 {
		return nil, errors.New("listing deliveries: the limit must be positive")
	}
	if p.Limit <= 0 {
		p.Limit = store.MaxPageSize
	}
	var out []EventRow
	for {
		page, err := a.store.ListEvents(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, e := range page.Events {
			if e.Unrouted != nil && (p.Status == "" || p.Status == store.StatusUnrouted) {
				out = append(out, *e.Unrouted)
			}
			for _, d := range e.Deliveries {
				if (p.Status == "" || d.Status == p.Status) && (p.Destination == "" || d.Destination == p.Destination) {
					out = append(out, d)
				}
			}
			if len(out) >= max {
				return out[:max], nil
			}
		}
		if page.Next == nil {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("listing deliveries: %w", err)
		}
		p.After = *page.Next
	}
}
