package dedup

import (
	"context"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/store"
)

// Storer stores an event unless it is stored already and says which it
// was; *Deduper is one.
type Storer interface {
	StoreOnce(ctx context.Context, ev *event.Event) (Result, error)
}

// Intake says where the bodies a caller admits come from and where the
// events it accepts go.
type Intake struct {
	// Source marks the stored event (event.Event.Source): "" for a
	// webhook, event.SourceReconcile for an event the reconciler found.
	Source string
	// ID, when not empty, is the event id the body was found under (the
	// reconciler's listing): a body that reads as another event is
	// refused as an invalid one.
	ID string
	// Enqueue hands an accepted event to this instance's delivery without
	// blocking; false, or no Enqueue, leaves its deliveries pending in
	// Postgres for the sweepers.
	Enqueue func(ev *event.Event, lease store.Lease) bool
	// Metrics, when set, times the parse (metrics.StageParse), a stage of
	// a webhook's latency budget.
	Metrics *metrics.Metrics
}

// Admission is what Admit did with one body.
type Admission struct {
	// Event is the event read from the body, as stored: its Payload is
	// the body itself, or the copy handed to Enqueue. It is zero when the
	// body was refused.
	Event event.Event
	// Result is the store's decision.
	Result Result
	// Queued reports that an accepted event was handed to Enqueue, which
	// took it.
	Queued bool
}

// Admit takes in one verified event body. It is the one way an event
// enters oncehook: the receiver admits a webhook through it once the
// signature is verified, the reconciler an event Stripe's Events API
// listed.
//
//  1. It reads the event's fields (event.Parse). A body that is not an
//     event, or not event in.ID, is refused with an error that wraps
//     event.ErrInvalid (an *event.ParseError, whose message can be shown
//     to the sender as is); nothing is stored.
//  2. It stores the event, marked in.Source, unless it is stored already
//     (s.StoreOnce). Any other error is StoreOnce's (it wraps ErrUnavailable or
//     is ErrOverloaded, or the context's): Admission.Event names the
//     event, and nothing claims it, so a retry is judged afresh.
//  3. It hands an event this call accepted to in.Enqueue with a copy of
//     the payload, so that the caller may reuse body once Admit returns.
func Admit(ctx context.Context, s Storer, body []byte, in Intake) (Admission, error) {
	start := time.Now()
	ev, err := event.Parse(body)
	in.Metrics.Stage(metrics.StageParse, start)
	if err != nil {
		return Admission{}, err
	}
	if in.ID != "" && ev.ID != in.ID {
		// ev.ID is checked printable ASCII; in.ID is outside text.
		return Admission{}, &event.ParseError{Msg: "event id " + ev.ID + " is not the id the event was found under"}
	}
	ev.Source = in.Source
	res, err := s.StoreOnce(ctx, &ev)
	if err != nil {
		return Admission{Event: ev}, err
	}
	if res.Outcome != Accepted || in.Enqueue == nil {
		return Admission{Event: ev, Result: res}, nil
	}
	ev.Payload = append([]byte(nil), body...)
	a := Admission{Event: ev, Result: res} // before ev is shared with delivery
	a.Queued = in.Enqueue(&ev, res.Lease)
	return a, nil
}
