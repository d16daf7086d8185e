package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestCommandsRouteByTheRecordedDestinations runs the real binary: `serve`
// with DESTINATIONS=billing,crm records them; from a shell with only
// DATABASE_URL (and the Stripe key for reconcile), `destinations` shows
// them, `reconcile` and `replay --since` (a backfill) route by them; a
// command whose own DESTINATIONS differ is refused, naming the
// difference, and --force routes by its own; a destination served by no
// instance shows in oncehook_deliveries_unserved; once the instance stops,
// the commands fall back to their environment and say so.
func TestCommandsRouteByTheRecordedDestinations(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	ctx := context.Background()
	fake := stripefake.New(t, reconcileKey)
	run := runID()
	invoice, customer := "evt_rec_inv_"+run, "evt_rec_cus_"+run
	fake.Add(stripefake.Event{ID: invoice, Type: "invoice.paid", Created: time.Now().Add(-10 * time.Minute)})
	fake.Add(stripefake.Event{ID: customer, Type: "customer.created", Created: time.Now().Add(-9 * time.Minute)})

	dir := t.TempDir()
	billingPath, crmPath := filepath.Join(dir, "billing.jsonl"), filepath.Join(dir, "crm.jsonl")
	adminAddr := testenv.FreeAddr(t)
	p := startProcess(t, testenv.FreeAddr(t), dbURL, "STRIPE_WEBHOOK_SECRET="+harness.Secret, "STRIPE_API_KEY=",
		"DESTINATIONS=billing,crm",
		"DESTINATION_BILLING_URL=file://"+billingPath, "DESTINATION_BILLING_TYPES=invoice.*",
		"DESTINATION_CRM_URL=file://"+crmPath,
		"ADMIN_ADDR="+adminAddr)

	plain := receiverEnv("DATABASE_URL=" + dbURL)
	ok := func(env []string, args ...string) cmdResult {
		t.Helper()
		res := runBinary(t, env, args...)
		if res.err != nil {
			t.Fatalf("oncehook %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.err, res.stdout, res.stderr)
		}
		return res
	}

	// destinations: what the instance serves, from the record alone.
	res := ok(plain, "destinations")
	if !hasRow(res.stdout, "billing", "configured", "invoice.*", "both", "-") || !hasRow(res.stdout, "crm", "configured", "*", "both", "-") ||
		!strings.Contains(res.stdout, "as served by 1 running instance\n") {
		t.Errorf("destinations:\n%s", res.stdout)
	}
	if res.stderr != "" || strings.Contains(res.stdout, "stdout") {
		t.Errorf("destinations from the record: stderr %q, stdout\n%s", res.stderr, res.stdout)
	}
	var listed []struct {
		Name, State string
		Types       []string
		Instances   []string
	}
	if err := json.Unmarshal([]byte(ok(plain, "destinations", "--json").stdout), &listed); err != nil || len(listed) != 2 ||
		listed[0].Name != "billing" || !slices.Equal(listed[0].Types, []string{"invoice.*"}) || len(listed[1].Instances) != 1 ||
		!strings.HasSuffix(listed[1].Instances[0], fmt.Sprintf(":%d", p.cmd.Process.Pid)) {
		t.Fatalf("destinations --json: %v, %+v", err, listed)
	}

	// reconcile stores the two events and routes them as the instance
	// would have: the invoice to billing and crm, the customer to crm.
	stripeEnv := append(slices.Clone(plain), "STRIPE_API_KEY="+reconcileKey, "STRIPE_API_BASE="+fake.URL())
	res = ok(stripeEnv, "reconcile", "--since", "1h")
	if !strings.Contains(res.stdout, "2 missing, 2 stored") || strings.Contains(res.stderr, "oncehook:") {
		t.Fatalf("reconcile: stdout\n%s\nstderr\n%s", res.stdout, res.stderr)
	}
	routed := func(id string) string {
		var dests string
		if err := pool.QueryRow(ctx, `SELECT COALESCE(string_agg(destination, ',' ORDER BY destination), '') FROM stripe_webhook_deliveries WHERE event_id = $1`, id).Scan(&dests); err != nil {
			t.Fatal(err)
		}
		return dests
	}
	if got := routed(invoice) + " " + routed(customer); got != "billing,crm crm" {
		t.Fatalf("reconciled events routed to %q, want billing,crm and crm", got)
	}
	waitForFileSink(t, billingPath, []string{invoice}, 15*time.Second, nil)
	waitForFileSink(t, crmPath, []string{invoice, customer}, 15*time.Second, nil)

	// replay --since backfills billing by its recorded filter: of two
	// events stored before it existed, only the invoice.
	oldInvoice, oldCustomer := "evt_rec_oldinv_"+run, "evt_rec_oldcus_"+run
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status, received_at)
		VALUES ($1, 'invoice.paid', convert_to(format('{"id":"%s"}', $1::text), 'UTF8'), 'routed', now() - interval '5 minutes'),
		       ($2, 'customer.created', convert_to(format('{"id":"%s"}', $2::text), 'UTF8'), 'routed', now() - interval '5 minutes')`, oldInvoice, oldCustomer); err != nil {
		t.Fatal(err)
	}
	res = ok(plain, "replay", "--destination", "billing", "--since", "1h")
	if !strings.Contains(res.stdout, "1 event received since") || res.stderr != "" {
		t.Fatalf("backfill of billing: stdout\n%s\nstderr\n%s", res.stdout, res.stderr)
	}
	waitForFileSink(t, billingPath, []string{invoice, oldInvoice}, 15*time.Second, nil)

	// A delivery is never made to a destination no instance serves: not
	// by a replay of ids to a mistyped name, nor by --force from a shell
	// that names no destinations of its own (its set would be default).
	if res := runBinary(t, plain, "replay", oldCustomer, "--destination", "biling"); res.err == nil ||
		!strings.Contains(res.stderr, `--destination "biling" is not configured (destinations of the running instances: billing, crm)`) {
		t.Errorf("replay to a mistyped destination: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	if res := runBinary(t, plain, "replay", "--destination", "billing", "--since", "1h", "--force"); res.err == nil ||
		!strings.Contains(res.stderr, "--force routes by this environment's destinations, but it names none") {
		t.Errorf("--force with no DESTINATIONS: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}

	// A shell whose DESTINATIONS differ is refused, with the difference.
	other := append(slices.Clone(plain), "DESTINATIONS=billing,analytics", "DESTINATION_BILLING_URL=stdout", "DESTINATION_ANALYTICS_URL=stdout")
	for _, args := range [][]string{{"replay", "--destination", "analytics", "--since", "1h"}, {"reconcile", "--since", "1h"}} {
		env := other
		if args[0] == "reconcile" {
			env = append(slices.Clone(other), "STRIPE_API_KEY="+reconcileKey, "STRIPE_API_BASE="+fake.URL())
		}
		res = runBinary(t, env, args...)
		if res.err == nil || !strings.Contains(res.stderr, "analytics is not served by them") || !strings.Contains(res.stderr, "crm is missing here") ||
			!strings.Contains(res.stderr, "--force") {
			t.Errorf("%v with other DESTINATIONS: %v\nstdout:\n%s\nstderr:\n%s", args, res.err, res.stdout, res.stderr)
		}
	}
	if res := ok(other, "destinations"); !strings.Contains(res.stderr, "analytics is not served by them") || !hasRow(res.stdout, "crm", "configured") {
		t.Errorf("destinations with other DESTINATIONS reports the instances' set and the difference: stdout\n%s\nstderr\n%s", res.stdout, res.stderr)
	}
	// --force routes by this shell's set: analytics gets every event, and
	// its deliveries wait, unserved.
	res = ok(other, "replay", "--destination", "analytics", "--since", "1h", "--force")
	if !strings.Contains(res.stdout, "4 events received since") || !strings.Contains(res.stderr, "--force: routing by this environment's destinations (billing,analytics)") {
		t.Fatalf("forced backfill: stdout\n%s\nstderr\n%s", res.stdout, res.stderr)
	}
	var body string
	eventually.Require(t, 10*time.Second, "oncehook_deliveries_unserved to read 4", func() bool {
		body = scrapeText(t, "http://"+adminAddr+"/metrics")
		return strings.Contains(body, "\noncehook_deliveries_unserved 4\n")
	}, func() string { return grepLines(body, "unserved") })
	if res := ok(plain, "destinations"); !hasRow(res.stdout, "analytics", "orphaned") {
		t.Errorf("destinations: analytics is not orphaned:\n%s", res.stdout)
	}

	// The instance stops: its set leaves the record, and the commands say
	// they use their own environment.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30s after SIGTERM")
	}
	res = ok(plain, "destinations")
	if !strings.Contains(res.stderr, "no running instance has recorded its destinations; using this environment's destinations: default") ||
		!hasRow(res.stdout, "billing", "orphaned") || !hasRow(res.stdout, "default", "configured") {
		t.Errorf("destinations with no instance: stdout\n%s\nstderr\n%s", res.stdout, res.stderr)
	}
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// hasRow reports whether a line of a table starts with fields.
func hasRow(table string, fields ...string) bool {
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) >= len(fields) && slices.Equal(f[:len(fields)], fields) {
			return true
		}
	}
	return false
}
