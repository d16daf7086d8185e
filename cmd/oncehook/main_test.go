package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// testVersion is the version the tests link into the binary, as a
// release build does: each place that shows the version must show it.
const testVersion = "v0.0.0-realbin-test"

// buildOncehook builds this command once per test binary.
var buildOncehook = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "oncehook-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "oncehook")
	ldflags := "-X github.com/oncehook/oncehook/internal/buildinfo.version=" + testVersion
	out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// TestProcessServesAndDrainsOnSIGTERM runs the real binary: it migrates,
// serves, and on SIGTERM finishes and delivers what it accepted, exits 0,
// and never logs the secret.
func TestProcessServesAndDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)
	if _, err := pool.Exec(context.Background(), "DROP TABLE stripe_webhook_deliveries, stripe_webhook_delivery_attempts, stripe_webhook_events, stripe_webhook_reconcile_checkpoints, oncehook_instance_destinations, oncehook_schema_migrations, oncehook_identity, oncehook_timeline, oncehook_failovers; DROP FUNCTION oncehook_adopt_legacy"); err != nil {
		t.Fatal(err) // the binary must migrate by itself
	}
	addr := testenv.FreeAddr(t)
	sinkPath := filepath.Join(t.TempDir(), "events.jsonl")
	p := startProcess(t, addr, dbURL,
		"STRIPE_WEBHOOK_SECRET=whsec_other_endpoint,"+harness.Secret,
		"SINK_URL=file://"+sinkPath,
		"LOG_LEVEL=debug")
	base := "http://" + addr

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("evt_proc_%02d", i)
			if resp := harness.Post(t, base+"/webhooks/stripe", harness.EventBody(id, "invoice.paid")); resp.Code != 200 {
				t.Errorf("%s: %d %s", id, resp.Code, resp.Body)
			}
		})
	}
	wg.Wait()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v; stderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30s after SIGTERM")
	}

	f, err := os.Open(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		lines++
	}
	if lines != n {
		t.Errorf("file sink has %d lines, want %d", lines, n)
	}
	var delivered int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM stripe_webhook_deliveries WHERE status = 'delivered' AND destination = 'default'").Scan(&delivered); err != nil {
		t.Fatal(err)
	}
	if delivered != n {
		t.Errorf("%d rows delivered, want %d", delivered, n)
	}
	if strings.Contains(p.stderr.String(), "whsec_") {
		t.Errorf("a secret was logged:\n%s", p.stderr.String())
	}
}

// process is a running receiver binary.
type process struct {
	cmd    *exec.Cmd
	stderr *harness.Buffer
	exited chan error
}

// testDB is a pool on a fresh migrated schema, and a DATABASE_URL that
// points the binary at that schema.
func testDB(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	pool := testenv.Postgres(t)
	return pool, schemaURL(testenv.DatabaseURL(t), pool.Config().ConnConfig.RuntimeParams["search_path"])
}

// schemaURL is dbURL with its search_path set to schema.
func schemaURL(dbURL, schema string) string {
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	return dbURL + sep + "search_path=" + schema
}

// startProcess runs the receiver on addr against dbURL and the test Redis,
// with extra environment, and waits until /readyz answers 200.
func startProcess(t *testing.T, addr, dbURL string, env ...string) *process {
	t.Helper()
	return startProcessWithStdout(t, nil, addr, dbURL, env...)
}

// startProcessWithStdout is startProcess with the process's stdout on
// stdout (nil: discarded).
func startProcessWithStdout(t *testing.T, stdout *os.File, addr, dbURL string, env ...string) *process {
	t.Helper()
	bin, err := buildOncehook()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"REDIS_URL="+testenv.RedisURL(t),
		"LISTEN_ADDR="+addr,
		"ADMIN_ADDR=",
	), env...)
	p := &process{cmd: cmd, stderr: &harness.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	eventually.Require(t, 30*time.Second, "the receiver to be ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, func() string { return "stderr:\n" + p.stderr.String() })
	return p
}

func TestProcessRejectsBadConfig(t *testing.T) {
	t.Parallel()
	bin, err := buildOncehook()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"STRIPE_WEBHOOK_SECRET=whsec_x", "DATABASE_URL=postgres://localhost/db", "WORKERS=many"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `WORKERS: "many" is not a whole number`) {
		t.Fatalf("err=%v, output:\n%s", err, out)
	}
}

// downstream is an HTTP sink that counts deliveries per event id, slowly
// enough that a killed receiver has deliveries in flight.
type downstream struct {
	mu     sync.Mutex
	counts map[string]int
}

func (d *downstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Intended fault window: a slow sink, so that the killed receiver has
	// deliveries in flight.
	time.Sleep(200 * time.Millisecond)
	d.mu.Lock()
	d.counts[r.Header.Get("Idempotency-Key")]++
	d.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (d *downstream) snapshot() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.counts)
}

// TestSIGKILLDuringStormLosesNothing kills one of two receivers mid-storm.
// Every event that got a 200 must reach the sink, through the survivor's
// sweeper once the dead instance's leases end; the only events delivered
// twice may be ones the killed instance had accepted.
func TestSIGKILLDuringStormLosesNothing(t *testing.T) {
	t.Parallel()
	sigkillStorm(t, nil)
}

// TestSIGKILLDuringStormWithThreeDestinations is the same with three
// destinations: nothing is lost at any of them.
func TestSIGKILLDuringStormWithThreeDestinations(t *testing.T) {
	t.Parallel()
	sigkillStorm(t, []string{"billing", "crm", "analytics"})
}

// sigkillStorm runs the kill with SINK_URL (no names) or with one HTTP
// destination per name, each matching every event.
func sigkillStorm(t *testing.T, names []string) {
	pool, dbURL := testDB(t)
	env := []string{
		"STRIPE_WEBHOOK_SECRET=" + harness.Secret,
		"DELIVERY_TIMEOUT=1s", "DELIVERY_LEASE=11s", "LOG_LEVEL=warn",
	}
	sinks := map[string]*downstream{}
	if len(names) == 0 {
		names = []string{"default"}
	} else {
		env = append(env, "DESTINATIONS="+strings.Join(names, ","))
	}
	for _, name := range names {
		down := &downstream{counts: map[string]int{}}
		srv := httptest.NewServer(down)
		t.Cleanup(srv.Close)
		sinks[name] = down
		if name == "default" {
			env = append(env, "SINK_URL="+srv.URL)
		} else {
			env = append(env, "DESTINATION_"+strings.ToUpper(name)+"_URL="+srv.URL)
		}
	}
	addrs := []string{testenv.FreeAddr(t), testenv.FreeAddr(t)}
	// Two workers against a slow sink: the victim has a backlog when it dies.
	victim := startProcess(t, addrs[0], dbURL, append(env, "WORKERS=2")...)
	startProcess(t, addrs[1], dbURL, env...)

	answered, victimAccepts := killMidStorm(t, victim, addrs, "evt_kill", 400, 4)
	events := len(answered)

	var victimIDs []string
	for id := range victimAccepts {
		victimIDs = append(victimIDs, id)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, name := range names {
		down := sinks[name]
		missing := 0
		eventually.Require(t, time.Until(deadline), "every event that got a 200 at destination "+name, func() bool {
			got := down.snapshot()
			missing = 0
			for id := range answered {
				if got[id] == 0 {
					missing++
				}
			}
			return missing == 0
		}, func() string { return fmt.Sprintf("%d never reached it", missing) })
		twice := 0
		for id, n := range down.snapshot() {
			if n > 1 {
				twice++
				if !victimAccepts[id] {
					t.Errorf("%s delivered %d times to %s but the killed instance never accepted it", id, n, name)
				}
			}
		}
		// The survivor's sweeper, not luck, delivered the victim's backlog.
		// Its attempts are written after the sink answered: wait for them.
		var rescued int
		eventually.Within(time.Until(deadline), func() bool {
			if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT event_id) FROM stripe_webhook_delivery_attempts
				WHERE ok AND destination = $3 AND event_id = ANY($1) AND instance NOT LIKE $2`,
				victimIDs, fmt.Sprintf("%%:%d", victim.cmd.Process.Pid), name).Scan(&rescued); err != nil {
				t.Fatal(err)
			}
			return rescued > 0
		})
		if rescued == 0 {
			t.Errorf("%s: no event the killed instance accepted was delivered by the survivor: the kill hit no backlog", name)
		}
		t.Logf("%s: %d events; killed instance accepted %d, survivor delivered %d of them; %d delivered twice (all in the kill window)",
			name, events, len(victimAccepts), rescued, twice)
	}
}

type rawResponse struct {
	code int
	body string
}

// postRaw posts a freshly signed body and reports transport errors instead
// of failing the test: a killed instance refuses connections.
func postRaw(url string, body []byte) (rawResponse, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return rawResponse{}, err
	}
	req.Header.Set("Stripe-Signature", harness.Sign(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawResponse{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{code: resp.StatusCode, body: string(b)}, nil
}

// killMidStorm posts events signed webhooks to the two instances at
// addrs, 16 at a time, and SIGKILLs victim (the first) a third of the way
// in. Like Stripe, each event is sent to one instance and retried, on the
// other too, until a 200, at most attempts times. It fails unless every
// event got a 200, and returns the ids answered and those the victim
// answered accepted.
func killMidStorm(t *testing.T, victim *process, addrs []string, prefix string, events, attempts int) (answered, victimAccepts map[string]bool) {
	t.Helper()
	run := fmt.Sprintf("%d", time.Now().UnixNano()) // ids unique across runs: the binary's Redis keys are not per test
	answered, victimAccepts = map[string]bool{}, map[string]bool{}
	var (
		mu     sync.Mutex
		killed atomic.Bool
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, 16)
	for i := range events {
		if i == events/3 {
			if err := victim.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed.Store(true)
		}
		id := fmt.Sprintf("%s_%s_%03d", prefix, run, i)
		body := harness.EventBody(id, "invoice.paid")
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for attempt := 0; attempt < attempts; attempt++ {
				target := (i + attempt) % 2
				if target == 0 && killed.Load() {
					continue
				}
				resp, err := postRaw("http://"+addrs[target]+"/webhooks/stripe", body)
				if err != nil || resp.code != 200 {
					continue
				}
				mu.Lock()
				answered[id] = true
				if target == 0 && strings.Contains(resp.body, "accepted") {
					victimAccepts[id] = true
				}
				mu.Unlock()
				return
			}
			t.Errorf("%s: no 200 from either instance", id)
		})
	}
	wg.Wait()
	if len(answered) != events {
		t.Fatalf("%d of %d events answered 200", len(answered), events)
	}
	return answered, victimAccepts
}
