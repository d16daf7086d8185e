package bench

import "fmt"

// writeLedger writes the section on runs against a filled ledger: the
// fills, the growth curve and the pruner against the intake. Nothing if
// no run had a filled ledger.
func (s *Suite) writeLedger(p func(string, ...any)) {
	growth := s.growth()
	if growth == nil {
		return
	}
	p("## Ledger size and pruning")
	p("")
	p("The growth and steady runs use a database of their own, filled by `bench fill` with SQL, not HTTP: events")
	p("spread evenly over the last 30 days, each with its delivery delivered and its successful attempt recorded,")
	p("with payloads cut from the generator's bodies (the same mix of sizes; Postgres compresses them). After each")
	p("fill: VACUUM (ANALYZE) and CHECKPOINT. A receiver of its own runs on it: for the growth runs with")
	p("RETENTION far longer than 30 days (nothing to prune); for the steady runs with a RETENTION that makes most")
	p("filled events prunable, so that the pruner deletes while the runs go on (each waits until it is seen deleting).")
	p("")
	if len(s.Fills) > 0 {
		p("| fill | events added | ledger events after | insert s | events/s | vacuum and checkpoint s | ledger tables GB |")
		p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for i, f := range s.Fills {
			p("| %d | %d | %d | %.0f | %.0f | %.0f | %.1f |", i+1, f.Events, f.Rows, f.InsertSeconds,
				rate(f.Events, f.InsertSeconds), f.VacuumSeconds, float64(f.LedgerBytes)/1e9)
		}
		p("")
	}
	floor := s.FloorRPS()
	var base GrowthPoint
	for _, g := range growth {
		if g.Rows == 0 && !g.Pruning {
			base = g
		}
	}
	p("Growth: the first unique and storm runs at each ledger size (0: the suite's runs on an empty ledger).")
	p("")
	p("| ledger events | pruning | unique req/s | × floor | × empty | p99 ms | storm req/s | × floor | × empty | p99 ms |")
	p("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, g := range growth {
		pruning := "no"
		if g.Pruning {
			pruning = "yes"
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", rowsLabel(g.Rows), pruning,
			num(g.UniqueRPS), ratioOf(g.UniqueRPS, floor), ratioOf(g.UniqueRPS, base.UniqueRPS), ms(g.UniqueRPS, g.UniqueP99),
			num(g.StormRPS), ratioOf(g.StormRPS, floor), ratioOf(g.StormRPS, base.StormRPS), ms(g.StormRPS, g.StormP99))
	}
	p("")
	steady := s.steadyRuns()
	if len(steady) == 0 {
		return
	}
	p("Steady state: the ledger table's inserts (the intake) and deletes (the pruner) over each run's measured")
	p("phase, from pg_stat_user_tables (each backend publishes its counts about once a second).")
	p("")
	p("| run | ledger events at the start | seconds | intake inserts/s | pruner deletes/s | deletes ÷ inserts | pruner seen after | still pruning at the end |")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, r := range steady {
		w := r.Ledger
		seen := "not seen"
		if w.PrunerSeen {
			seen = fmt.Sprintf("%.1f s", w.PrunerWaitMS/1000)
		}
		left := "no"
		if w.BacklogLeft {
			left = "yes"
		}
		p("| %s | %d | %.1f | %.0f | %.0f | %s | %s | %s |", r.Name, w.Rows, w.Seconds, w.InsertRate(), w.DeleteRate(),
			ratioOf(w.DeleteRate(), w.InsertRate()), seen, left)
	}
	p("")
}

func num(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func ratioOf(v, of float64) string {
	if v == 0 || of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v/of)
}

// ms writes a latency, or "-" for a run that did not happen.
func ms(rps, v float64) string {
	if rps == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}
