// Package grafana holds oncehook's Grafana dashboard. Its test keeps the
// dashboard and ../ALERTING.md honest against the metrics the receiver
// really exports: their names, kinds and labels.
package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// query returns a query variable's query, a string or {"query": ...}.
func (v variable) query() string {
	var q string
	if json.Unmarshal(v.Query, &q) != nil {
		var obj struct{ Query string }
		_ = json.Unmarshal(v.Query, &obj)
		q = obj.Query
	}
	return q
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
// as name_bucket, name_sum and name_count) with its family, whether it
// is cumulative (a counter, or a histogram's parts), so needs rate(), and
// its label names.
type series struct {
	family     map[string]string
	cumulative map[string]bool
	labels     map[string]map[string]bool // series name -> label names (le on buckets)
	families   []string                   // every oncehook_* family
	prefixes   map[string]bool
}

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = map[string]bool{"instance": true, "job": true}

// hasLabel reports whether series name can carry label l.
func (s series) hasLabel(name, l string) bool {
	return s.labels[name][l] || targetLabels[l] || l == "__name__"
}

// exampleDestination is the destination exported() records under.
const exampleDestination = "billing"

// exported builds the receiver's registry the way internal/service (service.go
// and destinations.go) does for one destination, and lists what it
// exports.
func exported(t testing.TB) series {
	t.Helper()
	m := metrics.New()
	dest := prometheus.Labels{"destination": exampleDestination}
	m.Gauge("oncehook_delivery_queue_depth", "Events waiting for a delivery worker in this process, by destination.", dest,
		func() float64 { return 0 })
	m.QueryGauge("oncehook_oldest_pending_age_seconds", "Age of the oldest event not yet delivered to the destination (all instances).",
		dest, time.Second, func(context.Context) (float64, error) { return 0, nil })
	m.QueryGauge("oncehook_deliveries_unserved", "Pending deliveries to destinations that no running instance serves (all instances; each destination's counted up to 100000): they wait until one does.",
		nil, time.Second, func(context.Context) (float64, error) { return 0, nil })
	m.DeadLetters([]string{exampleDestination}, time.Second,
		func(context.Context) (map[string]int64, error) { return map[string]int64{exampleDestination: 0}, nil })
	m.Destination(exampleDestination)
	m.SetBuildInfo(metrics.BuildInfo{Version: "v1.0.0", Commit: "0123456789ab", Go: "1.26.8", Schema: 8})
	// A vector with no child yet is left out of Gather; record once on
	// every collector so that each family shows.
	m.Request(metrics.Accepted)
	m.Decision("postgres", "accepted")
	m.Batch(1, time.Millisecond)
	m.Deliveries(exampleDestination, metrics.Delivered, 1)
	m.Unrouted()
	m.RedisError("claim")
	m.PostgresError("insert", nil)

	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering the registry: %v", err)
	}
	s := series{family: map[string]string{}, cumulative: map[string]bool{}, labels: map[string]map[string]bool{},
		prefixes: map[string]bool{}}
	for _, f := range fams {
		name := f.GetName()
		s.prefixes[name[:strings.IndexByte(name, '_')+1]] = true
		if strings.HasPrefix(name, "oncehook_") {
			s.families = append(s.families, name)
		}
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		add := func(name, fam string, cumulative bool, extra ...string) {
			s.family[name], s.cumulative[name] = fam, cumulative
			s.labels[name] = map[string]bool{}
			for l := range labels {
				s.labels[name][l] = true
			}
			for _, l := range extra {
				s.labels[name][l] = true
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			add(name, name, true)
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			add(name+"_bucket", name, true, "le")
			add(name+"_sum", name, true)
			add(name+"_count", name, true)
		case dto.MetricType_SUMMARY:
			add(name, name, false, "quantile") // the quantiles
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
	metricName = regexp.MustCompile(`\b(?:oncehook|go|process)_[A-Za-z0-9_:]*`)
	rangeFunc  = regexp.MustCompile(`\b(rate|irate|increase)\s*\(`)
	rangeSel   = regexp.MustCompile(`\[[^\]]*\]`)
	quantileFn = regexp.MustCompile(`\bhistogram_quantile\s*\(`)
	byLe       = regexp.MustCompile(`\bby\s*\([^)]*\ble\b[^)]*\)`)
	matcher    = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)`)
	// An aggregation operator, its grouping if written before the
	// argument, and the argument's opening parenthesis.
	aggOp   = regexp.MustCompile(`\b(sum|min|max|avg|group|stddev|stdvar|count_values|count|bottomk|topk|quantile|limitk|limit_ratio)\s*(?:(by|without)\s*\(([^)]*)\)\s*)?\(`)
	groupBy = regexp.MustCompile(`^\s*(by|without)\s*\(([^)]*)\)`)
	// What comes before the right operand of a set operator.
	setOp = regexp.MustCompile(`(?:^|[^A-Za-z0-9_:])(?:and|unless)\s*(?:(?:on|ignoring)\s*\([^)]*\)\s*)?$`)

	instanceSel    = `instance=~"$instance"`
	destinationSel = `destination=~"$destination"`
)

// Every panel query filters on these template variables, the second only
// on series with a destination label.
var filters = []struct{ label, sel string }{
	{"instance", instanceSel},
	{"destination", destinationSel},
}

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

// span is the inside of a function's or aggregation's parentheses.
type span struct {
	fn         string
	start, end int // the parentheses
}

func (sp span) holds(pos int) bool { return pos > sp.start && pos < sp.end }

// aggregation is an aggregation operator with its grouping.
type aggregation struct {
	span
	mode   string // "", "by" or "without"
	labels []string
}

// keeps reports whether the aggregation's result keeps label l.
func (a aggregation) keeps(l string) bool {
	switch a.mode {
	case "by":
		return slices.Contains(a.labels, l)
	case "without":
		return !slices.Contains(a.labels, l)
	}
	return false
}

// metricUse is one metric name in a query.
type metricUse struct {
	name     string
	pos      int
	selector string // {...} as written, "" without one
	fn       string // the enclosing rate(), irate() or increase(), if any
	// filter: the right operand of and/unless, which only selects the
	// left one's series: its value and labels do not reach the result.
	filter bool
}

// query is a parsed PromQL expression: what the checks below look at.
type query struct {
	expr, code string // code: expr with its strings blanked
	uses       []metricUse
	aggs       []aggregation
}

func splitLabels(list string) []string {
	var out []string
	for _, l := range strings.Split(list, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// parseQuery finds the metrics of expr and reports what is wrong whatever
// the query is for: an unknown metric name or label, a counter read without
// rate()/increase(), a gauge under rate(), a range selector outside them, a
// grouping by a label no metric under it has, or a histogram_quantile()
// that drops le. ok is false when expr could not be read at all.
func parseQuery(expr string, s series) (q query, errs []error, ok bool) {
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if strings.TrimSpace(expr) == "" {
		bad("empty expr")
		return q, errs, false
	}
	code, err := blankStrings(expr)
	if err != nil {
		bad("%v", err)
		return q, errs, false
	}
	if err := balanced(code); err != nil {
		bad("%v", err)
		return q, errs, false
	}
	q = query{expr: expr, code: code}

	var spans []span // arguments of rate(), irate(), increase()
	for _, loc := range rangeFunc.FindAllStringSubmatchIndex(code, -1) {
		open := loc[1] - 1
		spans = append(spans, span{fn: code[loc[2]:loc[3]], start: open, end: closing(code, open)})
	}
	inSpan := func(pos int) string {
		for _, sp := range spans {
			if sp.holds(pos) {
				return sp.fn
			}
		}
		return ""
	}
	for _, sp := range spans {
		if !rangeSel.MatchString(code[sp.start:sp.end]) {
			bad("%s() without a range selector", sp.fn)
		}
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
		u := metricUse{name: name, pos: loc[0], fn: inSpan(loc[0]), filter: setOp.MatchString(code[:loc[0]])}
		rest := strings.TrimLeft(code[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "{") {
			open := len(code) - len(rest)
			end := closing(code, open)
			u.selector = expr[open : end+1]
			for _, m := range matcher.FindAllStringSubmatch(code[open+1:end], -1) {
				if !s.hasLabel(name, m[1]) {
					bad("%s has no label %s", name, m[1])
				}
			}
		}
		q.uses = append(q.uses, u)
		switch {
		case s.cumulative[name] && u.fn == "" && !u.filter:
			bad("%s is cumulative: read it through rate() or increase()", name)
		case !s.cumulative[name] && u.fn != "":
			bad("%s is a gauge: %s() of it is meaningless", name, u.fn)
		}
	}

	for _, loc := range aggOp.FindAllStringSubmatchIndex(code, -1) {
		open := loc[1] - 1
		a := aggregation{span: span{fn: code[loc[2]:loc[3]], start: open, end: closing(code, open)}}
		if loc[4] >= 0 {
			a.mode, a.labels = code[loc[4]:loc[5]], splitLabels(code[loc[6]:loc[7]])
		} else if m := groupBy.FindStringSubmatch(code[a.end+1:]); m != nil {
			a.mode, a.labels = m[1], splitLabels(m[2])
		}
		q.aggs = append(q.aggs, a)
		if a.mode != "by" {
			continue
		}
		var under []string
		for _, u := range q.uses {
			if a.holds(u.pos) {
				under = append(under, u.name)
			}
		}
		if len(under) == 0 {
			continue // over something this test does not know, such as probe_success
		}
		for _, l := range a.labels {
			if !slices.ContainsFunc(under, func(n string) bool { return s.hasLabel(n, l) }) {
				bad("%s by (%s): no metric under it has the label %s", a.fn, strings.Join(a.labels, ", "), l)
			}
		}
	}
	return q, errs, true
}

// dropsDestination reports each series with a destination label that an
// aggregation sums away, for views that must show each destination.
func (q query) dropsDestination(s series) []error {
	var errs []error
	for _, u := range q.uses {
		if !s.labels[u.name]["destination"] || u.filter {
			continue
		}
		for _, a := range q.aggs {
			if a.holds(u.pos) && !a.keeps("destination") {
				errs = append(errs, fmt.Errorf("%s(...) of %s loses the destination: aggregate by (destination, ...)", a.fn, u.name))
			}
		}
	}
	return errs
}

// checkExpr reports what is wrong with one panel query: what parseQuery
// finds, a metric without the $instance filter (or, if it has a
// destination label, the $destination filter), or a rate() not over
// $__rate_interval. It returns the metric names the query uses.
func checkExpr(expr string, s series) (used []string, errs []error) {
	q, errs, ok := parseQuery(expr, s)
	if !ok {
		return nil, errs
	}
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, loc := range rangeFunc.FindAllStringSubmatchIndex(q.code, -1) {
		fn, open := q.code[loc[2]:loc[3]], loc[1]-1
		for _, r := range rangeSel.FindAllString(q.code[open:closing(q.code, open)], -1) {
			if fn != "increase" && r != "[$__rate_interval]" {
				bad("%s() over %s: use [$__rate_interval]", fn, r)
			}
		}
	}
	for _, u := range q.uses {
		used = append(used, u.name)
		if u.selector == "" {
			bad("%s has no label selector; filter it with %s", u.name, instanceSel)
			continue
		}
		for _, f := range filters {
			if s.labels[u.name][f.label] || targetLabels[f.label] {
				if !strings.Contains(u.selector, f.sel) {
					bad("%s is not filtered with %s", u.name, f.sel)
				}
			}
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
	// Query variables: the label each lists, from which metric, and
	// whether several values (and All) may be chosen.
	for _, want := range []struct{ name, query string }{
		{"instance", "label_values(oncehook_requests_total, instance)"},
		{"destination", "label_values(oncehook_deliveries_total, destination)"},
	} {
		v, ok := vars[want.name]
		if !ok || v.Type != "query" {
			bad("templating needs a %q query variable", want.name)
			continue
		}
		if q := v.query(); q != want.query {
			bad("%s variable query is %q, want %q", want.name, q, want.query)
		}
		if !v.Multi || !v.IncludeAll {
			bad("%s variable must be multi-select and include All", want.name)
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			bad("%s variable must use ${datasource}", want.name)
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
	byDestination := 0 // timeseries panels that show each destination
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
		perDestination := false
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
			// A graph of a per-destination metric draws each destination;
			// a stat may sum the selected ones.
			if q, _, ok := parseQuery(tg.Expr, s); ok && p.Type == "timeseries" {
				for _, e := range q.dropsDestination(s) {
					bad("%s target %s: %v\n\texpr: %s", where, tg.RefID, e, tg.Expr)
				}
				if slices.ContainsFunc(q.uses, func(u metricUse) bool { return s.labels[u.name]["destination"] }) {
					perDestination = true
				}
			}
		}
		if perDestination {
			byDestination++
		}
	}
	if queries == 0 {
		bad("no panels with queries")
	}
	if byDestination == 0 {
		bad("no timeseries panel shows a per-destination delivery metric by destination")
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

// TestDestinationLabels checks which families exported() gives a
// destination label: without any, the $destination checks would check
// nothing.
func TestDestinationLabels(t *testing.T) {
	s := exported(t)
	var got []string
	for _, f := range s.families {
		if s.labels[f]["destination"] || s.labels[f+"_bucket"]["destination"] {
			got = append(got, f)
		}
	}
	want := []string{"oncehook_dead_letters", "oncehook_deliveries_total", "oncehook_delivery_queue_depth", "oncehook_oldest_pending_age_seconds"}
	if !slices.Equal(got, want) {
		t.Fatalf("families with a destination label: %v, want %v", got, want)
	}
}

// TestRegistryMatchesSource guards exported(): every oncehook_* name the
// receiver registers must show in the registry this test builds, with the
// same labels, so that a gauge added to internal/service, a vector never touched
// above or a label added or dropped in the source is not missed.
func TestRegistryMatchesSource(t *testing.T) {
	s := exported(t)
	have := map[string]bool{}
	for _, f := range s.families {
		have[f] = true
	}
	// own returns the labels of family name that are not a histogram's le.
	own := func(name string) []string {
		var out []string
		ls := s.labels[name]
		if ls == nil {
			ls = s.labels[name+"_bucket"]
		}
		for l := range ls {
			if l != "le" {
				out = append(out, l)
			}
		}
		slices.Sort(out)
		return out
	}
	sameLabels := func(where, name string, want []string) {
		slices.Sort(want)
		if got := own(name); have[name] && !slices.Equal(got, want) {
			t.Errorf("%s: %s has labels %v in the source, %v in this test's registry: update exported()", where, name, want, got)
		}
	}

	lit := regexp.MustCompile(`(?:Name:\s*|Gauge\(\s*)"(oncehook_[A-Za-z0-9_:]+)"`)
	// A collector made in internal/metrics: its options' Name, then its
	// label names if it is a vector.
	collector := regexp.MustCompile(`(?s)Name:\s*"(oncehook_[A-Za-z0-9_:]+)".*?\}(?:,\s*\[\]string\{([^}]*)\})?\)`)
	// m.Gauge or m.QueryGauge in cmd/oncehook: name, help, then labels.
	gauge := regexp.MustCompile(`Gauge\(\s*"(oncehook_[A-Za-z0-9_:]+)",\s*"(?:[^"\\]|\\.)*",\s*([^,]+),`)
	labelsLit := regexp.MustCompile(`prometheus\.Labels\{([^}]*)\}`)
	keys := func(lit string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`"([A-Za-z_][A-Za-z0-9_]*)"\s*:`).FindAllStringSubmatch(lit, -1) {
			out = append(out, m[1])
		}
		return out
	}
	found, checked := 0, 0
	for _, dir := range []string{"../../internal/metrics", "../../cmd/oncehook", "../../internal/service"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			src := string(b)
			for _, m := range lit.FindAllStringSubmatch(src, -1) {
				found++
				if !have[m[1]] {
					t.Errorf("%s registers %s, missing from this test's registry: update exported()", f, m[1])
				}
			}
			for _, m := range collector.FindAllStringSubmatch(src, -1) {
				checked++
				var want []string
				for _, l := range strings.Split(m[2], ",") {
					if l = strings.Trim(strings.TrimSpace(l), `"`); l != "" {
						want = append(want, l)
					}
				}
				sameLabels(f, m[1], want)
			}
			for _, m := range gauge.FindAllStringSubmatch(src, -1) {
				checked++
				arg := strings.TrimSpace(m[2])
				var want []string
				switch {
				case arg == "nil":
				case labelsLit.MatchString(arg):
					want = keys(arg)
				default: // a variable: its prometheus.Labels{...} in the same file
					def := regexp.MustCompile(`\b` + regexp.QuoteMeta(arg) + `\s*:?=\s*prometheus\.Labels\{([^}]*)\}`).FindStringSubmatch(src)
					if def == nil {
						t.Errorf("%s: cannot tell the labels of %s (%s): update this test", f, m[1], arg)
						continue
					}
					want = keys(def[1])
				}
				sameLabels(f, m[1], want)
			}
		}
	}
	if found == 0 || checked == 0 {
		t.Fatalf("found %d metric names and %d label lists in the source; has the registration moved?", found, checked)
	}
}

// TestCheckerCatchesMistakes shows that the checks above can fail.
func TestCheckerCatchesMistakes(t *testing.T) {
	s := exported(t)
	for _, good := range []string{
		`sum by (outcome) (rate(oncehook_requests_total{instance=~"$instance", outcome="accepted"}[$__rate_interval]))`,
		`sum by (destination, result) (rate(oncehook_deliveries_total{instance=~"$instance", destination=~"$destination"}[$__rate_interval]))`,
		`max(oncehook_oldest_pending_age_seconds{instance=~"$instance", destination=~"$destination"}) by (destination)`,
	} {
		if _, errs := checkExpr(good, s); len(errs) != 0 {
			t.Fatalf("good expr rejected: %v\n\t%s", errs, good)
		}
	}
	for _, c := range []struct{ name, expr, want string }{
		{"typo", `sum(rate(oncehook_request_total{instance=~"$instance"}[$__rate_interval]))`, "not exported"},
		{"bogus", `oncehook_bogus_metric{instance=~"$instance"}`, "not exported"},
		{"histogram base name", `sum(rate(oncehook_insert_batch_rows{instance=~"$instance"}[$__rate_interval]))`, "not exported"},
		{"counter without rate", `sum(oncehook_deliveries_total{instance=~"$instance", destination=~"$destination"})`, "cumulative"},
		{"rate of a gauge", `sum(rate(oncehook_delivery_queue_depth{instance=~"$instance", destination=~"$destination"}[$__rate_interval]))`, "gauge"},
		{"fixed rate window", `sum(rate(oncehook_requests_total{instance=~"$instance"}[5m]))`, "$__rate_interval"},
		{"no instance filter", `sum(rate(oncehook_requests_total{outcome="accepted"}[$__rate_interval]))`, "not filtered with " + instanceSel},
		{"no destination filter", `sum by (destination) (rate(oncehook_deliveries_total{instance=~"$instance", result="dead"}[$__rate_interval]))`,
			"oncehook_deliveries_total is not filtered with " + destinationSel},
		{"no destination filter on a gauge", `max by (destination) (oncehook_oldest_pending_age_seconds{instance=~"$instance"})`,
			"oncehook_oldest_pending_age_seconds is not filtered with " + destinationSel},
		{"no destination filter on the dead letters", `max by (destination) (oncehook_dead_letters{instance=~"$instance"})`,
			"oncehook_dead_letters is not filtered with " + destinationSel},
		{"no selector", `sum(rate(oncehook_requests_total[$__rate_interval]))`, "no label selector"},
		{"label the metric lacks", `sum(rate(oncehook_requests_total{instance=~"$instance", destination=~"$destination"}[$__rate_interval]))`,
			"oncehook_requests_total has no label destination"},
		{"label typo", `sum(rate(oncehook_deliveries_total{instance=~"$instance", destination=~"$destination", reslt="dead"}[$__rate_interval]))`,
			"has no label reslt"},
		{"group by a missing label", `sum by (destinaton) (rate(oncehook_deliveries_total{instance=~"$instance", destination=~"$destination"}[$__rate_interval]))`,
			"no metric under it has the label destinaton"},
		{"group after, missing label", `max(oncehook_delivery_queue_depth{instance=~"$instance", destination=~"$destination"}) by (result)`,
			"no metric under it has the label result"},
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
	if errs := checkDashboard(raw, s); len(errs) != 0 {
		t.Fatalf("the dashboard has problems (see TestDashboard): %v", errs)
	}
	// edit returns the dashboard with old replaced by new, which must occur.
	edit := func(t *testing.T, old, new string) []byte {
		t.Helper()
		if !strings.Contains(string(raw), old) {
			t.Fatalf("%q is not in the dashboard", old)
		}
		return []byte(strings.ReplaceAll(string(raw), old, new))
	}
	// variables returns the dashboard with its template variables changed by f.
	variables := func(t *testing.T, f func([]any) []any) []byte {
		t.Helper()
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		tm := d["templating"].(map[string]any)
		tm["list"] = f(tm["list"].([]any))
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	isDestination := func(v any) bool { return v.(map[string]any)["name"] == "destination" }
	for _, c := range []struct {
		name string
		dash func(t *testing.T) []byte
		want string
	}{
		{"invalid JSON", func(*testing.T) []byte { return raw[:len(raw)/2] }, "JSON"},
		{"no panels", func(t *testing.T) []byte {
			var d map[string]any
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			d["panels"] = []any{}
			b, _ := json.Marshal(d)
			return b
		}, "no panels"},
		{"family dropped", func(t *testing.T) []byte {
			return edit(t, "oncehook_redis_errors_total", "oncehook_postgres_errors_total")
		}, "oncehook_redis_errors_total is on no panel"},
		{"unrouted dropped", func(t *testing.T) []byte {
			return edit(t, "oncehook_events_unrouted_total", "oncehook_redis_errors_total")
		}, "oncehook_events_unrouted_total is on no panel"},
		{"unknown metric in dashboard", func(t *testing.T) []byte {
			return edit(t, "go_goroutines", "oncehook_goroutines")
		}, "oncehook_goroutines is not exported"},
		{"no destination variable", func(t *testing.T) []byte {
			return variables(t, func(l []any) []any { return slices.DeleteFunc(l, isDestination) })
		}, `templating needs a "destination" query variable`},
		{"destination variable on the wrong metric", func(t *testing.T) []byte {
			return edit(t, "label_values(oncehook_deliveries_total, destination)", "label_values(oncehook_requests_total, destination)")
		}, "destination variable query is"},
		{"destination variable single-select", func(t *testing.T) []byte {
			return variables(t, func(l []any) []any {
				for _, v := range l {
					if isDestination(v) {
						v.(map[string]any)["multi"] = false
					}
				}
				return l
			})
		}, "destination variable must be multi-select"},
		{"delivery panels not filtered by destination", func(t *testing.T) []byte {
			return edit(t, `, destination=~\"$destination\"`, "")
		}, "oncehook_deliveries_total is not filtered with " + destinationSel},
		{"delivery graph summed over destinations", func(t *testing.T) []byte {
			return edit(t, "sum by (destination, result) (rate(oncehook_deliveries_total", "sum by (result) (rate(oncehook_deliveries_total")
		}, "loses the destination"},
		{"oldest pending age over all destinations", func(t *testing.T) []byte {
			return edit(t, "max by (destination) (oncehook_oldest_pending_age_seconds", "max(oncehook_oldest_pending_age_seconds")
		}, "max(...) of oncehook_oldest_pending_age_seconds loses the destination"},
	} {
		t.Run(c.name, func(t *testing.T) {
			errs := checkDashboard(c.dash(t), s)
			if !strings.Contains(fmt.Sprint(errs), c.want) {
				t.Fatalf("want a problem containing %q, got %v", c.want, errs)
			}
		})
	}
}
