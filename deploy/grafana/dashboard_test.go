// Package grafana holds oncehook's Grafana dashboard. Its test keeps the
// dashboard honest against the metrics the receiver really exports.
package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/oncehook/oncehook/internal/metrics"
)

const dashboardFile = "oncehook-dashboard.json"

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasourceRef  `json:"datasource"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // a collapsed row's panels
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// series describes what oncehook exports: each series name (histograms
// as name_bucket, name_sum and name_count) with its family and whether it
// is cumulative (a counter, or a histogram's parts), so needs rate().
type series struct {
	family     map[string]string
	cumulative map[string]bool
	families   []string // every oncehook_* family
	prefixes   map[string]bool
}

// exported builds the receiver's registry the way cmd/receiver/serve.go
// does and lists what it exports.
func exported(t testing.TB) series {
	t.Helper()
	m := metrics.New()
	m.Gauge("oncehook_delivery_queue_depth", "Events waiting for a delivery worker in this process.",
		func() float64 { return 0 })
	m.QueryGauge("oncehook_oldest_pending_age_seconds", "Age of the oldest event not yet delivered (all instances).",
		time.Second, func(context.Context) (float64, error) { return 0, nil })
	// A vector with no child yet is left out of Gather; record once on
	// every collector so that each family shows.
	m.Request(metrics.Accepted)
	m.Decision("postgres", "accepted")
	m.Batch(1, time.Millisecond)
	m.Deliveries(metrics.Delivered, 1)
	m.RedisError("claim")
	m.PostgresError("insert")

	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering the registry: %v", err)
	}
	s := series{family: map[string]string{}, cumulative: map[string]bool{}, prefixes: map[string]bool{}}
	add := func(name, fam string, cumulative bool) {
		s.family[name], s.cumulative[name] = fam, cumulative
	}
	for _, f := range fams {
		name := f.GetName()
		s.prefixes[name[:strings.IndexByte(name, '_')+1]] = true
		if strings.HasPrefix(name, "oncehook_") {
			s.families = append(s.families, name)
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			add(name, name, true)
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			add(name+"_bucket", name, true)
			add(name+"_sum", name, true)
			add(name+"_count", name, true)
		case dto.MetricType_SUMMARY:
			add(name, name, false) // the quantiles
			add(name+"_sum", name, true)
			add(name+"_count", name, true)
		default:
			add(name, name, false)
		}
	}
	sort.Strings(s.families)
	return s
}

var (
	metricName  = regexp.MustCompile(`\b(?:oncehook|go|process)_[A-Za-z0-9_:]*`)
	rangeFunc   = regexp.MustCompile(`\b(rate|irate|increase)\s*\(`)
	rangeSel    = regexp.MustCompile(`\[[^\]]*\]`)
	quantileFn  = regexp.MustCompile(`\bhistogram_quantile\s*\(`)
	byLe        = regexp.MustCompile(`\bby\s*\([^)]*\ble\b[^)]*\)`)
	instanceSel = `instance=~"$instance"`
)

// blankStrings replaces the inside of every quoted string with x, keeping
// positions, so that label values are not read as PromQL.
func blankStrings(expr string) (string, error) {
	b := []byte(expr)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote == 0 && (c == '"' || c == '\'' || c == '`'):
			quote = c
		case quote != 0 && c == '\\' && quote != '`':
			b[i] = 'x'
			if i+1 < len(b) {
				i++
				b[i] = 'x'
			}
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b[i] = 'x'
		}
	}
	if quote != 0 {
		return "", fmt.Errorf("unterminated string")
	}
	return string(b), nil
}

// closing returns the index of the bracket closing the one at open.
func closing(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func balanced(s string) error {
	var stack []byte
	pair := map[byte]byte{')': '(', '}': '{', ']': '['}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '(', '{', '[':
			stack = append(stack, c)
		case ')', '}', ']':
			if len(stack) == 0 || stack[len(stack)-1] != pair[c] {
				return fmt.Errorf("unbalanced %q at offset %d", c, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return nil
}

// checkExpr reports what is wrong with one panel query: an unknown metric
// name, a metric without the $instance filter, a counter read without
// rate()/increase(), a gauge under rate(), a rate() not over
// $__rate_interval, or a histogram_quantile() that drops le. It returns the
// metric names the query uses.
func checkExpr(expr string, s series) (used []string, errs []error) {
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if strings.TrimSpace(expr) == "" {
		bad("empty expr")
		return nil, errs
	}
	code, err := blankStrings(expr)
	if err != nil {
		bad("%v", err)
		return nil, errs
	}
	if err := balanced(code); err != nil {
		bad("%v", err)
		return nil, errs
	}

	type span struct {
		fn         string
		start, end int
	}
	var spans []span // arguments of rate(), irate(), increase()
	for _, loc := range rangeFunc.FindAllStringSubmatchIndex(code, -1) {
		open := loc[1] - 1
		sp := span{fn: code[loc[2]:loc[3]], start: open, end: closing(code, open)}
		spans = append(spans, sp)
		arg := code[sp.start:sp.end]
		if !rangeSel.MatchString(arg) {
			bad("%s() without a range selector", sp.fn)
		}
		for _, r := range rangeSel.FindAllString(arg, -1) {
			if sp.fn != "increase" && r != "[$__rate_interval]" {
				bad("%s() over %s: use [$__rate_interval]", sp.fn, r)
			}
		}
	}
	inSpan := func(pos int) string {
		for _, sp := range spans {
			if pos > sp.start && pos < sp.end {
				return sp.fn
			}
		}
		return ""
	}
	for _, loc := range rangeSel.FindAllStringIndex(code, -1) {
		if inSpan(loc[0]) == "" {
			bad("range selector %s outside rate()/increase()", code[loc[0]:loc[1]])
		}
	}
	for _, loc := range quantileFn.FindAllStringIndex(code, -1) {
		arg := code[loc[1]-1 : closing(code, loc[1]-1)]
		if !byLe.MatchString(arg) {
			bad("histogram_quantile() must aggregate with by (..., le)")
		}
	}

	for _, loc := range metricName.FindAllStringIndex(code, -1) {
		name := code[loc[0]:loc[1]]
		prefix := name[:strings.IndexByte(name, '_')+1]
		if prefix != "oncehook_" && !s.prefixes[prefix] {
			continue // e.g. no process collector on this platform
		}
		if _, ok := s.family[name]; !ok {
			bad("%s is not exported by oncehook", name)
			continue
		}
		used = append(used, name)
		rest := strings.TrimLeft(code[loc[1]:], " \t\n")
		if !strings.HasPrefix(rest, "{") {
			bad("%s has no label selector; filter it with %s", name, instanceSel)
		} else {
			open := len(code) - len(rest)
			if !strings.Contains(expr[open:closing(code, open)+1], instanceSel) {
				bad("%s is not filtered with %s", name, instanceSel)
			}
		}
		fn := inSpan(loc[0])
		switch {
		case s.cumulative[name] && fn == "":
			bad("%s is cumulative: read it through rate() or increase()", name)
		case !s.cumulative[name] && fn != "":
			bad("%s is a gauge: %s() of it is meaningless", name, fn)
		}
	}
	return used, errs
}

// checkDashboard reports every problem in raw, a dashboard's JSON.
func checkDashboard(raw []byte, s series) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return []error{fmt.Errorf("not valid JSON: %w", err)}
	}
	if d.UID == "" || d.Title == "" {
		bad("uid and title are required")
	}
	if d.SchemaVersion < 39 {
		bad("schemaVersion %d, want 39 or later", d.SchemaVersion)
	}

	used := map[string]bool{} // families
	check := func(where, expr string) {
		names, es := checkExpr(expr, s)
		for _, e := range es {
			bad("%s: %v\n\texpr: %s", where, e, expr)
		}
		for _, n := range names {
			used[s.family[n]] = true
		}
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		bad(`templating needs a "datasource" variable of type datasource with query "prometheus"`)
	}
	if v, ok := vars["instance"]; !ok || v.Type != "query" {
		bad(`templating needs an "instance" query variable`)
	} else {
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct{ Query string }
			_ = json.Unmarshal(v.Query, &obj)
			q = obj.Query
		}
		if q != "label_values(oncehook_requests_total, instance)" {
			bad("instance variable query is %q", q)
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			bad("instance variable must use ${datasource}")
		}
	}

	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	queries, ids := 0, map[int]bool{}
	for _, p := range all {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID == 0 || ids[p.ID] {
			bad("%s: missing or repeated id", where)
		}
		ids[p.ID] = true
		if p.Title == "" {
			bad("%s: no title", where)
		}
		if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			bad("%s: bad gridPos", where)
		}
		switch p.Type {
		case "row":
			continue
		case "timeseries", "stat":
		default:
			bad("%s: type %q, want timeseries, stat or row", where, p.Type)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			bad("%s: datasource must be ${datasource}", where)
		}
		if len(p.Targets) == 0 {
			bad("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				bad("%s: missing or repeated refId %q", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				bad("%s: target %s datasource must be ${datasource}", where, tg.RefID)
			}
			queries++
			check(fmt.Sprintf("%s target %s", where, tg.RefID), tg.Expr)
		}
	}
	if queries == 0 {
		bad("no panels with queries")
	}
	for _, f := range s.families {
		if !used[f] {
			bad("exported family %s is on no panel", f)
		}
	}
	return errs
}

func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkDashboard(raw, exported(t)) {
		t.Error(err)
	}
}

// TestRegistryMatchesSource guards exported(): every oncehook_* name the
// receiver registers must show in the registry this test builds, so that a
// gauge added to serve.go or a vector never touched above is not missed.
func TestRegistryMatchesSource(t *testing.T) {
	s := exported(t)
	have := map[string]bool{}
	for _, f := range s.families {
		have[f] = true
	}
	lit := regexp.MustCompile(`(?:Name:\s*|Gauge\(\s*)"(oncehook_[A-Za-z0-9_:]+)"`)
	found := 0
	for _, dir := range []string{"../../internal/metrics", "../../cmd/receiver"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
				found++
				if !have[m[1]] {
					t.Errorf("%s registers %s, missing from this test's registry: update exported()", f, m[1])
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("found no metric names in the source; has the registration moved?")
	}
}

// TestAlertingNames keeps ../ALERTING.md to metric names that exist.
func TestAlertingNames(t *testing.T) {
	s := exported(t)
	doc, err := os.ReadFile("../ALERTING.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\boncehook_[A-Za-z0-9_:]+`).FindAllString(string(doc), -1)
	if len(names) == 0 {
		t.Fatal("ALERTING.md names no oncehook metric")
	}
	for _, n := range names {
		if _, ok := s.family[n]; !ok {
			t.Errorf("ALERTING.md: %s is not exported by oncehook", n)
		}
	}
}

// TestCheckerCatchesMistakes shows that the checks above can fail.
func TestCheckerCatchesMistakes(t *testing.T) {
	s := exported(t)
	good := `sum by (outcome) (rate(oncehook_requests_total{instance=~"$instance", outcome="accepted"}[$__rate_interval]))`
	if _, errs := checkExpr(good, s); len(errs) != 0 {
		t.Fatalf("good expr rejected: %v", errs)
	}
	for _, c := range []struct{ name, expr, want string }{
		{"typo", `sum(rate(oncehook_request_total{instance=~"$instance"}[$__rate_interval]))`, "not exported"},
		{"bogus", `oncehook_bogus_metric{instance=~"$instance"}`, "not exported"},
		{"histogram base name", `sum(rate(oncehook_insert_batch_rows{instance=~"$instance"}[$__rate_interval]))`, "not exported"},
		{"counter without rate", `sum(oncehook_deliveries_total{instance=~"$instance"})`, "cumulative"},
		{"rate of a gauge", `sum(rate(oncehook_delivery_queue_depth{instance=~"$instance"}[$__rate_interval]))`, "gauge"},
		{"fixed rate window", `sum(rate(oncehook_requests_total{instance=~"$instance"}[5m]))`, "$__rate_interval"},
		{"no instance filter", `sum(rate(oncehook_requests_total{outcome="accepted"}[$__rate_interval]))`, "not filtered"},
		{"no selector", `sum(rate(oncehook_requests_total[$__rate_interval]))`, "no label selector"},
		{"quantile without le", `histogram_quantile(0.99, sum(rate(oncehook_insert_batch_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`, "le"},
		{"unbalanced", `sum(rate(oncehook_requests_total{instance=~"$instance"}[$__rate_interval])`, "unclosed"},
		{"empty", ` `, "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errs := checkExpr(c.expr, s)
			if len(errs) == 0 {
				t.Fatalf("%s accepted", c.expr)
			}
			if !strings.Contains(fmt.Sprint(errs), c.want) {
				t.Fatalf("errors %v do not mention %q", errs, c.want)
			}
		})
	}

	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("invalid JSON", func(t *testing.T) {
		if errs := checkDashboard(raw[:len(raw)/2], s); len(errs) == 0 || !strings.Contains(errs[0].Error(), "JSON") {
			t.Fatalf("got %v", errs)
		}
	})
	t.Run("no panels", func(t *testing.T) {
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		d["panels"] = []any{}
		b, _ := json.Marshal(d)
		if !strings.Contains(fmt.Sprint(checkDashboard(b, s)), "no panels") {
			t.Fatal("a dashboard without panels passed")
		}
	})
	t.Run("family dropped", func(t *testing.T) {
		b := strings.ReplaceAll(string(raw), "oncehook_redis_errors_total", "oncehook_postgres_errors_total")
		if !strings.Contains(fmt.Sprint(checkDashboard([]byte(b), s)), "oncehook_redis_errors_total is on no panel") {
			t.Fatal("a dashboard without Redis errors passed")
		}
	})
	t.Run("unknown metric in dashboard", func(t *testing.T) {
		b := strings.ReplaceAll(string(raw), "go_goroutines", "oncehook_goroutines")
		if !strings.Contains(fmt.Sprint(checkDashboard([]byte(b), s)), "oncehook_goroutines is not exported") {
			t.Fatal("a dashboard with an unknown metric passed")
		}
	})
}
