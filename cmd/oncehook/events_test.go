package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEventsAndReplayCommands(t *testing.T) {
	pool, dbURL := testDB(t) // not parallel: t.Setenv
	ctx := context.Background()
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("DESTINATIONS", "billing,analytics,newdest")
	t.Setenv("DESTINATION_BILLING_URL", "stdout")
	t.Setenv("DESTINATION_BILLING_TYPES", "invoice.*")
	t.Setenv("DESTINATION_ANALYTICS_URL", "http://user:hunter2@127.0.0.1:9/in?token=sekrit")
	t.Setenv("DESTINATION_NEWDEST_URL", "stdout")
	t.Setenv("DESTINATION_NEWDEST_TYPES", "charge.*")
	for _, q := range []string{
		`INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, source) VALUES
			('evt_cmd_dead', 'invoice.paid', '{"id":"evt_cmd_dead"}', 'routed', 'reconcile'),
			('evt_cmd_ok', 'charge.succeeded', '{"id":"evt_cmd_ok"}', 'routed', NULL),
			('evt_cmd_unrouted', 'customer.created', '{"id":"evt_cmd_unrouted"}', 'routed', NULL)`,
		`INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, last_error, delivered_at) VALUES
			('evt_cmd_dead', 'billing', 'dead', 15, 'sink answered 500', NULL),
			('evt_cmd_dead', 'analytics', 'delivered', 1, NULL, now()),
			('evt_cmd_dead', 'old-crm', 'pending', 3, 'connection refused', NULL),
			('evt_cmd_ok', 'analytics', 'delivered', 1, NULL, now())`,
		`INSERT INTO stripe_webhook_delivery_attempts (event_id, destination, ok, error, instance) VALUES ('evt_cmd_dead', 'billing', false, 'sink answered 500', 'host:1')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := execute(ctx, args, &out)
		return out.String(), err
	}

	out, err := run("events", "list", "--status", "dead")
	if err != nil || !strings.Contains(out, "evt_cmd_dead") || !strings.Contains(out, "billing") || strings.Contains(out, "evt_cmd_ok") || !strings.Contains(out, "1 row\n") ||
		!strings.Contains(out, "SOURCE") || !strings.Contains(out, "reconcile") {
		t.Fatalf("events list --status dead: %v\n%s", err, out)
	}
	// Where each event came from: the reconciler, or a webhook.
	if out, err := run("events", "show", "evt_cmd_dead"); err != nil || !strings.Contains(out, "\nsource") || !strings.Contains(out, "reconcile") {
		t.Fatalf("events show of a reconciled event: %v\n%s", err, out)
	}
	if out, err := run("events", "show", "evt_cmd_ok", "--json"); err != nil || strings.Contains(out, `"source"`) {
		t.Fatalf("events show --json of a webhook has a source: %v\n%s", err, out)
	}
	if out, err := run("events", "show", "evt_cmd_dead", "--json"); err != nil || !strings.Contains(out, `"source": "reconcile"`) {
		t.Fatalf("events show --json of a reconciled event: %v\n%s", err, out)
	}
	out, err = run("events", "list", "--destination", "analytics")
	if err != nil || !strings.Contains(out, "evt_cmd_dead") || !strings.Contains(out, "evt_cmd_ok") || strings.Contains(out, "billing") || !strings.Contains(out, "2 rows") {
		t.Fatalf("events list --destination analytics: %v\n%s", err, out)
	}
	out, err = run("events", "list", "--status", "unrouted")
	if err != nil || !strings.Contains(out, "evt_cmd_unrouted") || !strings.Contains(out, "1 row\n") {
		t.Fatalf("events list --status unrouted: %v\n%s", err, out)
	}
	out, err = run("events", "list", "--type", "invoice.*")
	if err != nil || !strings.Contains(out, "3 rows") || strings.Contains(out, "evt_cmd_ok") {
		t.Fatalf("events list --type invoice.*: %v\n%s", err, out)
	}
	out, err = run("events", "list", "--type", "charge.succeeded", "--since", "1h", "--json")
	var listed []struct{ ID, Status, Destination string }
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 1 || listed[0].ID != "evt_cmd_ok" || listed[0].Status != "delivered" || listed[0].Destination != "analytics" {
		t.Fatalf("events list --type --json: %v\n%s", err, out)
	}
	out, err = run("events", "list")
	if err != nil || !strings.Contains(out, "5 rows") || !strings.Contains(out, "unrouted") {
		t.Fatalf("events list: %v\n%s", err, out)
	}
	out, err = run("events", "show", "evt_cmd_dead")
	if err != nil || !strings.Contains(out, "deliveries (3)") || !strings.Contains(out, "history (1 attempt)") ||
		!strings.Contains(out, "billing  host:1  failed: sink answered 500") || !strings.Contains(out, `{"id":"evt_cmd_dead"}`) {
		t.Fatalf("events show: %v\n%s", err, out)
	}
	out, err = run("events", "show", "evt_cmd_dead", "--json")
	var shown struct {
		ID         string
		Payload    json.RawMessage
		Deliveries []struct{ Destination, Status string }
		History    []struct {
			OK          bool
			Destination string
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || shown.ID != "evt_cmd_dead" || len(shown.Deliveries) != 3 ||
		shown.Deliveries[1].Destination != "billing" || shown.Deliveries[1].Status != "dead" ||
		len(shown.History) != 1 || shown.History[0].Destination != "billing" || !strings.Contains(string(shown.Payload), `"evt_cmd_dead"`) {
		t.Fatalf("events show --json: %v\n%s", err, out)
	}
	if _, err := run("events", "show", "evt_nope"); err == nil || !strings.Contains(err.Error(), "no such event") {
		t.Fatalf("show unknown: %v", err)
	}

	out, err = run("destinations")
	if err != nil || strings.Contains(out, "hunter2") || strings.Contains(out, "sekrit") {
		t.Fatalf("destinations: %v (a credential must never be printed)\n%s", err, out)
	}
	for _, want := range []string{"billing      configured  invoice.*", "old-crm      orphaned", "newdest      configured  charge.*"} {
		if !strings.Contains(out, want) {
			t.Errorf("destinations: no %q in\n%s", want, out)
		}
	}
	out, err = run("destinations", "--json")
	var dests []struct {
		Name, State              string
		Pending, Delivered, Dead int
		OldestPendingSeconds     float64 `json:"oldest_pending_seconds"`
	}
	if err != nil || json.Unmarshal([]byte(out), &dests) != nil || len(dests) != 4 {
		t.Fatalf("destinations --json: %v\n%s", err, out)
	}
	for _, d := range dests {
		switch d.Name {
		case "billing":
			if d.Dead != 1 || d.State != "configured" {
				t.Errorf("billing: %+v", d)
			}
		case "analytics":
			if d.Delivered != 2 || d.State != "configured" {
				t.Errorf("analytics: %+v", d)
			}
		case "old-crm":
			if d.Pending != 1 || d.State != "orphaned" || d.OldestPendingSeconds < 0 {
				t.Errorf("old-crm: %+v", d)
			}
		}
	}

	if _, err := run("replay", "evt_cmd_ok", "evt_nope"); err == nil || !strings.Contains(err.Error(), "evt_nope") {
		t.Fatalf("replay with an unknown id: %v", err)
	}
	out, err = run("replay", "--status", "dead", "--destination", "analytics")
	if err != nil || !strings.Contains(out, "0 dead deliveries") {
		t.Fatalf("replay --status dead --destination analytics: %v\n%s", err, out)
	}
	out, err = run("replay", "--status", "dead", "--since", "2000-01-01")
	if err != nil || !strings.Contains(out, "1 dead delivery put back to pending") {
		t.Fatalf("replay --status dead: %v\n%s", err, out)
	}
	out, err = run("replay", "--destination", "newdest", "--since", "1h")
	if err != nil || !strings.Contains(out, "1 event received since") {
		t.Fatalf("replay --destination newdest --since 1h (backfill): %v\n%s", err, out)
	}
	out, err = run("replay", "--destination", "newdest", "--since", "1h")
	if err != nil || !strings.Contains(out, "0 events received since") {
		t.Fatalf("a second backfill must add nothing: %v\n%s", err, out)
	}
	if _, err := run("replay", "--destination", "nosuch", "--since", "1h"); err == nil || !strings.Contains(err.Error(), `"nosuch" is not configured`) {
		t.Fatalf("replay to an unknown destination: %v", err)
	}
	if _, err := run("replay", "evt_cmd_unrouted", "--destination", "analytics"); err != nil {
		t.Fatalf("replay of one event to a destination it never had: %v", err)
	}
	var pending int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_deliveries
		WHERE status = 'pending' AND attempts = 0 AND next_attempt_at <= now()
			AND (event_id, destination) IN (('evt_cmd_dead', 'billing'), ('evt_cmd_ok', 'newdest'), ('evt_cmd_unrouted', 'analytics'))`).Scan(&pending); err != nil || pending != 3 {
		t.Fatalf("%d deliveries due pending after replays, want 3 (%v)", pending, err)
	}
	// Alone, a command that only holds others prints its help, as cobra's do.
	if out, err := run("events"); err != nil || !strings.Contains(out, "Available Commands:") {
		t.Errorf("events alone: %v, want its help\n%s", err, out)
	}
	for _, bad := range [][]string{{"events", "purge"}, {"events", "list", "--status", "lost"}, {"replay"},
		{"replay", "--since", "yesterday", "--status", "dead"}, {"replay", "--status", "pending"}, {"replay", "--status", "delivered"},
		{"replay", "--destination", "newdest"}, {"replay", "evt_cmd_ok", "--status", "dead"}, {"destinations", "extra"},
		{"events", "list", "--status", "unrouted", "--destination", "billing"}} {
		if _, err := run(bad...); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"24h":                  now.Add(-24 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"1d12h":                now.Add(-36 * time.Hour),
		"2026-11-01":           time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		"2026-11-01T10:00:00Z": time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseSince("-1h", now); err == nil {
		t.Error("negative duration: want error")
	}
}
