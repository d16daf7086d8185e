package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/testenv"
)

// brokenSink answers 500 until fixed, then 200; it counts the 200s per
// path and event (its Idempotency-Key).
type brokenSink struct {
	fixed atomic.Bool
	mu    sync.Mutex
	ok    map[string]int
}

func (s *brokenSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.fixed.Load() {
		http.Error(w, "crm is down for maintenance", http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.ok[r.URL.Path+" "+r.Header.Get("Idempotency-Key")]++
	s.mu.Unlock()
}

func (s *brokenSink) delivered(path, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok[path+" "+id]
}

// TestProcessLogsAndCountsDeadLetters runs serve with two destinations
// whose sink answers 500, crm with DESTINATION_CRM_MAX_ATTEMPTS=2 and
// ledger with 1, next to one that works. Each delivery that runs out of
// attempts gives one ERROR line with its destination, event id, type,
// attempts and the sink's error; only crm's first attempt says "will
// retry" (ledger's one attempt is its last: "will retry" is rate-limited
// per destination, so a final attempt that said it would show there);
// oncehook_dead_letters shows each destination's count. Once the sink is
// fixed, `oncehook replay --status dead --destination crm` delivers crm's,
// whose gauge is back to 0, and leaves ledger's.
func TestProcessLogsAndCountsDeadLetters(t *testing.T) {
	t.Parallel()
	_, dbURL := testDB(t)
	broken := &brokenSink{ok: map[string]int{}}
	srv := httptest.NewServer(broken)
	t.Cleanup(srv.Close)
	addr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	p := startProcess(t, addr, dbURL, "STRIPE_WEBHOOK_SECRET="+harness.Secret, "ADMIN_ADDR="+adminAddr,
		"DESTINATIONS=crm,ledger,archive",
		"DESTINATION_CRM_URL="+srv.URL+"/crm", "DESTINATION_CRM_MAX_ATTEMPTS=2",
		"DESTINATION_LEDGER_URL="+srv.URL+"/ledger", "DESTINATION_LEDGER_MAX_ATTEMPTS=1",
		"DESTINATION_ARCHIVE_URL=file://"+filepath.Join(t.TempDir(), "archive.jsonl"))
	metricsURL := "http://" + adminAddr + "/metrics"
	deadLetters := func() map[string]float64 {
		fams := scrape(t, metricsURL)
		out := map[string]float64{}
		for _, d := range []string{"crm", "ledger", "archive"} {
			out[d] = value(fams, metrics.DeadLettersName, "destination", d)
		}
		return out
	}
	if got := deadLetters(); !maps.Equal(got, map[string]float64{"crm": 0, "ledger": 0, "archive": 0}) {
		t.Fatalf("before any event: dead letters %v, want 0 each", got)
	}

	run := runID()
	ids := map[string]bool{}
	for i := range 3 {
		id := fmt.Sprintf("evt_dead_%s_%d", run, i)
		ids[id] = true
		if resp := harness.Post(t, "http://"+addr+"/webhooks/stripe", harness.EventBody(id, "invoice.paid")); resp.Code != 200 {
			t.Fatalf("%s: %d %s", id, resp.Code, resp.Body)
		}
	}

	const deadMsg = "delivery dead: out of attempts"
	wantDead := map[string]float64{"crm": 3, "ledger": 3, "archive": 0}
	eventually.Require(t, 20*time.Second, "3 dead letters each of crm and ledger, on the gauge and in the log", func() bool {
		return maps.Equal(deadLetters(), wantDead) && len(logLines(t, p.stderr.String(), deadMsg)) >= 6
	}, func() string { return fmt.Sprintf("gauge %v; log:\n%s", deadLetters(), p.stderr.String()) })

	log := p.stderr.String()
	maxAttempts := map[string]float64{"crm": 2, "ledger": 1}
	seen := map[string]bool{}
	for _, l := range logLines(t, log, deadMsg) {
		id, _ := l["event_id"].(string)
		dest, _ := l["destination"].(string)
		errText, _ := l["error"].(string)
		if key := dest + " " + id; !ids[id] || seen[key] {
			t.Errorf("dead line for %s: not one of the events, or logged twice: %v", key, l)
		} else {
			seen[key] = true
		}
		if l["level"] != "ERROR" || maxAttempts[dest] == 0 || l["event_type"] != "invoice.paid" || l["attempts"] != maxAttempts[dest] ||
			!strings.Contains(errText, "500") {
			t.Errorf("dead line %v: want ERROR, crm or ledger, invoice.paid, all its attempts, the sink's 500", l)
		}
	}
	if len(seen) != 2*len(ids) {
		t.Errorf("%d deliveries logged dead, want %d:\n%s", len(seen), 2*len(ids), log)
	}
	retries := logLines(t, log, "delivery failed; will retry")
	if len(retries) == 0 {
		t.Errorf("crm's first attempts' failures were not logged:\n%s", log)
	}
	for _, l := range retries {
		if l["attempts"] != float64(1) || l["destination"] != "crm" {
			t.Errorf("%v: only crm's first attempt of 2 may say it will retry", l)
		}
	}
	if b := logLines(t, log, "deliveries went dead"); len(b) != 0 {
		t.Errorf("6 dead letters need no summary: %v", b)
	}

	broken.fixed.Store(true)
	res := runBinary(t, receiverEnv("DATABASE_URL="+dbURL), "replay", "--status", "dead", "--destination", "crm")
	if res.err != nil || !strings.Contains(res.stdout, "3 dead deliveries put back to pending") {
		t.Fatalf("replay: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	wantAfter := map[string]float64{"crm": 0, "ledger": 3, "archive": 0}
	eventually.Require(t, 15*time.Second, "crm's dead letters delivered, its gauge back to 0, ledger's left", func() bool {
		for id := range ids {
			if broken.delivered("/crm", id) == 0 {
				return false
			}
		}
		return maps.Equal(deadLetters(), wantAfter)
	}, func() string { return fmt.Sprintf("gauge %v; log:\n%s", deadLetters(), p.stderr.String()) })
	for id := range ids {
		if n := broken.delivered("/ledger", id); n != 0 {
			t.Errorf("%s delivered %d times to ledger, which was not replayed", id, n)
		}
	}
}
