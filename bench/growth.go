package bench

import (
	"encoding/json"
	"fmt"
	"os"
)

// GrowthPoint is unique's and storm's first runs at one ledger size: the
// growth curve. Rows 0 are the suite's runs on an empty ledger.
type GrowthPoint struct {
	Rows      int64   `json:"rows"`    // events filled into the ledger
	Pruning   bool    `json:"pruning"` // the pruner deleted while the runs went on
	UniqueRPS float64 `json:"unique_rps,omitempty"`
	UniqueP99 float64 `json:"unique_p99_ms,omitempty"`
	StormRPS  float64 `json:"storm_rps,omitempty"`
	StormP99  float64 `json:"storm_p99_ms,omitempty"`
}

// growth returns the growth curve, in the order the sizes first ran; nil
// if no run had a filled ledger.
func (s *Suite) growth() []GrowthPoint {
	type key struct {
		rows    int64
		pruning bool
	}
	var order []key
	points := map[key]*GrowthPoint{}
	filled := false
	for _, r := range s.Results {
		if r.Scenario != Unique && r.Scenario != Storm {
			continue
		}
		k := key{}
		if r.Ledger != nil {
			k, filled = key{r.Ledger.Filled, r.Ledger.Pruning}, true
		}
		p := points[k]
		if p == nil {
			p = &GrowthPoint{Rows: k.rows, Pruning: k.pruning}
			points[k] = p
			order = append(order, k)
		}
		switch {
		case r.Scenario == Unique && p.UniqueRPS == 0:
			p.UniqueRPS, p.UniqueP99 = r.RPS, r.Latency.P99
		case r.Scenario == Storm && p.StormRPS == 0:
			p.StormRPS, p.StormP99 = r.RPS, r.Latency.P99
		}
	}
	if !filled {
		return nil
	}
	out := make([]GrowthPoint, 0, len(order))
	for _, k := range order {
		out = append(out, *points[k])
	}
	return out
}

// firstSteady returns the first run of scenario made while the pruner
// deleted, or nil.
func (s *Suite) firstSteady(scenario string) *Result {
	for _, r := range s.steadyRuns() {
		if r.Scenario == scenario {
			return r
		}
	}
	return nil
}

// steadyRuns are the runs made while the pruner deleted.
func (s *Suite) steadyRuns() []*Result {
	var out []*Result
	for _, r := range s.Results {
		if r.Ledger != nil && r.Ledger.Pruning {
			out = append(out, r)
		}
	}
	return out
}

// ReadFills reads the JSON files of `bench fill -json`.
func ReadFills(paths ...string) ([]FillStats, error) {
	var out []FillStats
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var f FillStats
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// rowsLabel writes a ledger size short: 0, 20k, 1M, 2.5M.
func rowsLabel(n int64) string {
	switch {
	case n >= 1_000_000:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/1e6)) + "M"
	case n >= 1000:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/1e3)) + "k"
	}
	return fmt.Sprint(n)
}

func trimZero(s string) string {
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		return s[:len(s)-2]
	}
	return s
}
