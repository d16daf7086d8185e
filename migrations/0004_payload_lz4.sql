-- Compress large payloads with lz4, several times cheaper in CPU than the
-- default pglz, where the server supports it; elsewhere keep the default.
DO $$
BEGIN
    ALTER TABLE stripe_webhook_events ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available: payloads keep the default compression';
END $$;

