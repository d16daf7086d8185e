package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/store"
)

// logLines decodes the JSON log lines in out whose msg starts with prefix.
func logLines(t *testing.T, out *harness.Buffer, prefix string) []map[string]any {
	t.Helper()
	var ls []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
			ls = append(ls, m)
		}
	}
	return ls
}

const (
	deadMsg    = "delivery dead:"
	burstMsg   = "deliveries went dead:"
	willRetry  = "delivery failed; will retry"
	sinkAnswer = "sink answered 500: \xff"
)

// TestEachDeadDeliveryIsLoggedOnce: every delivery that uses its last
// attempt gives one ERROR line with its destination, event id and type,
// attempts and error (cleaned and bounded); the retries before it say
// "will retry", the last attempt never does.
func TestEachDeadDeliveryIsLoggedOnce(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	evs := stored(t, pool, 3)
	var out harness.Buffer
	cfg := fastRetries
	cfg.Pool, cfg.MaxAttempts = pool, 3
	cfg.Logger = slog.New(slog.NewJSONHandler(&out, nil))
	long := sinkAnswer + strings.Repeat("x", 5000)
	cfg.Sink = funcSink(func(context.Context, *event.Event) error { return errors.New(long) })
	d := dispatchAll(t, cfg, evs)
	for _, ev := range evs {
		waitRow(t, pool, ev.ID, func(r row) bool { return r.status == "dead" })
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	dead := map[string]map[string]any{}
	for _, l := range logLines(t, &out, deadMsg) {
		id, _ := l["event_id"].(string)
		if dead[id] != nil {
			t.Errorf("%s logged dead twice", id)
		}
		dead[id] = l
	}
	if len(dead) != len(evs) {
		t.Fatalf("%d dead lines, want one per dead delivery (%d):\n%s", len(dead), len(evs), out.String())
	}
	for _, ev := range evs {
		l := dead[ev.ID]
		errText, _ := l["error"].(string)
		if l["level"] != "ERROR" || l["destination"] != "default" || l["event_type"] != "invoice.paid" || l["attempts"] != float64(3) ||
			!strings.HasPrefix(errText, "sink answered 500: \uFFFD") || len(errText) > 1000 || !utf8.ValidString(errText) {
			t.Errorf("%s: dead line %v, want ERROR, default, invoice.paid, 3 attempts, the cleaned error within 1000 bytes", ev.ID, l)
		}
	}
	retries := logLines(t, &out, willRetry)
	if len(retries) == 0 {
		t.Fatalf("no %q line for the first attempts:\n%s", willRetry, out.String())
	}
	for _, l := range retries {
		if a, _ := l["attempts"].(float64); a < 1 || a >= 3 || l["level"] != "WARN" {
			t.Errorf("%q on attempt %v of 3 (%v): only a retry says it", willRetry, l["attempts"], l)
		}
	}
	if b := logLines(t, &out, burstMsg); len(b) != 0 {
		t.Errorf("3 dead letters need no summary: %v", b)
	}
}

// TestABurstOfDeadDeliveriesIsSummarised: past the lines logged one by one
// in an interval, the rest of a burst is counted in one summary line, by
// destination; none goes unreported.
func TestABurstOfDeadDeliveriesIsSummarised(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	evs := stored(t, pool, 45)
	var out harness.Buffer
	cfg := fastRetries
	cfg.Pool, cfg.MaxAttempts = pool, 1
	cfg.Logger = slog.New(slog.NewJSONHandler(&out, nil))
	cfg.Sink = funcSink(func(context.Context, *event.Event) error { return errors.New("sink down") })
	d := dispatchAll(t, cfg, evs)
	for _, ev := range evs {
		waitRow(t, pool, ev.ID, func(r row) bool { return r.status == "dead" })
	}
	// Stop logs what is held back at once, rather than at the interval's end.
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	one := logLines(t, &out, deadMsg)
	sums := logLines(t, &out, burstMsg)
	held := 0
	for _, s := range sums {
		n, _ := s["not_logged"].(float64)
		dests, _ := s["destinations"].(map[string]any)
		if s["level"] != "ERROR" || dests["default"] != n || len(dests) != 1 {
			t.Errorf("summary %v, want ERROR with its count under destinations.default", s)
		}
		held += int(n)
	}
	if len(one) == len(evs) || len(sums) == 0 {
		t.Fatalf("%d lines one by one and %d summaries for %d dead letters at once: the burst was not summarised", len(one), len(sums), len(evs))
	}
	if len(one)+held != len(evs) {
		t.Fatalf("%d lines one by one + %d summarised, want %d: some went unreported\n%s", len(one), held, len(evs), out.String())
	}
	if w := logLines(t, &out, willRetry); len(w) != 0 {
		t.Errorf("a single attempt said %q: %v", willRetry, w)
	}
}

// gaugeValues reads a gauge's value by destination from in's registry.
func gaugeValues(t *testing.T, in *harness.Instance, name string) map[string]float64 {
	t.Helper()
	fams, err := in.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "destination" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// TestDeadLettersGauge: oncehook_dead_letters shows the dead letters that
// exist now, per destination: a configured one's (0 before any), one no
// longer configured, and none once they are replayed.
func TestDeadLettersGauge(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	out, down := downSink(errors.New("downstream answered 500"))
	cfg := fastRetries
	cfg.MaxAttempts = 1
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: out, Delivery: cfg})
	if got := gaugeValues(t, in, metrics.DeadLettersName); !maps.Equal(got, map[string]float64{"default": 0}) {
		t.Fatalf("before any dead letter: %v, want default 0", got)
	}
	ids := postMany(t, []string{in.URL}, "evt_gauge", 3)
	if _, err := pool.Exec(context.Background(), `WITH e AS (INSERT INTO stripe_webhook_events (event_id, event_type, payload, status)
			VALUES ('evt_gauge_gone', 'invoice.paid', '{}', 'routed') RETURNING event_id)
		INSERT INTO stripe_webhook_deliveries (event_id, destination, status, attempts, dead_at)
		SELECT event_id, 'gone', 'dead', 5, now() FROM e`); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"default": 3, "gone": 1}
	eventually.Require(t, 10*time.Second, "the gauge to show 3 dead letters of default and 1 of gone",
		func() bool { return maps.Equal(gaugeValues(t, in, metrics.DeadLettersName), want) },
		func() string { return fmt.Sprint(gaugeValues(t, in, metrics.DeadLettersName)) })

	down.Store(false)
	if found, err := store.New(pool).ReplayIDs(context.Background(), ids, store.ReplayIDsOptions{}); err != nil || len(found) != 3 {
		t.Fatalf("replay: %v, %v", found, err)
	}
	waitAllDelivered(t, pool, 3, 10*time.Second)
	if got := gaugeValues(t, in, metrics.DeadLettersName); !maps.Equal(got, map[string]float64{"default": 0, "gone": 1}) {
		t.Fatalf("after the replay: %v, want default 0, gone 1", got)
	}
}
