-- One row per Stripe event: the record of what was accepted, and its delivery state.
CREATE TABLE stripe_webhook_events (
    event_id        text        PRIMARY KEY,
    event_type      text        NOT NULL,
    livemode        boolean     NOT NULL DEFAULT false,
    account         text,
    api_version     text,
    stripe_created  timestamptz,
    payload         bytea       NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_error      text,
    delivered_at    timestamptz
);

-- The sweeper looks for due pending rows.
CREATE INDEX stripe_webhook_events_due_idx
    ON stripe_webhook_events (next_attempt_at)
    WHERE status = 'pending';

-- Retention prunes by age.
CREATE INDEX stripe_webhook_events_received_at_idx
    ON stripe_webhook_events (received_at);
