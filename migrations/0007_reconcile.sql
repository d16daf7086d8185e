-- Where an event came from: NULL for a webhook (every row before this
-- version), 'reconcile' for one the reconciler found through Stripe's
-- Events API. Adding a nullable column without a default rewrites no row.
ALTER TABLE stripe_webhook_events ADD COLUMN source text
    CHECK (source IN ('reconcile'));

-- The reconciler's checkpoints, one per listing (its filter): every event
-- Stripe created before listed_through has been listed and stored.
CREATE TABLE stripe_webhook_reconcile_checkpoints (
    listing        text        PRIMARY KEY,
    listed_through timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
