// Package reconcile recovers the events Stripe could not deliver: it
// lists Stripe's Events API (by default the events whose delivery failed)
// over a window that starts at a checkpoint kept in Postgres, less an
// overlap, and puts every event the ledger lacks through the webhook
// insert path (dedup.Admit: ON CONFLICT DO NOTHING, then the Redis done
// key), marked source reconcile. One instance at a time runs it, under a Postgres
// advisory lock; the checkpoint moves only after a whole window was
// listed and stored.
package reconcile
