-- One row per delivery attempt: the history `receiver events show` prints.
CREATE TABLE stripe_webhook_delivery_attempts (
    event_id     text        NOT NULL REFERENCES stripe_webhook_events (event_id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    ok           boolean     NOT NULL,
    error        text,
    instance     text        NOT NULL
);

CREATE INDEX stripe_webhook_delivery_attempts_event_idx
    ON stripe_webhook_delivery_attempts (event_id, attempted_at);

-- Dead rows are listed and replayed by status.
CREATE INDEX stripe_webhook_events_dead_idx
    ON stripe_webhook_events (received_at)
    WHERE status = 'dead';
