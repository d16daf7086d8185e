// Package stripefake is a small in-process fake of Stripe's Events API for
// tests. stripe-mock is stateless and knows no /v2 paths, so the semantics a
// poller relies on (paging, filters, auth, injected failures, thin-event
// fetches) are tested against this instead.
//
// It serves, over an httptest server closed in t.Cleanup:
//
//   - GET /v1/events: the list. Order is newest first by created, ties broken
//     by id descending (string comparison). Query parameters, form-encoded
//     as stripe-go sends them: limit (1–100, default 10), starting_after,
//     ending_before, created / created[gt|gte|lt|lte] (unix seconds), type
//     (a trailing '*' is a wildcard: "invoice.*", "*"), types (types[0]=a,
//     types[]=a or types=a; up to 20 exact names; not together with type),
//     delivery_success (true/false) and expand (accepted, but nothing on an
//     event expands). An empty value counts as not given. Anything else is a
//     400 invalid_request_error, as Stripe answers. A cursor (starting_after,
//     ending_before) must name a listed event, but need not match the
//     filters: the page starts next to its place in the order. ending_before
//     returns the limit events closest to (newer than) the cursor, still
//     newest first, and has_more says whether still newer ones match.
//   - GET /v1/events/{id}: one event, or 404 resource_missing.
//   - GET /v2/core/events/{id}: the body registered with AddThin (or a
//     synthesized thin event for one added with Object "v2.core.event"),
//     else 404 with a v2 error {"error":{"type":"not_found","code":"not_found",...}}.
//   - anything else: 404 "Unrecognized request URL".
//
// Every request is checked in this order: it is recorded (Requests), waits
// while a Hold gate is set, may fail with an injected FailNext error, is
// authenticated (Authorization: Bearer <key>, or Basic with the key as user;
// missing or wrong key 401, a SetForbidden key 403), and is then routed;
// FailThin applies to v2 fetches after authentication.
//
// A v1 event renders as a compact snapshot event:
//
//	{"id":"evt_1","object":"event","api_version":"2025-08-27.basil","created":1700000000,
//	 "data":{"object":{"id":"in_1","object":"invoice"}},"livemode":false,"pending_webhooks":0,
//	 "request":{"id":null,"idempotency_key":null},"type":"invoice.paid"}
//
// (on one line). api_version is the request's Stripe-Version header, or
// DefaultAPIVersion without one, so a test can see the header was honoured;
// pending_webhooks is 1 for an event whose DeliverySuccess is false. The
// bytes of an event are the same inside a list page and from
// GET /v1/events/{id}; Body returns them.
//
// The server holds everything in memory behind one mutex; it is meant for
// tests of a few thousand events, and keeps only the latest MaxRequests
// request records.
package stripefake
