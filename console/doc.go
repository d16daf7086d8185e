// Package console serves the web console of oncehook under /console/ on
// the admin listener: an overview of intake and of each destination's
// backlog, the stored events with keyset paging, one event's payload and
// delivery history, and each destination's dead letters with replay.
//
// Pages are rendered on the server with html/template, so everything
// that comes from outside (payloads, sink answers) is escaped; the
// stylesheet and the small script are embedded files, and a strict
// Content-Security-Policy forbids any inline script. Sign-in is by the
// ADMIN_TOKEN, as a Bearer header or through a form that sets an
// HttpOnly, SameSite=Strict session cookie; every state-changing request
// is a POST that carries a CSRF token.
package console
