-- Per-key order (DESTINATION_<NAME>_ORDER_KEY): a delivery row holds the
-- order key its destination read from the event when it was stored
-- (NULL: unordered) and, as order_created, the event's Stripe created
-- time (a copy of the ledger's stripe_created, named apart so that no
-- join of the two tables becomes ambiguous), by which a key's deliveries
-- go. Both columns are NULL on every existing row, so adding
-- them rewrites nothing, and every existing delivery stays unordered. The
-- indexes are partial on order_key IS NOT NULL: they start empty, and the
-- writes of unordered rows do not touch them.
ALTER TABLE stripe_webhook_deliveries
    ADD COLUMN order_key text,
    ADD COLUMN order_created timestamptz;

-- A key's pending deliveries in the order they go: the first is its head.
CREATE INDEX stripe_webhook_deliveries_order_idx
    ON stripe_webhook_deliveries (destination, order_key, order_created, event_id)
    WHERE status = 'pending' AND order_key IS NOT NULL;

-- The claim looks for due keyed deliveries apart from unordered ones.
CREATE INDEX stripe_webhook_deliveries_order_due_idx
    ON stripe_webhook_deliveries (destination, next_attempt_at)
    WHERE status = 'pending' AND order_key IS NOT NULL;

-- Whether a key has a delivery under a lease (in flight), without reading
-- its backlog.
CREATE INDEX stripe_webhook_deliveries_order_leased_idx
    ON stripe_webhook_deliveries (destination, order_key)
    WHERE status = 'pending' AND order_key IS NOT NULL AND locked_until IS NOT NULL;
