-- Every row of the previous version becomes a delivery of destination
-- 'default', with its state; this takes row locks only, so instances of the
-- previous version keep running meanwhile. Rows they hold under a lease are
-- adopted by the new instances once the lease ends.
SELECT oncehook_adopt_legacy(2147483647);

-- Legacy rows are few from now on (only previous-version instances write
-- them): this index finds them without a scan.
CREATE INDEX stripe_webhook_events_legacy_idx
    ON stripe_webhook_events (event_id)
    WHERE status <> 'routed';
