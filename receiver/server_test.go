package receiver_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

func countRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM stripe_webhook_events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func signAt(body []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
}

func TestHTTPContractBadInput(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	out := harness.NewRecordingSink()
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Sink: out})

	body := harness.EventBody("evt_bad_1", "invoice.paid")
	altered := bytes.Replace(body, []byte("4200"), []byte("4201"), 1)
	now := time.Now()
	tests := []struct {
		name    string
		body    []byte
		sig     string
		code    int
		wantErr string
	}{
		{"missing signature", body, "", 400, "header is missing"},
		{"malformed signature", body, "nonsense", 400, "malformed"},
		{"wrong secret", body, signAt(body, "whsec_wrong", now), 400, "no v1 signature matches"},
		{"too old", body, signAt(body, harness.Secret, now.Add(-6*time.Minute)), 400, "older than the tolerance"},
		{"too far in the future", body, signAt(body, harness.Secret, now.Add(6*time.Minute)), 400, "in the future"},
		{"v0 only", body, strings.Replace(harness.Sign(body), "v1=", "v0=", 1), 400, "no v1 signature"},
		{"body altered by one byte", altered, harness.Sign(body), 400, "no v1 signature matches"},
		{"not JSON", []byte("not json"), harness.Sign([]byte("not json")), 400, "not valid JSON"},
		{"no id", []byte(`{"object":"event","type":"invoice.paid"}`), "", 400, "no id"},
		{"no type", []byte(`{"id":"evt_x","object":"event"}`), "", 400, "no type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := tt.sig
			if sig == "" && tt.name != "missing signature" {
				sig = harness.Sign(tt.body)
			}
			resp := harness.PostSigned(t, in.URL, tt.body, sig)
			if resp.Code != tt.code || !strings.Contains(resp.Body, `"error":`) || !strings.Contains(resp.Body, tt.wantErr) {
				t.Fatalf("got %d %s, want %d with error containing %q", resp.Code, resp.Body, tt.code, tt.wantErr)
			}
		})
	}

	t.Run("oversize", func(t *testing.T) {
		// Headers only: the server must answer before reading 300 KB, and a
		// client still writing would see the connection reset instead.
		conn, err := net.Dial("tcp", strings.TrimPrefix(in.Base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1=00\r\nContent-Length: %d\r\n\r\n", 300<<10)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(b), "MAX_BODY_BYTES") {
			t.Fatalf("got %d %s, want 413", resp.StatusCode, b)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		resp, err := http.Get(in.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("GET: %d Allow=%q, want 405 Allow=POST", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		resp := harness.Post(t, in.Base+"/webhooks/other", body)
		if resp.Code != 404 || !strings.Contains(resp.Body, `"error"`) {
			t.Fatalf("got %d %s, want 404", resp.Code, resp.Body)
		}
	})

	if n := countRows(t, pool); n != 0 {
		t.Errorf("bad input stored %d rows", n)
	}
	if keys := testenv.Keys(t, rdb, prefix); len(keys) != 0 {
		t.Errorf("bad input left Redis keys %v", keys)
	}
	if c := out.Counts(); len(c) != 0 {
		t.Errorf("bad input reached the sink: %v", c)
	}
}

// TestHeaderNamesAnyCase: proxies and HTTP/2 hops send header names in
// lower case; they name the same header.
func TestHeaderNamesAnyCase(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: harness.NewRecordingSink()})
	body := harness.EventBody("evt_lowercase", "invoice.paid")
	conn, err := net.Dial("tcp", strings.TrimPrefix(in.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /webhooks/stripe HTTP/1.1\r\nhost: x\r\nstripe-signature: %s\r\ncontent-length: %d\r\n\r\n%s", harness.Sign(body), len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "accepted") {
		t.Fatalf("lower-case stripe-signature: %d %s", resp.StatusCode, b)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	pool := testenv.Schema(t, pg.URL())
	rdb, prefix := testenv.Redis(t)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Sink: harness.NewRecordingSink()})

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(in.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := get("/readyz"); code != 200 || body != `{"status":"ready","postgres":"ok","redis":"ok"}` {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	// /readyz answers from a state at most a second old: a change shows
	// within two.
	pg.Stop(t)
	var code int
	var body string
	eventually.Require(t, 2*time.Second, "/readyz 503 with Postgres down", func() bool {
		code, body = get("/readyz")
		return code == 503 && strings.Contains(body, `"postgres":"down`)
	}, func() string { return fmt.Sprint(code, " ", body) })
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz with Postgres down: %d, want 200", code)
	}
	pg.Start(t)
	eventually.Require(t, 2*time.Second, "/readyz 200 after the restart", func() bool {
		code, body = get("/readyz")
		return code == 200
	}, func() string { return fmt.Sprint(code, " ", body) })
}

func TestFiftyConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	out := harness.NewRecordingSink()
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, Sink: out})

	body := harness.EventBody("evt_fifty", "payment_intent.succeeded")
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[string]int{}
	for range 50 {
		wg.Go(func() {
			resp := harness.Post(t, in.URL, body)
			mu.Lock()
			statuses[fmt.Sprintf("%d %s", resp.Code, resp.Body)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	want := map[string]int{
		`200 {"status":"accepted","event_id":"evt_fifty"}`:  1,
		`200 {"status":"duplicate","event_id":"evt_fifty"}`: 49,
	}
	if fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Fatalf("answers %v, want %v", statuses, want)
	}
	if n := countRows(t, pool); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	out.WaitFor(t, 5*time.Second, func(c map[string]int) bool { return c["evt_fifty"] >= 1 })
	// A second, wrong delivery would be queued by now: every answer is in.
	// Stop drains the queues, so after it the sink's count is final.
	in.Stop()
	if c := out.Counts(); c["evt_fifty"] != 1 || len(c) != 1 {
		t.Fatalf("sink calls %v, want one for evt_fifty", c)
	}
}

// TestCopyOfARecentEventIsAnsweredFromMemory: an instance answers a copy of
// an event it just stored from memory, after the signature check and
// without Redis or Postgres; a bad signature still gets 400, and a body
// whose first member is not the id is read in full.
func TestCopyOfARecentEventIsAnsweredFromMemory(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Redis: rdb, KeyPrefix: prefix, RecentIDs: 100, Sink: harness.NewRecordingSink()})
	id := "evt_recent_copy"
	body := harness.EventBody(id, "invoice.paid")
	if resp := harness.Post(t, in.URL, body); resp.Body != `{"status":"accepted","event_id":"`+id+`"}` {
		t.Fatalf("first: %d %s", resp.Code, resp.Body)
	}
	rdb.Del(context.Background(), prefix+"evt:"+id) // only memory can answer without Postgres now
	before := in.Dedup.Stats()
	if resp := harness.Post(t, in.URL, body); resp.Body != `{"status":"duplicate","event_id":"`+id+`"}` {
		t.Fatalf("copy: %d %s", resp.Code, resp.Body)
	}
	// Signed, but broken past the id: answered from the id alone.
	broken := []byte(`{"id":"` + id + `","object":`)
	if resp := harness.Post(t, in.URL, broken); resp.Body != `{"status":"duplicate","event_id":"`+id+`"}` {
		t.Fatalf("copy broken past the id: %d %s", resp.Code, resp.Body)
	}
	if after := in.Dedup.Stats(); after.Rows != before.Rows {
		t.Fatalf("copies reached Postgres: %+v -> %+v", before, after)
	}
	if resp := harness.PostSigned(t, in.URL, body, signAt(body, "whsec_wrong", time.Now())); resp.Code != 400 {
		t.Fatalf("a recent id with a bad signature: %d %s, want 400", resp.Code, resp.Body)
	}
	// The id not first: read in full, and still a duplicate.
	reordered := []byte(`{"object":"event","type":"invoice.paid","id":"` + id + `"}`)
	if resp := harness.Post(t, in.URL, reordered); resp.Body != `{"status":"duplicate","event_id":"`+id+`"}` {
		t.Fatalf("reordered copy: %d %s", resp.Code, resp.Body)
	}
	if n := countRows(t, pool); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}
