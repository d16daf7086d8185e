// Package failover holds the tests that fail Postgres over under a webhook
// storm: two instances on a multi-host DATABASE_URL, a primary with a
// streaming standby (testenv.StartPostgresPair), replication held back,
// the primary crashed and the standby promoted. It has no code of its own.
package failover
