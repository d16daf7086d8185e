-- Delivery state moves out of the ledger into one narrow row per
-- (event, destination). The ledger row is then written once and never
-- updated: new instances store it with status 'routed'. The old delivery
-- columns stay while instances of the previous version may still run
-- (a rolling upgrade); their rows ("legacy": status other than 'routed')
-- are adopted into destination 'default' by oncehook_adopt_legacy, which
-- every new instance calls in the background, in small batches: this
-- migration itself copies no row, so it is quick on any ledger, and the
-- adoption takes row locks only, so previous-version instances keep running.
-- The legacy rows, found without a scan: all of them right after this
-- migration, few once they are adopted (only previous-version instances
-- write them). Built first: while it builds, writes to the ledger wait but
-- reads go on; the ALTERs below lock the table only briefly.
CREATE INDEX stripe_webhook_events_legacy_idx
    ON stripe_webhook_events (event_id)
    WHERE status <> 'routed';

CREATE TABLE stripe_webhook_deliveries (
    event_id        text        NOT NULL REFERENCES stripe_webhook_events (event_id) ON DELETE CASCADE,
    destination     text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_error      text,
    delivered_at    timestamptz,
    dead_at         timestamptz, -- when it went dead: dead letters are kept from then
    received_at     timestamptz NOT NULL DEFAULT now(), -- the event's, for listing and age
    PRIMARY KEY (event_id, destination)
);

-- Each destination's sweeper looks for its due pending deliveries.
CREATE INDEX stripe_webhook_deliveries_due_idx
    ON stripe_webhook_deliveries (destination, next_attempt_at)
    WHERE status = 'pending';

-- The oldest pending delivery of a destination, without a scan.
CREATE INDEX stripe_webhook_deliveries_pending_received_idx
    ON stripe_webhook_deliveries (destination, received_at)
    WHERE status = 'pending';

-- Dead letters are listed and replayed per destination.
CREATE INDEX stripe_webhook_deliveries_dead_idx
    ON stripe_webhook_deliveries (destination, received_at)
    WHERE status = 'dead';

-- The history records which destination an attempt was for; attempts made
-- before destinations existed were for 'default'.
ALTER TABLE stripe_webhook_delivery_attempts
    ADD COLUMN destination text NOT NULL DEFAULT 'default';

-- 'routed': the row's delivery state is in stripe_webhook_deliveries.
ALTER TABLE stripe_webhook_events DROP CONSTRAINT stripe_webhook_events_status_check;
ALTER TABLE stripe_webhook_events ADD CONSTRAINT stripe_webhook_events_status_check
    CHECK (status IN ('pending', 'delivered', 'dead', 'routed')) NOT VALID;

-- oncehook_adopt_legacy moves up to max_rows legacy rows (written by an
-- instance of the previous version) with event_id after after_id (only
-- pending ones when pending_only) into destination 'default', keeping their
-- state, and marks them 'routed'. A dead row's keep starts at its adoption
-- (the previous version did not record when it died). A pending row under
-- its lease is left to its instance until the lease ends. SKIP LOCKED: rows
-- another transaction holds are adopted by a later pass. Callers walk the
-- ledger in event_id order, passing the last id returned, so that no pass
-- reads a row twice. Returns the rows moved and the last event_id moved
-- (NULL when none was).
CREATE FUNCTION oncehook_adopt_legacy(after_id text, max_rows integer, pending_only boolean,
    OUT adopted integer, OUT last_id text)
LANGUAGE sql AS $$
    WITH legacy AS (
        SELECT event_id, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, received_at
        FROM stripe_webhook_events
        WHERE status <> 'routed' AND event_id > after_id
            AND (status = 'pending' OR NOT pending_only)
            AND NOT (status = 'pending' AND COALESCE(locked_until > now(), false))
        ORDER BY event_id
        LIMIT max_rows
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        INSERT INTO stripe_webhook_deliveries
            (event_id, destination, status, attempts, next_attempt_at, locked_until, last_error, delivered_at, dead_at, received_at)
        SELECT event_id, 'default', status, attempts, next_attempt_at, locked_until, last_error, delivered_at,
            CASE WHEN status = 'dead' THEN now() END, received_at
        FROM legacy
        ON CONFLICT (event_id, destination) DO NOTHING
    ), routed AS (
        UPDATE stripe_webhook_events e SET status = 'routed'
        FROM legacy WHERE e.event_id = legacy.event_id
        RETURNING e.event_id
    )
    SELECT count(*)::integer, max(event_id) FROM routed
$$;
