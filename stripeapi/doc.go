// Package stripeapi reads events from Stripe's API with stripe-go: pages
// of GET /v1/events for the reconciler, and GET /v2/core/events/{id} for
// the full event behind a thin one. It sends the configured API version
// (Stripe-Version) so that listed events are rendered as webhooks are, and
// reports each failure as an APIError that says whether to retry.
package stripeapi
