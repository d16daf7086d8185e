// Package dedup decides whether a verified Stripe event is new: a Redis
// SET NX claim first, then Postgres, the source of truth, through a
// group-committing batch writer.
package dedup
