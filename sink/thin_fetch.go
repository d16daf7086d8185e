package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/oncehook/oncehook/event"
)

// ThinObject is the object of a thin event, which carries only a
// reference to what happened.
const ThinObject = "v2.core.event"

// ThinFetch is a Sink that delivers, in place of a thin event, the full
// event fetched from Stripe (THIN_EVENTS=fetch); other events go to Next
// as they are. The thin body stays in the ledger. A failed fetch is a
// failed attempt: retried, dead after the last one, and replayable.
type ThinFetch struct {
	Next Sink
	// Fetch returns the full event's JSON; stripeapi.Client.FetchV2Event.
	// account is the event's connected account (event.Event.Account, ""
	// for the platform's), which Stripe needs to find a connected
	// account's event.
	Fetch func(ctx context.Context, id, account string) ([]byte, error)
}

// Deliver sends ev, or the full event behind it when it is thin.
func (t *ThinFetch) Deliver(ctx context.Context, ev *event.Event) error {
	if !IsThin(ev) {
		return t.Next.Deliver(ctx, ev)
	}
	full, err := t.Fetch(ctx, ev.ID, ev.Account)
	if err != nil {
		return fmt.Errorf("thin event %s: fetching the full event: %w", ev.ID, err)
	}
	cp := *ev
	cp.Payload = full
	return t.Next.Deliver(ctx, &cp)
}

// Close closes Next.
func (t *ThinFetch) Close() error { return t.Next.Close() }

// IsThin reports whether ev is a thin event: marked so at intake, or, for
// one read back from Postgres, by its body's object.
func IsThin(ev *event.Event) bool {
	if ev.Thin {
		return true
	}
	return topLevelObject(ev.Payload) == ThinObject
}

// topLevelObject is the string value of body's top-level "object" key, or
// "" when there is none. The key is matched exactly, as the receiver does
// (json.Unmarshal into a struct would take "Object" or "OBJECT" too), and
// the scan stops at it, which Stripe sends near the start.
func topLevelObject(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if key, _ := tok.(string); key == "object" {
			var obj string // null leaves it empty
			if dec.Decode(&obj) != nil {
				return ""
			}
			return obj
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}
