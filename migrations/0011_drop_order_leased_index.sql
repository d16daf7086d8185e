-- The index of keyed deliveries under a lease (0009) serves no statement:
-- whether a key has a delivery in flight is read from the key's own
-- entries of the order index, as its head is. Every keyed delivery
-- stored, and every lease written on one, paid for an entry in it.
-- Dropping an index rewrites no row, but takes the table's lock: behind a
-- long transaction on the table it would hold up every write queued
-- behind it, so it waits 10 s at most and fails instead (the migration
-- is tried again at the next start, or by `oncehook migrate`).
SET LOCAL lock_timeout = '10s';
DROP INDEX IF EXISTS stripe_webhook_deliveries_order_leased_idx;
