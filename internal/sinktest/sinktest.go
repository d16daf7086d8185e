// Package sinktest is the conformance suite every sink.Sink runs: the
// contract written on the interface, checked against what the sink's
// destination really received.
package sinktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/sink"
)

// Received is one event as read back from a sink's destination.
type Received struct {
	ID      string
	Type    string
	Payload []byte
}

// Harness makes a fresh sink and reads back what its destination holds.
type Harness struct {
	New      func(t *testing.T) sink.Sink
	Received func(t *testing.T) []Received
	// PayloadExact is true when the sink must pass the body byte for byte;
	// otherwise it must be equal as JSON (JSON-lines sinks compact it).
	PayloadExact bool
	// DedupsByID is true when the destination itself drops a resend of an
	// event id it holds (JetStream's duplicate window): the resend is
	// still a success, and the destination holds the event once.
	DedupsByID bool
}

// Event is a pretty-printed event with unicode, as Stripe sends it.
func Event(id string) *event.Event {
	return &event.Event{
		ID: id, Type: "invoice.paid", Created: time.Unix(1_700_000_000, 0),
		Payload: fmt.Appendf(nil, "{\n  \"id\": %q,\n  \"object\": \"event\",\n  \"data\": {\"object\": {\"customer_name\": \"Zoë Ångström 佐藤 <b>&\"}},\n  \"type\": \"invoice.paid\"\n}", id),
	}
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("DeliversIDTypeAndPayload", func(t *testing.T) {
		s := h.New(t)
		evs := []*event.Event{Event("evt_c1"), Event("evt_c2")}
		for _, ev := range evs {
			if err := s.Deliver(context.Background(), ev); err != nil {
				t.Fatalf("Deliver(%s): %v", ev.ID, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		got := h.Received(t)
		if len(got) != len(evs) {
			t.Fatalf("received %d events, want %d", len(got), len(evs))
		}
		for i, ev := range evs {
			if got[i].ID != ev.ID || got[i].Type != ev.Type {
				t.Errorf("event %d: id %q type %q, want %q %q", i, got[i].ID, got[i].Type, ev.ID, ev.Type)
			}
			samePayload(t, h.PayloadExact, got[i].Payload, ev.Payload)
		}
	})

	t.Run("SafeForConcurrentUse", func(t *testing.T) {
		s := h.New(t)
		var wg sync.WaitGroup
		for w := range 20 {
			wg.Go(func() {
				for i := range 5 {
					if err := s.Deliver(context.Background(), Event(fmt.Sprintf("evt_w%02d_%d", w, i))); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		got := h.Received(t)
		ids := map[string]bool{}
		for _, r := range got {
			ids[r.ID] = true
			samePayload(t, h.PayloadExact, r.Payload, Event(r.ID).Payload)
		}
		if len(got) != 100 || len(ids) != 100 {
			t.Fatalf("received %d events with %d ids, want 100 and 100", len(got), len(ids))
		}
	})

	t.Run("AtLeastOnceKeepsTheID", func(t *testing.T) {
		s := h.New(t)
		for range 2 {
			if err := s.Deliver(context.Background(), Event("evt_twice")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		got := h.Received(t)
		if h.DedupsByID {
			if len(got) != 1 || got[0].ID != "evt_twice" {
				t.Fatalf("received %+v, want evt_twice once: the destination drops the resend by id", got)
			}
			return
		}
		if len(got) != 2 || got[0].ID != "evt_twice" || got[1].ID != "evt_twice" {
			t.Fatalf("received %+v, want evt_twice twice, for the application to deduplicate by id", got)
		}
	})

	t.Run("HonoursCancelledContext", func(t *testing.T) {
		s := h.New(t)
		defer s.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Deliver(ctx, Event("evt_cancelled")); err == nil {
			t.Fatal("Deliver with a cancelled context: want an error")
		}
	})

	t.Run("CloseIsIdempotent", func(t *testing.T) {
		s := h.New(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func samePayload(t *testing.T, exact bool, got, want []byte) {
	t.Helper()
	if exact {
		if !bytes.Equal(got, want) {
			t.Errorf("payload changed:\n%s\nwant\n%s", got, want)
		}
		return
	}
	var g, w bytes.Buffer
	if err := json.Compact(&g, got); err != nil {
		t.Errorf("payload is not JSON: %v", err)
		return
	}
	_ = json.Compact(&w, want)
	if !bytes.Equal(g.Bytes(), w.Bytes()) {
		t.Errorf("payload differs as JSON:\n%s\nwant\n%s", g.Bytes(), w.Bytes())
	}
}
