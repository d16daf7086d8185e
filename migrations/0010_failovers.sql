-- Postgres failovers (see docs/high-availability.md, "Asynchronous
-- replication: how oncehook heals"). A promotion starts a new timeline;
-- oncehook_timeline keeps the timeline the instances last wrote to
-- (one row, written at the first start after this migration), and
-- oncehook_failovers one row per failover detected: a timeline higher
-- than the one recorded. The row carries the window of Stripe's created
-- times the reconciler's leader lists to recover the commits the promoted
-- server lacks, how far it has listed (listed_through, its checkpoint:
-- a leader that dies is followed from there), and, once listed, when and
-- how many events it stored. Both tables start empty: adding them
-- rewrites nothing.
CREATE TABLE oncehook_timeline (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    timeline   bigint NOT NULL CHECK (timeline > 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE oncehook_failovers (
    new_timeline   bigint PRIMARY KEY,
    old_timeline   bigint NOT NULL,
    detected_at    timestamptz NOT NULL DEFAULT now(),
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    listed_through timestamptz NOT NULL,
    healed_at      timestamptz,
    recovered      bigint NOT NULL DEFAULT 0,
    CHECK (new_timeline > old_timeline),
    CHECK (window_start <= listed_through)
);
