package metrics_test

import (
	"testing"

	"github.com/oncehook/oncehook/internal/metrics"
)

func TestBuildInfo(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.SetBuildInfo(metrics.BuildInfo{Version: "v1.2.3", Commit: "0123456789ab", Go: "1.25.1", Schema: 8})
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"version": "v1.2.3", "commit": "0123456789ab", "go": "1.25.1", "schema": "8"}
	found := false
	for _, f := range fams {
		if f.GetName() != "oncehook_build_info" {
			continue
		}
		found = true
		if len(f.GetMetric()) != 1 {
			t.Fatalf("%d series, want 1", len(f.GetMetric()))
		}
		s := f.GetMetric()[0]
		if v := s.GetGauge().GetValue(); v != 1 {
			t.Errorf("value %v, want 1", v)
		}
		got := map[string]string{}
		for _, l := range s.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(want) {
			t.Errorf("labels %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("label %s = %q, want %q", k, got[k], v)
			}
		}
	}
	if !found {
		t.Fatal("oncehook_build_info is not registered")
	}
	var nilMetrics *metrics.Metrics
	nilMetrics.SetBuildInfo(metrics.BuildInfo{}) // records nothing, and does not panic
}
