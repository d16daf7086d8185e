package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// events show says that the order key of a dead ordered delivery skipped
// it, as text and as JSON, and says nothing of the kind for the others.
func TestEventsShowSaysTheOrderKeySkippedADeadDelivery(t *testing.T) {
	pool, dbURL := testDB(t) // not parallel: t.Setenv
	ctx := context.Background()
	t.Setenv("DATABASE_URL", dbURL)
	for _, q := range []string{
		`INSERT INTO stripe_webhook_events (event_id, event_type, payload, status) VALUES
			('evt_skip_dead', 'invoice.paid', '{"id":"evt_skip_dead"}', 'routed')`,
		`INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, last_error, order_key, order_created) VALUES
			('evt_skip_dead', 'billing', 'dead', 15, 'sink answered 500', 'in_1Qx', now()),
			('evt_skip_dead', 'ledger', 'delivered', 1, NULL, 'in_1Qx', now()),
			('evt_skip_dead', 'crm', 'dead', 15, 'sink answered 500', NULL, NULL)`,
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
	out, err := run("events", "show", "evt_skip_dead")
	note := `order key "in_1Qx" skipped it: the key's later events go on without it`
	if err != nil || !strings.Contains(out, "  billing: "+note+"\n") || strings.Count(out, "skipped it") != 1 {
		t.Fatalf("events show: %v; want billing's key skipped it, and no other delivery:\n%s", err, out)
	}
	out, err = run("events", "show", "evt_skip_dead", "--json")
	var shown struct {
		Deliveries []struct {
			Destination string
			OrderKey    string `json:"order_key"`
			Skipped     bool   `json:"order_key_skipped"`
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || len(shown.Deliveries) != 3 {
		t.Fatalf("events show --json: %v\n%s", err, out)
	}
	want := map[string]struct {
		key     string
		skipped bool
	}{"billing": {"in_1Qx", true}, "ledger": {"in_1Qx", false}, "crm": {"", false}}
	for _, d := range shown.Deliveries {
		if w := want[d.Destination]; d.OrderKey != w.key || d.Skipped != w.skipped {
			t.Errorf("events show --json, %s: order key %q, skipped %v; want %q, %v", d.Destination, d.OrderKey, d.Skipped, w.key, w.skipped)
		}
	}
	if strings.Count(out, `"order_key"`) != 2 {
		t.Errorf("events show --json: an unordered delivery shows an order key:\n%s", out)
	}
}
