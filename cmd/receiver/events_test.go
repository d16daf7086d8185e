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
	for _, q := range []string{
		`INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, attempts, last_error)
		 VALUES ('evt_cmd_dead', 'invoice.paid', '{"id":"evt_cmd_dead"}', 'dead', 15, 'sink answered 500')`,
		`INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, attempts, delivered_at)
		 VALUES ('evt_cmd_ok', 'charge.succeeded', '{"id":"evt_cmd_ok"}', 'delivered', 1, now())`,
		`INSERT INTO stripe_webhook_delivery_attempts (event_id, ok, error, instance) VALUES ('evt_cmd_dead', false, 'sink answered 500', 'host:1')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		var err error
		switch args[0] {
		case "events":
			err = eventsCmd(ctx, args[1:], &out)
		case "replay":
			err = replayCmd(ctx, args[1:], &out)
		}
		return out.String(), err
	}

	out, err := run("events", "list", "--status", "dead")
	if err != nil || !strings.Contains(out, "evt_cmd_dead") || strings.Contains(out, "evt_cmd_ok") || !strings.Contains(out, "1 events") {
		t.Fatalf("events list --status dead: %v\n%s", err, out)
	}
	out, err = run("events", "list", "--type", "charge.succeeded", "--since", "1h", "--json")
	var listed []struct{ ID, Status string }
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 1 || listed[0].ID != "evt_cmd_ok" || listed[0].Status != "delivered" {
		t.Fatalf("events list --type --json: %v\n%s", err, out)
	}
	out, err = run("events", "show", "evt_cmd_dead")
	if err != nil || !strings.Contains(out, "history (1 attempts)") || !strings.Contains(out, "failed: sink answered 500") || !strings.Contains(out, `{"id":"evt_cmd_dead"}`) {
		t.Fatalf("events show: %v\n%s", err, out)
	}
	out, err = run("events", "show", "evt_cmd_dead", "--json")
	var shown struct {
		ID      string
		Payload json.RawMessage
		History []struct{ OK bool }
	}
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || shown.ID != "evt_cmd_dead" || len(shown.History) != 1 || !strings.Contains(string(shown.Payload), `"evt_cmd_dead"`) {
		t.Fatalf("events show --json: %v\n%s", err, out)
	}
	if _, err := run("events", "show", "evt_nope"); err == nil || !strings.Contains(err.Error(), "no such event") {
		t.Fatalf("show unknown: %v", err)
	}
	if _, err := run("replay", "evt_cmd_ok", "evt_nope"); err == nil || !strings.Contains(err.Error(), "unknown event ids: evt_nope") {
		t.Fatalf("replay with an unknown id: %v", err)
	}
	out, err = run("replay", "--status", "dead", "--since", "2000-01-01")
	if err != nil || !strings.Contains(out, "1 dead events put back to pending") {
		t.Fatalf("replay --status dead: %v\n%s", err, out)
	}
	var pending int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_events WHERE status = 'pending' AND attempts = 0 AND next_attempt_at <= now()`).Scan(&pending); err != nil || pending != 2 {
		t.Fatalf("%d rows due pending after replays, want 2 (%v)", pending, err)
	}
	for _, bad := range [][]string{{"events"}, {"events", "purge"}, {"events", "list", "--status", "lost"}, {"replay"}, {"replay", "--since", "yesterday", "--status", "dead"}, {"replay", "--status", "pending"}, {"replay", "--status", "delivered"}} {
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
