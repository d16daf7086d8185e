// Package deploy has no code. It is the home of the deployment files that
// go with the Dockerfile and docker-compose.yml at the repository root, such
// as the HAProxy configuration in deploy/haproxy, and of the Helm chart in
// deploy/helm/oncehook (whose test is package deploy/helm).
//
// Its test (compose_test.go) needs no Docker. It reads docker-compose.yml,
// the Dockerfile and haproxy.cfg and checks them against the code: the
// services exist; every variable set on a receiver is one cmd/oncehook reads
// and docs/configuration.md documents (a destination's as DESTINATION_<NAME>_URL, ...);
// the receivers route to destinations the way the receiver accepts at start
// (DESTINATIONS lists valid, distinct names, each with a DESTINATION_<NAME>_URL
// that package sink parses and valid _TYPES and _LIVEMODE, no DESTINATION_*
// variable for a name not listed, and no SINK_URL alongside); the receivers
// wait for healthy Postgres and Redis and get a stop grace period of at
// least their SHUTDOWN_TIMEOUT; the load balancer has both receivers and
// checks GET /readyz on them; and the Dockerfile builds with CGO_ENABLED=0
// and its final stage runs as non-root.
package deploy
