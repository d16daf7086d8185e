package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestSinceInDaysAndPlurals runs the real binary on a ledger with events
// received 3 and 10 days ago: --since takes days (and -since, the flag's
// old spelling), counts are singular for one, and `events show` prints a
// next attempt for the pending delivery only.
func TestSinceInDaysAndPlurals(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	for _, q := range []string{
		`INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at) VALUES
			('evt_days_3', 'invoice.paid', '{"id":"evt_days_3"}', 'routed', now() - interval '3 days'),
			('evt_days_10', 'invoice.paid', '{"id":"evt_days_10"}', 'routed', now() - interval '10 days')`,
		`INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, last_error, next_attempt_at, received_at) VALUES
			('evt_days_3', 'billing', 'dead', 15, 'sink answered 500', now() + interval '1 hour', now() - interval '3 days'),
			('evt_days_3', 'crm', 'pending', 2, 'timeout', '2030-01-02T03:04:05Z', now() - interval '3 days'),
			('evt_days_10', 'billing', 'delivered', 1, NULL, now() + interval '1 hour', now() - interval '10 days')`,
		`INSERT INTO stripe_webhook_delivery_attempts (event_id, destination, ok, error, instance) VALUES ('evt_days_3', 'billing', false, 'sink answered 500', 'host:1')`,
	} {
		if _, err := pool.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	env := receiverEnv("DATABASE_URL=" + dbURL)
	run := func(args ...string) string {
		t.Helper()
		res := runBinary(t, env, args...)
		if res.err != nil {
			t.Fatalf("oncehook %s: %v\nstderr:\n%s", strings.Join(args, " "), res.err, res.stderr)
		}
		return res.stdout
	}

	for _, since := range []string{"7d", "6d23h"} {
		out := run("events", "list", "--since", since)
		if !strings.Contains(out, "evt_days_3") || strings.Contains(out, "evt_days_10") || !strings.HasSuffix(out, "\n2 rows\n") {
			t.Errorf("events list --since %s: want evt_days_3's 2 rows only:\n%s", since, out)
		}
	}
	if out := run("events", "list", "-since", "2d", "--status", "dead"); !strings.HasSuffix(out, "\n0 rows\n") {
		t.Errorf("events list -since 2d: want no rows:\n%s", out)
	}
	if out := run("events", "list", "--since", "7d", "--status", "dead"); !strings.HasSuffix(out, "\n1 row\n") {
		t.Errorf("events list --status dead: want \"1 row\":\n%s", out)
	}
	if out := run("events", "list", "--since", "30d"); !strings.HasSuffix(out, "\n3 rows\n") {
		t.Errorf("events list --since 30d: want 3 rows:\n%s", out)
	}

	out := run("events", "show", "evt_days_3")
	if !strings.Contains(out, "\nhistory (1 attempt):\n") {
		t.Errorf("events show: want \"history (1 attempt)\":\n%s", out)
	}
	// DESTINATION STATUS ATTEMPTS NEXT ATTEMPT DELIVERED LAST ERROR
	if !regexp.MustCompile(`(?m)^  billing +dead +15 +- +- +sink answered 500$`).MatchString(out) {
		t.Errorf("events show: the dead delivery has a next attempt:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^  crm +pending +2 +2030-01-02T03:04:05Z +- +timeout$`).MatchString(out) {
		t.Errorf("events show: the pending delivery has no next attempt:\n%s", out)
	}
	if out := run("events", "show", "evt_days_10"); !strings.Contains(out, "\nhistory (0 attempts):\n") ||
		!regexp.MustCompile(`(?m)^  billing +delivered +1 +- `).MatchString(out) {
		t.Errorf("events show of a delivered event:\n%s", out)
	}

	if out := run("replay", "--status", "dead", "--since", "7d"); !strings.Contains(out, "1 dead delivery put back to pending") {
		t.Errorf("replay --status dead --since 7d: %s", out)
	}
	if res := runBinary(t, env, "events", "list", "--since", "7days"); res.err == nil || !strings.Contains(res.stderr, `--since "7days": want a duration like 24h or 7d`) {
		t.Errorf("--since 7days: %v\nstderr:\n%s", res.err, res.stderr)
	}
}
