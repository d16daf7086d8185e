package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestSendTestEventReachesFilteredDestinations runs serve with a
// destination that takes live invoice.* events and one that takes test
// events, then sends with the real binary: --type invoice.paid --live
// reaches the first only; the default event (payment_intent.succeeded,
// test mode) the second only; --file sends a body as it is with its id,
// or with a new id when it has none, and says which.
func TestSendTestEventReachesFilteredDestinations(t *testing.T) {
	t.Parallel()
	_, dbURL := testDB(t)
	dir := t.TempDir()
	live, test := filepath.Join(dir, "live.jsonl"), filepath.Join(dir, "test.jsonl")
	addr := testenv.FreeAddr(t)
	startProcess(t, addr, dbURL, "STRIPE_WEBHOOK_SECRET="+harness.Secret,
		"DESTINATIONS=billing,sandbox",
		"DESTINATION_BILLING_URL=file://"+live, "DESTINATION_BILLING_TYPES=invoice.*", "DESTINATION_BILLING_LIVEMODE=live",
		"DESTINATION_SANDBOX_URL=file://"+test, "DESTINATION_SANDBOX_LIVEMODE=test")
	url := "http://" + addr + "/webhooks/stripe"
	env := receiverEnv("STRIPE_WEBHOOK_SECRET=" + harness.Secret)
	send := func(args ...string) cmdResult {
		t.Helper()
		res := runBinary(t, env, append([]string{"send-test-event", "--url", url}, args...)...)
		if res.err != nil || !strings.HasPrefix(res.stdout, "200 OK ") || !strings.Contains(res.stdout, `"accepted"`) {
			t.Fatalf("send-test-event %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.err, res.stdout, res.stderr)
		}
		return res
	}
	eventID := func(res cmdResult) string {
		var answer struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(res.stdout, "200 OK ")), &answer); err != nil || answer.EventID == "" {
			t.Fatalf("no event id in the answer %q: %v", res.stdout, err)
		}
		return answer.EventID
	}

	run := fmt.Sprint(time.Now().UnixNano()) // the binary's Redis keys are not per test
	invoice := "evt_live_invoice_" + run
	send("--type", "invoice.paid", "--live", "--id", invoice)
	plain := eventID(send())

	withID := filepath.Join(dir, "with-id.json")
	fileID := "evt_file_" + run
	body := fmt.Sprintf(`{"id": %q, "object": "event", "type": "invoice.finalized", "livemode": true, "created": %d, "data": {"object": {"id": "in_1"}}}`,
		fileID, time.Now().Unix())
	if err := os.WriteFile(withID, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := send("--file", withID); eventID(res) != fileID || !strings.Contains(res.stderr, fmt.Sprintf("sending %q, the id in %s", fileID, withID)) {
		t.Errorf("--file with an id: want %s kept and said\nstdout:\n%s\nstderr:\n%s", fileID, res.stdout, res.stderr)
	}
	noID := filepath.Join(dir, "no-id.json")
	if err := os.WriteFile(noID, []byte(`{"object": "event", "type": "invoice.voided", "livemode": true, "created": 1, "data": {"object": {}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res := send("--file", noID)
	fresh := eventID(res)
	if !regexp.MustCompile(`^evt_test_[0-9a-f]{24}$`).MatchString(fresh) || !strings.Contains(res.stderr, noID+" has no id: sending it as "+fresh) {
		t.Errorf("--file without an id: got %s\nstderr:\n%s", fresh, res.stderr)
	}

	// billing: the live invoice events only; sandbox: the test-mode event only.
	lines := func(path string) map[string]map[string]any {
		b, _ := os.ReadFile(path)
		out := map[string]map[string]any{}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var ev map[string]any
			if json.Unmarshal([]byte(l), &ev) == nil {
				out[fmt.Sprint(ev["id"])] = ev
			}
		}
		return out
	}
	wantLive := []string{invoice, fileID, fresh}
	eventually.Require(t, 20*time.Second, "the live invoice events at billing and the test event at sandbox", func() bool {
		l, s := lines(live), lines(test)
		for _, id := range wantLive {
			if l[id] == nil {
				return false
			}
		}
		return s[plain] != nil
	}, func() string {
		b, _ := os.ReadFile(live)
		c, _ := os.ReadFile(test)
		return "billing:\n" + string(b) + "\nsandbox:\n" + string(c)
	})
	l, s := lines(live), lines(test)
	if ev := l[invoice]; ev["type"] != "invoice.paid" || ev["livemode"] != true {
		t.Errorf("--type invoice.paid --live delivered as %v", ev)
	}
	if len(l) != len(wantLive) || len(s) != 1 {
		t.Errorf("billing got %d events (want %d), sandbox %d (want 1): a filter let through what it should not", len(l), len(wantLive), len(s))
	}
	if ev := s[plain]; ev["type"] != "payment_intent.succeeded" || ev["livemode"] != false {
		t.Errorf("the default event delivered as %v", ev)
	}
}
