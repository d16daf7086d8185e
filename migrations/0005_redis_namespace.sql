-- This database's Redis key namespace. Redis only caches facts about this
-- ledger, under keys that start with the namespace, so deployments with
-- separate databases never share keys by accident, even on one Redis.
CREATE TABLE oncehook_identity (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    namespace  text        NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO oncehook_identity DEFAULT VALUES;
