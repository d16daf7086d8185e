// Package redact keeps credentials out of what is printed or stored: URLs
// (DATABASE_URL, REDIS_URL, SINK_URL, ...) and errors that embed them.
//
// A URL is shown with its user name, host, port and path; the password,
// every query value and the fragment become Mask. A user name without a
// password is itself the credential (https://sk_live_...@api.stripe.com),
// so it becomes Mask too, except in a postgres:// or postgresql:// URL:
// a Postgres user name is a role, never the credential, and is kept with
// or without a password, as Postgres's own errors name it ("password
// authentication failed for user ..."). Query keys stay, so the shown URL still says which
// options are set.
//
// Errors often embed a URL in another spelling than the configured one:
// url.Parse and net/http quote it with %q, net/http replaces the password
// with ***, go-redis reports an option's value alone. Error therefore
// replaces each spelling of the whole URL by its redacted form and then
// every remaining occurrence of each secret (password, lone user name,
// query values, fragment) in its raw, decoded, re-encoded and quoted forms.
// A secret shorter than four bytes is replaced only where it stands alone,
// not inside a longer word or number ("0" in "127.0.0.1").
//
// The path is kept: a secret in the path (some chat webhooks carry one) is
// not recognised.
package redact
