-- The destination set each running instance serves: one row per
-- (instance, destination), written when the instance starts, its
-- heartbeat_at refreshed while it runs, and removed when it stops cleanly
-- (a crashed instance's rows stop being refreshed and count as gone once
-- their heartbeat is old). The command line and the console route and
-- report by this record rather than by their own environment. It holds
-- only what routing needs: no URL, no secret. A new table: no existing row
-- is read or rewritten.
CREATE TABLE oncehook_instance_destinations (
    instance     text        NOT NULL, -- host:pid, as in the delivery history
    destination  text        NOT NULL,
    types        text[]      NOT NULL DEFAULT '{}', -- event type patterns; empty: every type
    livemode     boolean,                           -- true: live only, false: test only, NULL: both
    fingerprint  text        NOT NULL,              -- of the instance's whole set: instances that differ differ here
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, destination)
);
