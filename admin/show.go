package admin

import (
	"context"

	"github.com/oncehook/oncehook/store"
)

type (
	// Event is one stored event with its deliveries and history.
	Event = store.Event
	// Attempt is one entry of an event's delivery history.
	Attempt = store.Attempt
)

// Show returns one event with its deliveries, its raw payload and its
// delivery history (the newest store.MaxHistory attempts);
// store.ErrNotFound when there is no such event.
func (a *Admin) Show(ctx context.Context, id string) (Event, error) {
	return a.store.ShowEvent(ctx, id)
}
