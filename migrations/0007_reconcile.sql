-- Where an event came from: NULL for a webhook (every row before this
-- version), 'reconcile' for one the reconciler found through Stripe's
-- Events API. A nullable column without a default rewrites no row, and the
-- check is added NOT VALID, so that it reads no row either: the ledger is
-- locked only for the moment of the ALTERs, whatever its size. New rows
-- are checked.
ALTER TABLE stripe_webhook_events ADD COLUMN source text;
ALTER TABLE stripe_webhook_events ADD CONSTRAINT stripe_webhook_events_source_check
    CHECK (source IN ('reconcile')) NOT VALID;

-- The reconciler's checkpoints, one per listing (its filter): every event
-- Stripe created before listed_through has been listed and stored.
CREATE TABLE stripe_webhook_reconcile_checkpoints (
    listing        text        PRIMARY KEY,
    listed_through timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
