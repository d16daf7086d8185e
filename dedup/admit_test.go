package dedup_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/store"
)

// fakeStorer answers StoreOnce with a fixed result and records what it got.
type fakeStorer struct {
	res    dedup.Result
	err    error
	called []event.Event
}

func (c *fakeStorer) StoreOnce(_ context.Context, ev *event.Event) (dedup.Result, error) {
	c.called = append(c.called, *ev)
	return c.res, c.err
}

// TestAdmit pins the one sequence both the receiver and the reconciler
// admit a body through: a refused body is never stored, a store error names
// the event, and only an event this call accepted goes to delivery, with a
// payload of its own.
func TestAdmit(t *testing.T) {
	t.Parallel()
	const body = `{"id":"evt_admit","object":"event","type":"invoice.paid","created":1726554052}`
	lease := store.Lease{Start: time.Now(), Until: time.Now().Add(time.Minute), Length: time.Minute}
	type queued struct {
		ev    *event.Event
		lease store.Lease
	}
	run := func(c *fakeStorer, in dedup.Intake, b []byte) (dedup.Admission, []queued, error) {
		var q []queued
		if in.Enqueue == nil {
			in.Enqueue = func(ev *event.Event, l store.Lease) bool { q = append(q, queued{ev, l}); return true }
		}
		a, err := dedup.Admit(context.Background(), c, b, in)
		return a, q, err
	}

	t.Run("invalid body", func(t *testing.T) {
		c := &fakeStorer{res: dedup.Result{Outcome: dedup.Accepted}}
		a, q, err := run(c, dedup.Intake{}, []byte(`{"id":"evt_1"}`))
		var pe *event.ParseError
		if !errors.Is(err, event.ErrInvalid) || !errors.As(err, &pe) || err.Error() != "event has no type" {
			t.Fatalf("error %v, want the parser's", err)
		}
		if len(c.called) != 0 || len(q) != 0 || a.Event.ID != "" {
			t.Fatalf("a refused body reached the store (%d) or delivery (%d): %+v", len(c.called), len(q), a)
		}
	})

	t.Run("another id than the one listed", func(t *testing.T) {
		c := &fakeStorer{res: dedup.Result{Outcome: dedup.Accepted}}
		_, q, err := run(c, dedup.Intake{ID: "evt_other"}, []byte(body))
		if !errors.Is(err, event.ErrInvalid) || len(c.called) != 0 || len(q) != 0 {
			t.Fatalf("error %v, %d stored, %d queued; want refused, nothing stored", err, len(c.called), len(q))
		}
	})

	t.Run("accepted", func(t *testing.T) {
		c := &fakeStorer{res: dedup.Result{Outcome: dedup.Accepted, Path: dedup.PathPostgresOnly, Lease: lease}}
		b := []byte(body)
		a, q, err := run(c, dedup.Intake{Source: event.SourceReconcile, ID: "evt_admit"}, b)
		if err != nil || a.Result.Outcome != dedup.Accepted || !a.Queued {
			t.Fatalf("Admit = %+v, %v; want accepted and queued", a, err)
		}
		if len(c.called) != 1 || c.called[0].ID != "evt_admit" || c.called[0].Type != "invoice.paid" || c.called[0].Source != event.SourceReconcile {
			t.Fatalf("stored %+v", c.called)
		}
		if &c.called[0].Payload[0] != &b[0] {
			t.Error("the store did not get the body itself")
		}
		if len(q) != 1 || q[0].lease != lease || q[0].ev.ID != "evt_admit" || q[0].ev.Source != event.SourceReconcile {
			t.Fatalf("queued %+v", q)
		}
		if string(q[0].ev.Payload) != body || &q[0].ev.Payload[0] == &b[0] {
			t.Error("the queued event does not hold its own copy of the body")
		}
		b[0] = 'x' // the caller reuses its buffer
		if q[0].ev.Payload[0] != '{' {
			t.Error("the queued payload changed with the caller's buffer")
		}
	})

	t.Run("queue full", func(t *testing.T) {
		c := &fakeStorer{res: dedup.Result{Outcome: dedup.Accepted, Lease: lease}}
		a, err := dedup.Admit(context.Background(), c, []byte(body), dedup.Intake{Enqueue: func(*event.Event, store.Lease) bool { return false }})
		if err != nil || a.Result.Outcome != dedup.Accepted || a.Queued {
			t.Fatalf("Admit = %+v, %v; want accepted, not queued", a, err)
		}
	})

	t.Run("no delivery", func(t *testing.T) {
		c := &fakeStorer{res: dedup.Result{Outcome: dedup.Accepted, Lease: lease}}
		a, err := dedup.Admit(context.Background(), c, []byte(body), dedup.Intake{})
		if err != nil || a.Result.Outcome != dedup.Accepted || a.Queued {
			t.Fatalf("Admit = %+v, %v; want accepted, not queued", a, err)
		}
	})

	t.Run("duplicate", func(t *testing.T) {
		c := &fakeStorer{res: dedup.Result{Outcome: dedup.Duplicate, Path: dedup.PathPostgresOnly}}
		a, q, err := run(c, dedup.Intake{}, []byte(body))
		if err != nil || a.Result.Outcome != dedup.Duplicate || a.Queued || len(q) != 0 || a.Event.ID != "evt_admit" {
			t.Fatalf("Admit = %+v, %v, %d queued; want a duplicate, not queued", a, err, len(q))
		}
	})

	t.Run("store error", func(t *testing.T) {
		c := &fakeStorer{err: dedup.ErrOverloaded}
		a, q, err := run(c, dedup.Intake{}, []byte(body))
		if !errors.Is(err, dedup.ErrOverloaded) || errors.Is(err, event.ErrInvalid) || len(q) != 0 {
			t.Fatalf("error %v, %d queued; want the store's error, nothing queued", err, len(q))
		}
		if a.Event.ID != "evt_admit" || a.Event.Type != "invoice.paid" {
			t.Fatalf("the error does not name the event: %+v", a.Event)
		}
	})
}
