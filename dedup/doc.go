// Package dedup decides whether a verified Stripe event is new: a Redis
// SET NX claim first, then Postgres, the source of truth, through a
// group-committing batch writer. Admit, the one way a verified body
// enters oncehook, parses it, stores it that way and hands a new event to
// delivery.
package dedup
