// Package store owns every SQL statement against oncehook's tables: the
// event ledger (stripe_webhook_events), the deliveries and their state
// machine (stripe_webhook_deliveries, in deliveries.go), the attempt
// history, the reconciler's checkpoints, the destination set the
// instances serve, and the identity of the database. No other package
// writes SQL against them, except migrations/ (the schema) and bench/ (its
// bulk fill).
//
// A Store is safe for concurrent use. Its methods take the context that
// bounds the statement; errors are Postgres's, wrapped, or ErrNotFound
// (store.go).
package store
