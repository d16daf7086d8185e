package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/stripefake"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/stripeapi"
)

// reconcileKey is the key the fake Stripe accepts.
const reconcileKey = "sk_test_RECONCILEKEY0123456789"

// receiverVars start the names of the variables the receiver reads: a
// subprocess gets none of them from this process's environment.
var receiverVars = []string{"STRIPE_", "RECONCILE_", "THIN_EVENTS", "DESTINATION", "SINK_", "DATABASE_URL", "REDIS_", "LISTEN_ADDR", "ADMIN_"}

// receiverEnv is this process's environment without the receiver's
// variables, plus extra.
func receiverEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(receiverVars, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// cmdResult is one run of the binary.
type cmdResult struct {
	stdout, stderr string
	err            error // non-nil: a non-zero exit
}

// runBinary runs `oncehook args...` with exactly env and waits for it.
func runBinary(t *testing.T, env []string, args ...string) cmdResult {
	t.Helper()
	bin, err := buildOncehook()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("oncehook %s: no exit within 20s; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmdResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// listRequests are the fake's GET /v1/events requests from the n-th on.
func listRequests(fake *stripefake.Server, from int) []stripefake.Request {
	var out []stripefake.Request
	for _, r := range fake.Requests()[from:] {
		if r.Path == "/v1/events" {
			out = append(out, r)
		}
	}
	return out
}

// runID makes event ids unique across runs of the tests.
func runID() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

// TestReconcileCommandDryRunThenStore runs `oncehook reconcile` as a user
// would, next to a running receiver. Stripe lists 250 events it failed to
// deliver, 40 of which came as webhooks: a dry run reports the 210 others
// page by page and stores nothing; a real run stores them, marked source
// reconcile, and the running receiver delivers them; a second run finds
// nothing missing.
func TestReconcileCommandDryRunThenStore(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	ctx := context.Background()
	fake := stripefake.New(t, reconcileKey)
	run := runID()
	now := time.Now()
	ids := make([]string, 250)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_rc_%s_%03d", run, i)
		fake.Add(stripefake.Event{ID: ids[i], Type: "invoice.paid", Created: now.Add(-time.Duration(i) * time.Minute)})
	}
	for i := range 20 { // delivered: listed only with --all
		fake.Add(stripefake.Event{ID: fmt.Sprintf("evt_rc_%s_ok_%02d", run, i), Type: "invoice.paid", DeliverySuccess: true,
			Created: now.Add(-time.Duration(i) * time.Minute)})
	}

	sinkPath := filepath.Join(t.TempDir(), "events.jsonl")
	addr := testenv.FreeAddr(t)
	startProcess(t, addr, dbURL, "STRIPE_WEBHOOK_SECRET="+harness.Secret, "SINK_URL=file://"+sinkPath, "STRIPE_API_KEY=")
	webhooks := map[string]bool{}
	for i := 3; i < 240; i += 6 {
		webhooks[ids[i]] = true
		if resp := harness.Post(t, "http://"+addr+"/webhooks/stripe", harness.EventBody(ids[i], "invoice.paid")); resp.Code != 200 {
			t.Fatalf("%s: %d %s", ids[i], resp.Code, resp.Body)
		}
	}
	if len(webhooks) != 40 {
		t.Fatalf("%d webhooks", len(webhooks))
	}
	env := receiverEnv("DATABASE_URL="+dbURL, "REDIS_URL="+testenv.RedisURL(t), "SINK_URL=file://"+sinkPath,
		"STRIPE_API_KEY="+reconcileKey, "STRIPE_API_BASE="+fake.URL())
	counts := func() (events, reconciled, checkpoints int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM stripe_webhook_events),
			(SELECT count(*) FROM stripe_webhook_events WHERE source = 'reconcile'),
			(SELECT count(*) FROM stripe_webhook_reconcile_checkpoints)`).Scan(&events, &reconciled, &checkpoints); err != nil {
			t.Fatal(err)
		}
		return
	}

	// Dry run: three pages, the 210 missing reported, nothing stored.
	mark := len(fake.Requests())
	res := runBinary(t, env, "reconcile", "--dry-run")
	if res.err != nil {
		t.Fatalf("dry run: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	for _, want := range []string{
		"reconcile: listing the events Stripe failed to deliver created since ",
		"(dry run: nothing is stored)",
		"\n  pages 1, events seen 100, missing ",
		"\n  pages 2, events seen 200, missing ",
		"\n  pages 3, events seen 250, missing 210, stored 0\n",
		"\ndone: 250 events seen, 210 missing from the ledger (dry run: none stored)\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("dry run: no %q in stdout:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout, "pages 4") {
		t.Errorf("dry run: a fourth page:\n%s", res.stdout)
	}
	reqs := listRequests(fake, mark)
	if len(reqs) != 3 {
		t.Fatalf("dry run: %d list requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		q := r.Query
		if q.Get("delivery_success") != "false" || q.Get("limit") != "100" || (i > 0) != (q.Get("starting_after") != "") ||
			r.Header.Get("Stripe-Version") != stripeapi.DefaultVersion || r.Status != 200 {
			t.Errorf("dry run request %d: %s %v %d", i, r.RawQuery, r.Header, r.Status)
		}
	}
	if e, rec, cp := counts(); e != 40 || rec != 0 || cp != 0 {
		t.Fatalf("after the dry run: %d events, %d from reconcile, %d checkpoints; want 40, 0, 0", e, rec, cp)
	}

	// The real run stores the 210.
	res = runBinary(t, env, "reconcile")
	if res.err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	for _, want := range []string{
		"(missing events are stored and delivered by the running receivers)",
		"\n  pages 3, events seen 250, missing 210, stored 210\n",
		"\ndone: 250 events seen, 210 missing, 210 stored (the others arrived meanwhile); checkpoint at ",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("run: no %q in stdout:\n%s", want, res.stdout)
		}
	}
	if e, rec, cp := counts(); e != 250 || rec != 210 || cp != 1 {
		t.Fatalf("after the run: %d events, %d from reconcile, %d checkpoints; want 250, 210, 1", e, rec, cp)
	}
	rows, err := pool.Query(ctx, `SELECT e.event_id, COALESCE(e.source, ''), e.payload, count(d.event_id)
		FROM stripe_webhook_events e LEFT JOIN stripe_webhook_deliveries d ON d.event_id = e.event_id AND d.destination = 'default'
		GROUP BY e.event_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, source string
		var payload []byte
		var deliveries int
		if err := rows.Scan(&id, &source, &payload, &deliveries); err != nil {
			t.Fatal(err)
		}
		switch {
		case deliveries != 1:
			t.Errorf("%s: %d deliveries to default, want 1", id, deliveries)
		case webhooks[id] && source != "":
			t.Errorf("%s came as a webhook but has source %q", id, source)
		case !webhooks[id] && source != "reconcile":
			t.Errorf("%s was reconciled but has source %q", id, source)
		case !webhooks[id] && !bytes.Equal(payload, fake.BodyVersion(id, stripeapi.DefaultVersion)):
			t.Errorf("%s: stored payload is not the event as the Events API rendered it:\n%s", id, payload)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// The running receiver's sweepers deliver what the command stored.
	waitForFileSink(t, sinkPath, ids, 15*time.Second, nil)

	// A second run finds everything in the ledger.
	res = runBinary(t, env, "reconcile")
	if res.err != nil || !strings.Contains(res.stdout, "\ndone: 250 events seen, 0 missing, 0 stored") {
		t.Fatalf("second run: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	if e, rec, _ := counts(); e != 250 || rec != 210 {
		t.Fatalf("after the second run: %d events, %d from reconcile", e, rec)
	}
	var listing string
	var through time.Time
	if err := pool.QueryRow(ctx, `SELECT listing, listed_through FROM stripe_webhook_reconcile_checkpoints`).Scan(&listing, &through); err != nil {
		t.Fatal(err)
	}
	if listing != "delivery_success=false" || time.Since(through) > time.Minute || time.Since(through) < 0 {
		t.Errorf("checkpoint %q at %s", listing, through)
	}
}

// waitForFileSink waits until the JSON-lines file at path holds each of
// ids exactly once, and nothing else; it fails the test at the deadline or
// at once on a duplicate, with diag's text if diag is set.
func waitForFileSink(t *testing.T, path string, ids []string, timeout time.Duration, diag func() string) {
	t.Helper()
	more := func() string {
		if diag == nil {
			return ""
		}
		return diag()
	}
	missing := 0
	eventually.Require(t, timeout, "every event in the file sink", func() bool {
		got := fileSinkCounts(t, path)
		missing = 0
		for _, id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		for id, n := range got {
			if n > 1 {
				t.Fatalf("%s is in the file sink %d times%s", id, n, more())
			}
			if !slices.Contains(ids, id) {
				t.Fatalf("%s is in the file sink but is not expected%s", id, more())
			}
		}
		return missing == 0
	}, func() string { return fmt.Sprintf("%d of %d events are not%s", missing, len(ids), more()) })
}

// fileSinkCounts counts a JSON-lines file's lines by event id.
func fileSinkCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return counts
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue // a line being written
		}
		counts[l.ID]++
	}
	return counts
}

// TestReconcileCommandSendsFilters: --types, --all, --since and
// STRIPE_API_VERSION reach the Events API as Stripe takes them, and the
// counts printed are those of the events that match.
func TestReconcileCommandSendsFilters(t *testing.T) {
	t.Parallel()
	_, dbURL := testDB(t)
	fake := stripefake.New(t, reconcileKey)
	run := runID()
	now := time.Now()
	add := func(name, typ string, n int, delivered bool, age time.Duration) {
		for i := range n {
			fake.Add(stripefake.Event{ID: fmt.Sprintf("evt_f_%s_%s_%d", run, name, i), Type: typ, DeliverySuccess: delivered,
				Created: now.Add(-age - time.Duration(i)*time.Second)})
		}
	}
	add("inv", "invoice.paid", 3, false, time.Hour)
	add("cus", "customer.created", 2, false, time.Hour)
	add("chg", "charge.succeeded", 4, false, time.Hour)
	add("invok", "invoice.paid", 5, true, time.Hour)
	add("old", "invoice.paid", 1, false, 100*time.Hour) // before the default 72h
	env := receiverEnv("DATABASE_URL="+dbURL, "STRIPE_API_KEY="+reconcileKey, "STRIPE_API_BASE="+fake.URL())

	for _, tc := range []struct {
		args    []string
		env     []string
		seen    int
		types   []string // types[0], types[1], ... as sent
		all     bool     // no delivery_success sent
		since   time.Duration
		version string
		listing string
	}{
		{args: nil, seen: 9, since: 72 * time.Hour, listing: "the events Stripe failed to deliver created since"},
		{args: []string{"--types", "invoice.paid,customer.created"}, seen: 5, types: []string{"invoice.paid", "customer.created"}, since: 72 * time.Hour,
			listing: "the events Stripe failed to deliver of types invoice.paid,customer.created created since"},
		{args: []string{"--all"}, seen: 14, all: true, since: 72 * time.Hour, listing: "every event created since"},
		{args: []string{"--all", "--types", "invoice.paid"}, seen: 8, all: true, types: []string{"invoice.paid"}, since: 72 * time.Hour,
			listing: "every event of types invoice.paid created since"},
		{args: []string{"--since", "120h"}, seen: 10, since: 120 * time.Hour},
		{args: []string{"--since", now.Add(-2 * time.Hour).UTC().Format(time.RFC3339)}, seen: 9, since: 2 * time.Hour},
		{args: nil, env: []string{"STRIPE_API_VERSION=2024-06-20.acacia"}, seen: 9, since: 72 * time.Hour, version: "2024-06-20.acacia"},
		// The flag replaces RECONCILE_TYPES, a bad one included.
		{args: []string{"--types", "charge.succeeded"}, env: []string{"RECONCILE_TYPES=invoice.*"}, seen: 4, types: []string{"charge.succeeded"}, since: 72 * time.Hour},
	} {
		name := strings.Join(append(slices.Clone(tc.env), tc.args...), " ")
		mark := len(fake.Requests())
		res := runBinary(t, append(slices.Clone(env), tc.env...), append([]string{"reconcile", "--dry-run"}, tc.args...)...)
		if res.err != nil {
			t.Errorf("%s: %v\nstdout:\n%s\nstderr:\n%s", name, res.err, res.stdout, res.stderr)
			continue
		}
		if want := fmt.Sprintf("\ndone: %d events seen, %d missing", tc.seen, tc.seen); !strings.Contains(res.stdout, want) {
			t.Errorf("%s: no %q in stdout:\n%s", name, want, res.stdout)
		}
		if !strings.Contains(res.stdout, "reconcile: listing "+tc.listing) {
			t.Errorf("%s: no %q in stdout:\n%s", name, tc.listing, res.stdout)
		}
		reqs := listRequests(fake, mark)
		if len(reqs) != 1 {
			t.Errorf("%s: %d list requests, want 1", name, len(reqs))
			continue
		}
		q := reqs[0].Query
		if _, sent := q["delivery_success"]; sent == tc.all || (!tc.all && q.Get("delivery_success") != "false") {
			t.Errorf("%s: delivery_success %q sent with all=%t: %s", name, q.Get("delivery_success"), tc.all, reqs[0].RawQuery)
		}
		var types []string
		for i := 0; q.Has(fmt.Sprintf("types[%d]", i)); i++ {
			types = append(types, q.Get(fmt.Sprintf("types[%d]", i)))
		}
		if !slices.Equal(types, tc.types) || q.Has("type") {
			t.Errorf("%s: types sent %q, want %q: %s", name, types, tc.types, reqs[0].RawQuery)
		}
		gte, err := strconv.ParseInt(q.Get("created[gte]"), 10, 64)
		if want := time.Now().Add(-tc.since).Unix(); err != nil || gte < want-30 || gte > want+1 {
			t.Errorf("%s: created[gte]=%s, want about %d: %s", name, q.Get("created[gte]"), want, reqs[0].RawQuery)
		}
		version := tc.version
		if version == "" {
			version = stripeapi.DefaultVersion
		}
		if got := reqs[0].Header.Get("Stripe-Version"); got != version {
			t.Errorf("%s: Stripe-Version %q, want %q", name, got, version)
		}
		if auth := reqs[0].Header.Get("Authorization"); auth != "Bearer ****"+reconcileKey[len(reconcileKey)-4:] {
			t.Errorf("%s: Authorization %q", name, auth)
		}
	}
}

// TestReconcileCommandErrors: each failure exits non-zero with a message
// saying what to fix, and never shows the API key.
func TestReconcileCommandErrors(t *testing.T) {
	t.Parallel()
	_, dbURL := testDB(t)
	fake := stripefake.New(t, reconcileKey)
	fake.Add(stripefake.Event{ID: "evt_err_" + runID(), Type: "invoice.paid"})
	const wrongKey, forbiddenKey = "sk_test_WRONGKEY0123456789", "rk_test_NOEVENTS0123456789"
	fake.SetForbidden(forbiddenKey)
	base := receiverEnv("DATABASE_URL="+dbURL, "STRIPE_API_BASE="+fake.URL())

	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		want     []string // in stderr
		requests int      // list requests made
	}{
		{"no key", nil, nil, []string{"oncehook: STRIPE_API_KEY is not set", "read access to Events"}, 0},
		{"rejected key", []string{"STRIPE_API_KEY=" + wrongKey}, nil, []string{"401", "STRIPE_API_KEY"}, 1},
		{"forbidden key", []string{"STRIPE_API_KEY=" + forbiddenKey}, nil, []string{"403", "read access", "STRIPE_API_KEY"}, 1},
		{"publishable key", []string{"STRIPE_API_KEY=pk_test_PUBLISHABLE0123456789"}, nil, []string{"STRIPE_API_KEY: is not a Stripe secret or restricted key"}, 0},
		{"publishable key with --types", []string{"STRIPE_API_KEY=pk_test_PUBLISHABLE0123456789"}, []string{"--types", "invoice.paid"},
			[]string{"STRIPE_API_KEY: is not a Stripe secret or restricted key"}, 0},
		{"bad base", []string{"STRIPE_API_KEY=" + reconcileKey, "STRIPE_API_BASE=ftp://x"}, nil, []string{"STRIPE_API_BASE"}, 0},
		{"since 800h", []string{"STRIPE_API_KEY=" + reconcileKey}, []string{"--since", "800h"}, []string{"--since 800h", "30 days"}, 0},
		{"since garbage", []string{"STRIPE_API_KEY=" + reconcileKey}, []string{"--since", "yesterday"}, []string{`--since "yesterday"`}, 0},
		{"wildcard type", []string{"STRIPE_API_KEY=" + reconcileKey}, []string{"--types", "invoice.*"}, []string{"--types", `"invoice.*"`, "no wildcards"}, 0},
		{"21 types", []string{"STRIPE_API_KEY=" + reconcileKey}, []string{"--types", strings.Repeat("invoice.paid,", 20) + "invoice.paid"}, []string{"--types", "21 types"}, 0},
		{"stray argument", []string{"STRIPE_API_KEY=" + reconcileKey}, []string{"now"}, []string{`unexpected argument "now"`, `"oncehook reconcile --help"`}, 0},
		{"unknown flag", []string{"STRIPE_API_KEY=" + reconcileKey}, []string{"--everything"}, []string{"unknown flag: --everything", `"oncehook reconcile --help"`}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := len(fake.Requests())
			res := runBinary(t, append(slices.Clone(base), tc.env...), append([]string{"reconcile"}, tc.args...)...)
			var exit *exec.ExitError
			if !errors.As(res.err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("no %q in stderr:\n%s", want, res.stderr)
				}
			}
			lines := strings.Split(strings.TrimPrefix(strings.TrimSpace(res.stderr), "oncehook: "), "\n")
			if len(slices.Compact(slices.Sorted(slices.Values(lines)))) != len(lines) {
				t.Errorf("an error is reported twice:\n%s", res.stderr)
			}
			for _, key := range []string{wrongKey, forbiddenKey, reconcileKey, "PUBLISHABLE0123456789", "<nil>"} {
				if strings.Contains(res.stdout+res.stderr, key) {
					t.Errorf("%q in the output:\nstdout:\n%s\nstderr:\n%s", key, res.stdout, res.stderr)
				}
			}
			if n := len(listRequests(fake, mark)); n != tc.requests {
				t.Errorf("%d list requests, want %d (a 401 or 403 is not retried)", n, tc.requests)
			}
		})
	}
}

// TestReconcileCommandRetriesAndInterrupt: a 503 is retried and the run
// still completes; SIGINT while a request hangs ends the command at once,
// non-zero, with nothing stored and no checkpoint.
func TestReconcileCommandRetriesAndInterrupt(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	fake := stripefake.New(t, reconcileKey)
	run := runID()
	for i := range 3 {
		fake.Add(stripefake.Event{ID: fmt.Sprintf("evt_int_%s_%d", run, i), Type: "invoice.paid"})
	}
	env := receiverEnv("DATABASE_URL="+dbURL, "STRIPE_API_KEY="+reconcileKey, "STRIPE_API_BASE="+fake.URL())

	fake.FailNext(1, http.StatusServiceUnavailable, "")
	mark := len(fake.Requests())
	res := runBinary(t, env, "reconcile", "--dry-run")
	if res.err != nil || !strings.Contains(res.stdout, "done: 3 events seen, 3 missing") {
		t.Fatalf("after a 503: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	if reqs := listRequests(fake, mark); len(reqs) != 2 || reqs[0].Status != 503 || reqs[1].Status != 200 {
		t.Errorf("%d requests, want a 503 then a 200", len(reqs))
	}

	bin, err := buildOncehook()
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	defer close(block)
	fake.Hold(block)
	mark = len(fake.Requests())
	cmd := exec.Command(bin, "reconcile")
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	eventually.Require(t, 10*time.Second, "the command to list", func() bool { return len(listRequests(fake, mark)) > 0 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "canceled") {
			t.Errorf("after SIGINT: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit 5s after SIGINT")
	}
	var events, checkpoints int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM stripe_webhook_events),
		(SELECT count(*) FROM stripe_webhook_reconcile_checkpoints)`).Scan(&events, &checkpoints); err != nil {
		t.Fatal(err)
	}
	if events != 0 || checkpoints != 0 {
		t.Errorf("after an interrupted run: %d events, %d checkpoints; want none", events, checkpoints)
	}
}

// TestReconcileCmdInProcess runs the command function itself (under the
// race detector), with Redis: it stores the missing events and prints
// its summary. Not parallel: it sets the environment.
func TestReconcileCmdInProcess(t *testing.T) {
	pool, dbURL := testDB(t)
	ctx := context.Background()
	fake := stripefake.New(t, reconcileKey)
	run := runID()
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprintf("evt_ip_%s_%d", run, i))
		fake.Add(stripefake.Event{ID: ids[i], Type: "customer.created"})
	}
	if _, err := pool.Exec(ctx, `INSERT INTO stripe_webhook_events (event_id, event_type, payload, status) VALUES ($1, 'customer.created', '{}', 'routed'), ($2, 'customer.created', '{}', 'routed')`,
		ids[0], ids[1]); err != nil {
		t.Fatal(err)
	}
	// The variables this test does not set must not come from the
	// environment: empty is the same as unset.
	for _, name := range []string{"STRIPE_API_VERSION", "RECONCILE_TYPES", "RECONCILE_INTERVAL", "RECONCILE_LOOKBACK", "RECONCILE_OVERLAP", "RECONCILE_ALL", "THIN_EVENTS", "DESTINATIONS"} {
		t.Setenv(name, "")
	}
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("REDIS_URL", testenv.RedisURL(t))
	t.Setenv("SINK_URL", "stdout")
	t.Setenv("STRIPE_API_KEY", reconcileKey)
	t.Setenv("STRIPE_API_BASE", fake.URL())

	var out bytes.Buffer
	if err := execute(ctx, []string{"reconcile", "--since", "1h", "--types", "customer.created"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "\n  pages 1, events seen 5, missing 3, stored 3\n") || !strings.Contains(out.String(), "\ndone: 5 events seen, 3 missing, 3 stored") {
		t.Fatalf("output:\n%s", out.String())
	}
	var reconciled []string
	rows, err := pool.Query(ctx, `SELECT event_id FROM stripe_webhook_events WHERE source = 'reconcile' ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		reconciled = append(reconciled, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(reconciled, ids[2:]) {
		t.Fatalf("reconciled %v, want %v", reconciled, ids[2:])
	}
	out.Reset()
	if err := execute(ctx, []string{"reconcile", "--since", "1h", "--types", "customer.created"}, &out); err != nil || !strings.Contains(out.String(), "\ndone: 5 events seen, 0 missing, 0 stored") {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
	// A window shorter than the lookback sets no first checkpoint: the
	// background's first run must still look back RECONCILE_LOOKBACK.
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_reconcile_checkpoints`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d checkpoints after --since 1h on a fresh ledger (%v), want none", n, err)
	}
	out.Reset()
	if err := execute(ctx, []string{"reconcile", "--since", "72h", "--types", "customer.created"}, &out); err != nil {
		t.Fatalf("--since 72h: %v\n%s", err, out.String())
	}
	var listing string
	if err := pool.QueryRow(ctx, `SELECT listing FROM stripe_webhook_reconcile_checkpoints`).Scan(&listing); err != nil || listing != "delivery_success=false types=customer.created" {
		t.Fatalf("checkpoint %q, %v", listing, err)
	}
}

// TestServeReconcilesInTheBackground runs `oncehook serve` with the
// reconciler every second against a fake Stripe holding 30 events it
// failed to deliver, and two destinations, a file and an HTTP endpoint.
// Each event reaches each destination exactly once, marked source
// reconcile in the ledger and by Oncehook-Source on HTTP; events Stripe
// adds later are found by a later run, and runs that find the rest in the
// ledger store nothing again.
func TestServeReconcilesInTheBackground(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	fake := stripefake.New(t, reconcileKey)
	run := runID()
	var ids []string
	for i := range 30 {
		ids = append(ids, fmt.Sprintf("evt_bg_%s_%02d", run, i))
		fake.Add(stripefake.Event{ID: ids[i], Type: "invoice.payment_failed", Created: time.Now().Add(-time.Duration(i) * time.Hour)})
	}
	fake.Add(stripefake.Event{ID: "evt_bg_" + run + "_ok", Type: "invoice.paid", DeliverySuccess: true})
	var (
		mu      sync.Mutex
		hits    = map[string]int{}
		sources = map[string]string{}
	)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Idempotency-Key")
		mu.Lock()
		hits[id]++
		sources[id] = r.Header.Get("Oncehook-Source")
		mu.Unlock()
	}))
	t.Cleanup(web.Close)
	sinkPath := filepath.Join(t.TempDir(), "events.jsonl")
	addr := testenv.FreeAddr(t)
	p := startProcess(t, addr, dbURL, "STRIPE_WEBHOOK_SECRET="+harness.Secret,
		"STRIPE_API_KEY="+reconcileKey, "STRIPE_API_BASE="+fake.URL(), "RECONCILE_INTERVAL=1s",
		"DESTINATIONS=file,web", "DESTINATION_FILE_URL=file://"+sinkPath, "DESTINATION_WEB_URL="+web.URL, "LOG_LEVEL=info")

	diag := func() string {
		var b strings.Builder
		for _, r := range fake.Requests() {
			fmt.Fprintf(&b, "%s %s?%s -> %d\n", r.Method, r.Path, r.RawQuery, r.Status)
		}
		return fmt.Sprintf("\nrequests to the fake Stripe:\n%sstderr:\n%s", b.String(), p.stderr.String())
	}
	waitForFileSink(t, sinkPath, ids, 15*time.Second, diag)
	// Stripe lists an event late: the next run finds it.
	late := "evt_bg_" + run + "_late"
	fake.Add(stripefake.Event{ID: late, Type: "invoice.payment_failed"})
	ids = append(ids, late)
	waitForFileSink(t, sinkPath, ids, 10*time.Second, diag)
	// Let at least two more runs pass over events already stored.
	mark := len(listRequests(fake, 0))
	eventually.Require(t, 10*time.Second, "two more runs", func() bool { return len(listRequests(fake, 0)) >= mark+2 },
		func() string { return "stderr:\n" + p.stderr.String() })
	waitForFileSink(t, sinkPath, ids, time.Second, diag)
	n := 0
	eventually.Require(t, 10*time.Second, "every event at the HTTP destination", func() bool {
		mu.Lock()
		n = len(hits)
		mu.Unlock()
		return n >= len(ids)
	}, func() string { return fmt.Sprintf("%d of %d events reached it", n, len(ids)) })
	mu.Lock()
	for _, id := range ids {
		if hits[id] != 1 || sources[id] != "reconcile" {
			t.Errorf("%s: %d HTTP deliveries with Oncehook-Source %q, want 1 with reconcile", id, hits[id], sources[id])
		}
	}
	if len(hits) != len(ids) {
		t.Errorf("%d events reached the HTTP destination, want %d", len(hits), len(ids))
	}
	mu.Unlock()

	var events, reconciled, delivered int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM stripe_webhook_events),
		(SELECT count(*) FROM stripe_webhook_events WHERE source = 'reconcile' AND event_id = ANY($1)),
		(SELECT count(*) FROM stripe_webhook_deliveries WHERE status = 'delivered' AND event_id = ANY($1))`, ids).Scan(&events, &reconciled, &delivered); err != nil {
		t.Fatal(err)
	}
	if events != len(ids) || reconciled != len(ids) || delivered != 2*len(ids) {
		t.Errorf("ledger: %d events, %d from reconcile, %d deliveries done; want %d, %d, %d", events, reconciled, delivered, len(ids), len(ids), 2*len(ids))
	}
	for _, r := range listRequests(fake, 0) {
		if r.Query.Get("delivery_success") != "false" {
			t.Errorf("a background run listed without delivery_success=false: %s", r.RawQuery)
		}
	}
	if !strings.Contains(p.stderr.String(), "reconciler on") || strings.Contains(p.stderr.String(), reconcileKey) {
		t.Errorf("log: want \"reconciler on\" and never the key:\n%s", p.stderr.String())
	}
}

// TestReconcileCommandStopsOnAStoreFailure: an event the ledger refuses
// stops the run with an error naming it and leaves no checkpoint (a later
// run must list it again); once the ledger takes it, a run stores it.
func TestReconcileCommandStopsOnAStoreFailure(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	ctx := context.Background()
	fake := stripefake.New(t, reconcileKey)
	run := runID()
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprintf("evt_sf_%s_%d", run, i))
		fake.Add(stripefake.Event{ID: ids[i], Type: "invoice.paid", Created: time.Now().Add(-time.Duration(i) * time.Minute)})
	}
	// A check violation is a row error: the batch writer stores the other
	// rows one by one and fails only this one.
	if _, err := pool.Exec(ctx, fmt.Sprintf(`CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation'; END $$;
		CREATE TRIGGER refuse_one BEFORE INSERT ON stripe_webhook_events FOR EACH ROW WHEN (NEW.event_id = '%s') EXECUTE FUNCTION refuse_one()`, ids[2])); err != nil {
		t.Fatal(err)
	}
	env := receiverEnv("DATABASE_URL="+dbURL, "REDIS_URL="+testenv.RedisURL(t), "STRIPE_API_KEY="+reconcileKey, "STRIPE_API_BASE="+fake.URL())
	state := func() (events, checkpoints int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM stripe_webhook_events WHERE source = 'reconcile'),
			(SELECT count(*) FROM stripe_webhook_reconcile_checkpoints)`).Scan(&events, &checkpoints); err != nil {
			t.Fatal(err)
		}
		return
	}

	res := runBinary(t, env, "reconcile")
	var exit *exec.ExitError
	if !errors.As(res.err, &exit) || !strings.Contains(res.stderr, "storing event "+ids[2]) || strings.Contains(res.stdout, "done:") {
		t.Fatalf("with an event refused: %v, want a non-zero exit naming %s\nstdout:\n%s\nstderr:\n%s", res.err, ids[2], res.stdout, res.stderr)
	}
	if ev, cp := state(); cp != 0 || ev >= 5 {
		t.Fatalf("after the failed run: %d events stored, %d checkpoints; want fewer than 5 and no checkpoint", ev, cp)
	}

	if _, err := pool.Exec(ctx, `DROP TRIGGER refuse_one ON stripe_webhook_events`); err != nil {
		t.Fatal(err)
	}
	res = runBinary(t, env, "reconcile")
	if res.err != nil || !strings.Contains(res.stdout, "\ndone: 5 events seen, 3 missing, 3 stored") {
		t.Fatalf("after the ledger takes it: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	if ev, cp := state(); ev != 5 || cp != 1 {
		t.Fatalf("after the second run: %d events stored, %d checkpoints; want 5 and 1", ev, cp)
	}
}
