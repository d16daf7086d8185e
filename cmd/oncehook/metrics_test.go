package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value sums the samples of family whose labels include every name=value
// pair given.
func value(fams map[string]*dto.MetricFamily, family string, labels ...string) float64 {
	if fams[family] == nil {
		return -1
	}
	var sum float64
	for _, m := range matching(fams, family, labels...) {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += m.Histogram.GetSampleSum()
		}
	}
	return sum
}

// matching is the series of family that carry every label pair of labels.
func matching(fams map[string]*dto.MetricFamily, family string, labels ...string) []*dto.Metric {
	var out []*dto.Metric
next:
	for _, m := range fams[family].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// samples is the sample count of a histogram's series matching labels.
func samples(fams map[string]*dto.MetricFamily, family string, labels ...string) float64 {
	var n uint64
	for _, m := range matching(fams, family, labels...) {
		n += m.GetHistogram().GetSampleCount()
	}
	return float64(n)
}

func TestMetricsAddUpAfterAStorm(t *testing.T) {
	t.Parallel()
	_, dbURL := testDB(t)
	addr, admin := testenv.FreeAddr(t), testenv.FreeAddr(t)
	dir := t.TempDir()
	startProcess(t, addr, dbURL,
		"STRIPE_WEBHOOK_SECRET="+harness.Secret, "ADMIN_ADDR="+admin, "DESTINATIONS=billing,crm",
		"DESTINATION_BILLING_URL=file://"+dir+"/billing.jsonl", "DESTINATION_BILLING_TYPES=invoice.*",
		"DESTINATION_CRM_URL=file://"+dir+"/crm.jsonl", "DESTINATION_CRM_TYPES=customer.*")
	base := "http://" + addr
	run := fmt.Sprint(time.Now().UnixNano())

	const events, copies = 20, 4
	var wg sync.WaitGroup
	for e := range events {
		body := harness.EventBody(fmt.Sprintf("evt_metrics_%s_%d", run, e), "invoice.paid")
		for range copies {
			wg.Go(func() { harness.Post(t, base+"/webhooks/stripe", body) })
		}
	}
	const unrouted = 3
	for e := range unrouted {
		harness.Post(t, base+"/webhooks/stripe", harness.EventBody(fmt.Sprintf("evt_metrics_unrouted_%s_%d", run, e), "charge.succeeded"))
	}
	wg.Wait()
	for range 5 {
		harness.PostSigned(t, base+"/webhooks/stripe", []byte(`{"id":"evt_forged"}`), "t=1,v1=00")
	}
	harness.Post(t, base+"/nope", []byte(`{}`))
	harness.Post(t, base+"/nope", []byte(`{}`))
	if resp, err := http.Get(base + "/webhooks/stripe"); err == nil {
		resp.Body.Close()
	}

	url := "http://" + admin + "/metrics"
	var fams map[string]*dto.MetricFamily
	eventually.Within(10*time.Second, func() bool {
		fams = scrape(t, url)
		return value(fams, "oncehook_deliveries_total", "destination", "billing", "result", "delivered") == events
	})
	for _, c := range []struct {
		family string
		labels []string
		want   float64
	}{
		{"oncehook_requests_total", []string{"outcome", "accepted"}, events + unrouted},
		{"oncehook_requests_total", []string{"outcome", "duplicate"}, events * (copies - 1)},
		{"oncehook_requests_total", []string{"outcome", "bad_signature"}, 5},
		{"oncehook_requests_total", []string{"outcome", "not_found"}, 2},
		{"oncehook_requests_total", []string{"outcome", "method_not_allowed"}, 1},
		{"oncehook_requests_total", []string{"outcome", "unavailable"}, 0},
		{"oncehook_dedup_decisions_total", nil, events*copies + unrouted},
		{"oncehook_dedup_decisions_total", []string{"outcome", "accepted"}, events + unrouted},
		{"oncehook_deliveries_total", []string{"destination", "billing", "result", "delivered"}, events},
		{"oncehook_deliveries_total", []string{"destination", "crm", "result", "delivered"}, 0},
		{"oncehook_deliveries_total", []string{"result", "dead"}, 0},
		{"oncehook_events_unrouted_total", nil, unrouted},
		{"oncehook_redis_errors_total", nil, 0},
		{"oncehook_postgres_errors_total", nil, 0},
		{"oncehook_delivery_queue_depth", []string{"destination", "billing"}, 0},
		{"oncehook_delivery_queue_depth", []string{"destination", "crm"}, 0},
		{"oncehook_oldest_pending_age_seconds", []string{"destination", "billing"}, 0},
		{"oncehook_oldest_pending_age_seconds", []string{"destination", "crm"}, 0},
	} {
		if got := value(fams, c.family, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.family, c.labels, got, c.want)
		}
	}
	// The latency budget's stages: every request was verified; every new
	// event was parsed and waited for a commit (a copy answered from the
	// recent ids is neither).
	verified := float64(events*copies + unrouted)
	for _, c := range []struct {
		stage    string
		min, max float64
	}{
		{"total", verified + 5, verified + 5},
		{"verify", verified + 5, verified + 5},
		{"parse", events + unrouted, verified},
		{"commit", events + unrouted, verified},
	} {
		if n := samples(fams, "oncehook_intake_stage_seconds", "stage", c.stage); n < c.min || n > c.max {
			t.Errorf("oncehook_intake_stage_seconds{stage=%q} has %v samples, want %v to %v", c.stage, n, c.min, c.max)
		}
	}
	// Every accepted event was a row of some INSERT batch.
	if rows := value(fams, "oncehook_insert_batch_rows"); rows < events {
		t.Errorf("insert batches carried %v rows, want at least %d", rows, events)
	}
	for _, family := range []string{"oncehook_deliveries_total", "oncehook_delivery_queue_depth", "oncehook_oldest_pending_age_seconds"} {
		for _, d := range []string{"billing", "crm"} {
			if value(fams, family, "destination", d) < 0 || !hasLabel(fams[family], "destination", d) {
				t.Errorf("%s has no series for destination %s", family, d)
			}
		}
	}
	if fams["oncehook_insert_batch_seconds"] == nil || fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Errorf("missing families; have %v", strings.Join(keys(fams), " "))
	}
	resp, err := http.Get("http://" + admin + "/debug/pprof/")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("pprof: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}

func keys(m map[string]*dto.MetricFamily) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func hasLabel(f *dto.MetricFamily, name, value string) bool {
	if f == nil {
		return false
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == name && l.GetValue() == value {
				return true
			}
		}
	}
	return false
}
