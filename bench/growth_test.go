package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ledgerSuite is a suite with the empty-ledger runs, growth at 1M and 10M,
// steady at 10M and spread on one and on three receivers.
func ledgerSuite() *Suite {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run := func(name, scenario string, rps, p99 float64, urls int, ledger *LedgerWindow) *Result {
		at = at.Add(time.Minute)
		return &Result{Name: name, Scenario: scenario, Mode: "closed", RPS: rps, Latency: Latency{P99: p99},
			URLs: make([]string, urls), Started: at, Ledger: ledger, Verify: &Verification{},
			Timeline: []Second{{At: at.Add(time.Second), RPS: rps, P99: p99}, {At: at.Add(2 * time.Second), RPS: rps, P99: p99}}}
	}
	grown := func(n int64) *LedgerWindow { return &LedgerWindow{Filled: n, Rows: n} }
	steady := &LedgerWindow{Filled: 10_000_000, Pruning: true, Rows: 9_000_000, Inserted: 9000, Deleted: 30000,
		Seconds: 10, PrunerSeen: true, PrunerWaitMS: 800, BacklogLeft: true}
	stormSteady := &LedgerWindow{Filled: 10_000_000, Pruning: true, Rows: 8_700_000, Inserted: 3000, Deleted: 5000, Seconds: 10}
	return &Suite{
		Results: []*Result{
			{Name: "floor (before)", Scenario: Floor, RPS: 10000, URLs: []string{""}},
			run(Unique, Unique, 1000, 20, 1, nil),
			run(Storm, Storm, 4000, 22, 1, nil),
			run(Replay, Replay, 5500, 10, 1, nil),
			run("unique (1M rows)", Unique, 950, 21, 1, grown(1_000_000)),
			run("storm (1M rows)", Storm, 3900, 23, 1, grown(1_000_000)),
			run("unique (10M rows)", Unique, 900, 24, 1, grown(10_000_000)),
			run("storm (10M rows)", Storm, 3700, 24, 1, grown(10_000_000)),
			run("unique (steady 10M rows)", Unique, 850, 30, 1, steady),
			run("storm (steady 10M rows)", Storm, 3000, 26, 1, stormSteady),
			run("spread (1 instance)", Spread, 2000, 15, 1, nil),
			run(Spread, Spread, 2100, 16, 3, nil),
		},
		Fills: []FillStats{{Events: 1_000_000, Rows: 1_000_000, InsertSeconds: 50, VacuumSeconds: 9, LedgerBytes: 3e9},
			{Events: 9_000_000, Rows: 10_000_000, InsertSeconds: 450, VacuumSeconds: 80, LedgerBytes: 30e9}},
	}
}

func TestGrowthCurve(t *testing.T) {
	t.Parallel()
	want := []GrowthPoint{
		{Rows: 0, UniqueRPS: 1000, UniqueP99: 20, StormRPS: 4000, StormP99: 22},
		{Rows: 1_000_000, UniqueRPS: 950, UniqueP99: 21, StormRPS: 3900, StormP99: 23},
		{Rows: 10_000_000, UniqueRPS: 900, UniqueP99: 24, StormRPS: 3700, StormP99: 24},
		{Rows: 10_000_000, Pruning: true, UniqueRPS: 850, UniqueP99: 30, StormRPS: 3000, StormP99: 26},
	}
	if got := ledgerSuite().growth(); !reflect.DeepEqual(got, want) {
		t.Fatalf("growth:\n%+v\nwant\n%+v", got, want)
	}
	if got := (&Suite{Results: []*Result{{Scenario: Unique, RPS: 1}}}).growth(); got != nil {
		t.Fatalf("growth without a filled ledger: %+v", got)
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 20000: "20k", 1_000_000: "1M", 2_500_000: "2.5M", 10_000_000: "10M"} {
		if got := rowsLabel(n); got != want {
			t.Errorf("rowsLabel(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestReportShowsLedgerAndSpreadTargets(t *testing.T) {
	t.Parallel()
	s := ledgerSuite()
	var md bytes.Buffer
	s.WriteMarkdown(&md, MarkdownOptions{})
	for _, want := range []string{
		"| replay ≥ 0.60× floor | 0.55× (5500 of 10000 req/s) | not met |",
		"| unique ≥ 0.20× floor | 0.10× (1000 of 10000 req/s) | not met |",
		"| steady unique (pruning) ≥ 0.80× unique on an empty ledger | 0.85× (850 of 1000 req/s; 0.09× floor) | met |",
		"| steady unique: pruner deletes ≥ 2× intake inserts | 3.3× (3000 deletes/s, 900 inserts/s over 10.0 s) | met |",
		"| steady storm (pruning) ≥ 0.80× storm on an empty ledger | 0.75× (3000 of 4000 req/s; 0.30× floor) | not met |",
		"| steady storm: pruner deletes ≥ 2× intake inserts | 1.7× (500 deletes/s, 300 inserts/s over 10.0 s); the pruner was not seen deleting before the run | not met |",
		"| spread: 3 instances ≥ 1 instance | 1.05× (2100 of 2000 req/s) | met |",
		"| unique (steady 10M rows): p99 ≤ 25 ms | 30.00 ms | not met |",
		"| fanout ≥ 0.70× unique | - | not run |",
		"| 2 | 9000000 | 10000000 | 450 | 20000 | 80 | 30.0 |",
		"| 1M | no | 950 | 0.10 | 0.95 | 21.00 | 3900 | 0.39 | 0.97 | 23.00 |",
		"| 10M | yes | 850 | 0.09 | 0.85 | 30.00 | 3000 | 0.30 | 0.75 | 26.00 |",
		"| unique (steady 10M rows) | 9000000 | 10.0 | 900 | 3000 | 3.33 | 0.8 s | yes |",
		"| storm (steady 10M rows) | 8700000 | 10.0 | 300 | 500 | 1.67 | not seen | no |",
		"closed loop, ledger of 10M, pruning",
		"| spread (1 instance) | closed loop, 1 receiver |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md.String())
	}

	dir := t.TempDir()
	if err := s.WriteChart(filepath.Join(dir, "chart.png")); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteJSON(filepath.Join(dir, "results.json")); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSuites(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Fills) != 2 || back.Results[8].Ledger == nil || back.Results[8].Ledger.Deleted != 30000 {
		t.Fatalf("read back: %d fills, steady ledger %+v", len(back.Fills), back.Results[8].Ledger)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"growth": [`)) || !bytes.Contains(b, []byte(`"unique_rps": 850`)) {
		t.Fatalf("results.json lacks the growth curve")
	}
}
