// Package event holds the Stripe event as oncehook stores and delivers
// it, shared by the receiver, the deduplication and the delivery, and its
// parser, Parse, which reads an event's fields from a verified body.
package event

import "time"

// Event is one Stripe event as oncehook stores and delivers it: the fields
// read from the verified body, and the raw body itself.
type Event struct {
	// ID is the Stripe event id ("evt_..."), the deduplication and idempotency key.
	ID string
	// Type is the event type, such as "invoice.paid".
	Type string
	// Created is when Stripe created the event; zero when the body has none.
	Created time.Time
	// Livemode is true for live-mode events.
	Livemode bool
	// Account is the connected account ("acct_..."), empty for platform events.
	Account string
	// APIVersion is the API version the event was rendered with; empty for thin events.
	APIVersion string
	// Thin is true for thin events (object "v2.core.event").
	Thin bool
	// Source is where oncehook got the event: "" for a webhook, SourceReconcile
	// for one found through Stripe's Events API.
	Source string
	// Payload is the raw body exactly as received.
	Payload []byte
	// OrderKey is the order key of the delivery under way, when its
	// destination has one (see KeyPath): set by the delivery on the event
	// it hands one destination's sink, empty otherwise.
	OrderKey string
}

// SourceReconcile marks an event the reconciler stored.
const SourceReconcile = "reconcile"
