// Package service is oncehook's one wiring: New builds a whole receiver
// instance (webhook listener, deduper and its batch writer, delivery,
// pruner, reconciler, admin and console server) from a Config, and the
// Service's Start and Stop run it, the shutdown order written in one
// place (Service.Stop).
//
// The command (cmd/oncehook's serve) and the test harness
// (internal/harness) both build instances here, so tests run the real
// wiring; a test injects sinks or tunes timings through New's options.
// The package is internal because it is not an API: cmd/oncehook cannot
// be imported, and the harness must not copy it.
package service
