package grafana

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const alertingFile = "../ALERTING.md"

// The sections of ALERTING.md with a table of alerts, and the severity
// their rules must carry.
var sectionSeverity = map[string]string{
	"What to page on":                 "page",
	"What to ticket":                  "ticket",
	"What to look at (informational)": "info",
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// alertRow is one row of a table of alerts.
type alertRow struct {
	section, alert, expr, forDur, todo string
}

// tableCells splits a Markdown table row on the pipes that are not
// escaped, and unescapes \| in each cell.
func tableCells(line string) []string {
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	cells = append(cells, strings.TrimSpace(cur.String()))
	return cells
}

var (
	alertCell = regexp.MustCompile("^`(Oncehook[A-Za-z0-9]+)`$")
	exprCell  = regexp.MustCompile("^`([^`]+)`(?:\\s+for\\s+(\\S+))?$")
	anyName   = regexp.MustCompile(`\boncehook_[A-Za-z0-9_:]+`)
	// The runbook commands that select deliveries.
	listOrReplay = regexp.MustCompile("`(oncehook (?:events list|replay)\\b[^`]*)`")
)

// checkAlerting reports every problem in doc, ALERTING.md: metric names
// and labels that oncehook does not export, rules that Prometheus would
// read wrongly or that do not match their table row, delivery alerts that
// sum the destinations together or do not name the destination, and
// delivery runbooks without --destination.
func checkAlerting(doc string, s series) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	names := anyName.FindAllString(doc, -1)
	if len(names) == 0 {
		bad("ALERTING.md names no oncehook metric")
	}
	for _, n := range names {
		if _, ok := s.family[n]; !ok {
			bad("%s is not exported by oncehook", n)
		}
	}

	// The tables.
	rows := map[string]alertRow{}
	section := ""
	for _, line := range strings.Split(doc, "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			section = strings.TrimSpace(h)
			continue
		}
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := tableCells(line)
		if len(cells) < 3 {
			continue
		}
		m := alertCell.FindStringSubmatch(cells[1])
		if m == nil {
			continue
		}
		if len(cells) != 6 {
			bad("table row %s: %d cells, want alert, PromQL, why, what to do", m[1], len(cells)-2)
			continue
		}
		if _, ok := sectionSeverity[section]; !ok {
			bad("table row %s: in section %q, which has no severity", m[1], section)
		}
		if _, dup := rows[m[1]]; dup {
			bad("table row %s: repeated", m[1])
		}
		e := exprCell.FindStringSubmatch(cells[2])
		if e == nil {
			bad("table row %s: the PromQL cell is not `EXPR` [for DURATION]: %s", m[1], cells[2])
			continue
		}
		rows[m[1]] = alertRow{section: section, alert: m[1], expr: e[1], forDur: e[2], todo: cells[4]}
	}
	if len(rows) == 0 {
		bad("no table of alerts")
	}

	// The rules.
	_, rest, ok := strings.Cut(doc, "\n## Prometheus rules\n")
	var src string
	if ok {
		_, rest, ok = strings.Cut(rest, "```yaml\n")
	}
	if ok {
		src, _, ok = strings.Cut(rest, "\n```")
	}
	if !ok {
		return append(errs, fmt.Errorf("no ```yaml block under ## Prometheus rules"))
	}
	var rules struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal([]byte(src), &rules); err != nil {
		return append(errs, fmt.Errorf("the rules are not valid YAML: %w", err))
	}
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			where := fmt.Sprintf("rule %s", r.Alert)
			if r.Alert == "" || seen[r.Alert] {
				bad("%s (group %s): missing or repeated alert name", where, g.Name)
				continue
			}
			seen[r.Alert] = true
			for _, e := range checkRule(r, s) {
				bad("%s: %v\n\texpr: %s", where, e, r.Expr)
			}
			row, ok := rows[r.Alert]
			if !ok {
				bad("%s: no row in the tables above", where)
				continue
			}
			if row.expr != r.Expr {
				bad("%s: expr does not match the table:\n\trule:  %s\n\ttable: %s", where, r.Expr, row.expr)
			}
			if row.forDur != r.For {
				bad("%s: for %q, the table says %q", where, r.For, row.forDur)
			}
			if want := sectionSeverity[row.section]; r.Labels["severity"] != want {
				bad("%s: severity %q, but it is under %q (%s)", where, r.Labels["severity"], row.section, want)
			}
			if perDestination(r.Expr, s) {
				for _, m := range listOrReplay.FindAllStringSubmatch(row.todo, -1) {
					if !strings.Contains(m[1], " --destination ") {
						bad("table row %s: a delivery alert's runbook must act on the destination: `%s` without --destination NAME", r.Alert, m[1])
					}
				}
			}
		}
	}
	for _, a := range slices.Sorted(maps.Keys(rows)) {
		if !seen[a] {
			bad("table row %s: no rule under ## Prometheus rules", a)
		}
	}
	return errs
}

// perDestination reports whether expr reads a metric with a destination
// label.
func perDestination(expr string, s series) bool {
	q, _, ok := parseQuery(expr, s)
	return ok && slices.ContainsFunc(q.uses, func(u metricUse) bool { return s.labels[u.name]["destination"] && !u.filter })
}

// checkRule reports what is wrong with one alerting rule: what parseQuery
// finds in its expr; a per-destination metric summed over destinations (one
// failing sink must page on its own, named); a per-destination alert whose
// summary does not name the destination; a bad for or severity.
func checkRule(r alertRule, s series) []error {
	q, errs, ok := parseQuery(r.Expr, s)
	if !ok {
		return errs
	}
	errs = append(errs, q.dropsDestination(s)...)
	if perDestination(r.Expr, s) && !strings.Contains(r.Annotations["summary"], "$labels.destination") {
		errs = append(errs, fmt.Errorf("it fires per destination, but its summary does not name it ({{ $labels.destination }})"))
	}
	if r.Annotations["summary"] == "" {
		errs = append(errs, fmt.Errorf("no summary annotation"))
	}
	if r.For != "" {
		if _, err := time.ParseDuration(r.For); err != nil {
			errs = append(errs, fmt.Errorf("for: %v", err))
		}
	}
	if !slices.Contains([]string{"page", "ticket", "info"}, r.Labels["severity"]) {
		errs = append(errs, fmt.Errorf("severity %q, want page, ticket or info", r.Labels["severity"]))
	}
	return errs
}

// TestAlerting keeps ../ALERTING.md to metric names and labels that exist,
// its rules to its tables, and its delivery alerts per destination.
func TestAlerting(t *testing.T) {
	doc, err := os.ReadFile(alertingFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkAlerting(string(doc), exported(t)) {
		t.Error(err)
	}
}

// TestAlertingCheckerCatchesMistakes shows that checkAlerting can fail: one
// broken edit of the real ALERTING.md per problem.
func TestAlertingCheckerCatchesMistakes(t *testing.T) {
	s := exported(t)
	raw, err := os.ReadFile(alertingFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	if errs := checkAlerting(doc, s); len(errs) != 0 {
		t.Fatalf("ALERTING.md has problems (see TestAlerting): %v", errs)
	}
	_, rulesPart, _ := strings.Cut(doc, "## Prometheus rules")
	for _, c := range []struct {
		name, old, new string
		inRules        bool // edit only the rules, not the tables
		want           string
	}{
		{"unknown metric", "oncehook_events_unrouted_total", "oncehook_unrouted_total", false,
			"oncehook_unrouted_total is not exported"},
		{"unknown label", `result="dead"`, `reslt="dead"`, false, "oncehook_deliveries_total has no label reslt"},
		{"stuck summed over destinations", "max by (destination) (oncehook_oldest_pending_age_seconds)",
			"max(oncehook_oldest_pending_age_seconds)", false, "max(...) of oncehook_oldest_pending_age_seconds loses the destination"},
		{"dead letters summed over destinations", `sum by (destination) (increase(oncehook_deliveries_total{result="dead"}`,
			`sum(increase(oncehook_deliveries_total{result="dead"}`, false, "sum(...) of oncehook_deliveries_total loses the destination"},
		{"dead letters now summed over destinations", "max by (destination) (oncehook_dead_letters)",
			"max(oncehook_dead_letters)", false, "max(...) of oncehook_dead_letters loses the destination"},
		{"retries grouped by the wrong label", `sum by (destination) (rate(oncehook_deliveries_total{result="retry"}`,
			`sum by (result) (rate(oncehook_deliveries_total{result="retry"}`, false, "loses the destination"},
		{"rule differs from its table", "max by (destination) (oncehook_oldest_pending_age_seconds) > 900",
			"max by (destination) (oncehook_oldest_pending_age_seconds) > 600", true, "expr does not match the table"},
		{"for differs from its table", "        for: 30m\n", "        for: 1h\n", true, `for "1h", the table says "30m"`},
		{"rule missing", "alert: OncehookUnroutedEvents", "alert: OncehookUnrouted", true,
			"table row OncehookUnroutedEvents: no rule"},
		{"severity against its section", "labels: {severity: info}", "labels: {severity: ticket}", true,
			`severity "ticket", but it is under "What to look at (informational)"`},
		{"summary without the destination", "for delivery to {{ $labels.destination }}", "for delivery", true,
			"its summary does not name it"},
		{"runbook without --destination", "`oncehook replay --status dead --destination NAME`", "`oncehook replay --status dead`", false,
			"`oncehook replay --status dead` without --destination NAME"},
		{"rules not YAML", "    rules:\n      - alert: OncehookRedisErrors", "    rules:\n    - alert: OncehookRedisErrors\n  x", true,
			"not valid YAML"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var d string
			if c.inRules {
				if !strings.Contains(rulesPart, c.old) {
					t.Fatalf("%q is not in the rules", c.old)
				}
				head, rules, _ := strings.Cut(doc, "## Prometheus rules")
				d = head + "## Prometheus rules" + strings.Replace(rules, c.old, c.new, 1)
			} else {
				if !strings.Contains(doc, c.old) {
					t.Fatalf("%q is not in ALERTING.md", c.old)
				}
				d = strings.ReplaceAll(doc, c.old, c.new)
			}
			errs := checkAlerting(d, s)
			if !strings.Contains(fmt.Sprint(errs), c.want) {
				t.Fatalf("want a problem containing %q, got %v", c.want, errs)
			}
		})
	}
}
