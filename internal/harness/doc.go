// Package harness runs whole receiver instances for tests, with signed
// Stripe-like events and a sink that counts deliveries.
package harness
