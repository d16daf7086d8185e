package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestReportShowsFanoutAgainstUnique(t *testing.T) {
	t.Parallel()
	fan := &Result{Name: Fanout, Scenario: Fanout, Mode: "closed", RPS: 600, Destinations: FanoutDestinations,
		Verify: &Verification{Expected: 6, Delivered: 5, Missing: 1, Destinations: []DestVerification{
			{Dest: "a", Expected: 2, Delivered: 2}, {Dest: "b", Expected: 2, Delivered: 1, Missing: 1}, {Dest: "c", Expected: 2, Delivered: 2},
		}, Failures: []string{"1 events answered 200 never reached destination /b (waited 1s)"}}}
	s := &Suite{Results: []*Result{
		{Name: Unique, Scenario: Unique, Mode: "closed", RPS: 1000, Verify: &Verification{}},
		fan,
	}}
	if got, _, _, ok := s.FanoutRatio(); !ok || got != 0.6 {
		t.Fatalf("ratio %v %v, want 0.6", got, ok)
	}
	var md bytes.Buffer
	s.WriteMarkdown(&md, MarkdownOptions{})
	for _, want := range []string{
		"Fanout: 600 req/s, 0.60× unique (1000 req/s)",
		"| fanout ≥ 0.70× unique | 0.60× (600 of 1000 req/s) | not met |",
		"| fanout → /a | 2 | 2 | 0 | 0 | 0 |",
		"| fanout → /b | 2 | 1 | 1 | 0 | 0 |",
		"never reached destination /b",
		"closed loop, 3 destinations",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var table bytes.Buffer
	s.WriteTable(&table)
	for _, want := range []string{"fanout/unique: 0.60", "/a 2 of 2, each once", "/b 1 of 2, 1 missing"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}
