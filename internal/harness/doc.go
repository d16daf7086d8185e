// Package harness runs whole receiver instances for tests, built by
// internal/service's New (the wiring cmd/oncehook serves with), with signed
// Stripe-like events and a sink that counts deliveries.
package harness
