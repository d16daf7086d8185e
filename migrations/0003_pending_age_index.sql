-- The oldest pending event's age (a metric read at every scrape) without a scan.
CREATE INDEX stripe_webhook_events_pending_received_idx
    ON stripe_webhook_events (received_at)
    WHERE status = 'pending';
