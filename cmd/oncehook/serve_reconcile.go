package main

import "github.com/oncehook/oncehook/internal/service"

// The Events API client and the reconciler's window bound, shared with
// the wiring (the reconcile command builds its own reconciler).
var (
	stripeClient    = service.StripeClient
	reconcileMaxAge = service.ReconcileMaxAge
)
