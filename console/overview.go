package console

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/oncehook/oncehook/admin"
)

// requestsMetric is the intake counter the overview reads, by outcome.
const requestsMetric = "oncehook_requests_total"

// rateWindow is the span over which the overview computes rates.
const rateWindow = time.Minute

// rates keeps recent samples of the intake counters, taken when the
// overview is shown (at most one a second, for rateWindow): rates need no
// goroutine of their own.
type rates struct {
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at     time.Time
	counts map[string]float64
}

// Outcome is one intake outcome: its total since start and its rate.
type Outcome struct {
	Name      string
	Total     float64
	PerSecond float64
	HasRate   bool
}

// observe records counts and returns each outcome with its rate over the
// oldest sample within rateWindow.
func (r *rates) observe(now time.Time, counts map[string]float64) []Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := r.samples[:0]
	for _, s := range r.samples {
		if now.Sub(s.at) <= rateWindow {
			keep = append(keep, s)
		}
	}
	r.samples = keep
	var base *sample
	if len(r.samples) > 0 && now.Sub(r.samples[0].at) >= time.Second {
		base = &r.samples[0]
	}
	out := make([]Outcome, 0, len(counts))
	for name, total := range counts {
		o := Outcome{Name: name, Total: total}
		if base != nil {
			o.PerSecond = max(0, total-base.counts[name]) / now.Sub(base.at).Seconds()
			o.HasRate = true
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(r.samples) == 0 || now.Sub(r.samples[len(r.samples)-1].at) >= time.Second {
		r.samples = append(r.samples, sample{at: now, counts: counts})
	}
	return out
}

// intakeCounts reads the intake counters from the process's registry.
func (c *Console) intakeCounts() (map[string]float64, error) {
	families, err := c.cfg.Metrics.Gather()
	if err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != requestsMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					counts[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return counts, nil
}

// overviewData is the overview page.
type overviewData struct {
	Intake   []Outcome
	Backlogs []admin.Backlog
	// Mixed describes the sets the running instances serve when they
	// differ (a rolling configuration change); empty when they agree.
	Mixed  string
	Health Health
	Window time.Duration
	Error  string
}

func (c *Console) overviewData(ctx context.Context) overviewData {
	d := overviewData{Window: rateWindow}
	counts, err := c.intakeCounts()
	if err != nil {
		d.Error = err.Error()
	}
	d.Intake = c.intake.observe(time.Now(), counts)
	d.Health = c.cfg.Health(ctx)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var rec admin.Record
	d.Backlogs, rec, err = c.admin.Backlogs(qctx, c.cfg.Destinations)
	if rec.Mixed() {
		d.Mixed = rec.Describe()
	}
	if err != nil {
		c.cfg.Log.Error("console: reading backlogs", "error", err)
		d.Error = "Could not read the destinations' backlogs from Postgres; the log has the details."
	}
	return d
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s session) {
	c.render(w, r, s, http.StatusOK, "overview", "Overview", c.overviewData(r.Context()))
}

// age prints how long ago seconds was, in a short form.
func age(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second)).Round(time.Second)
	switch {
	case d <= 0:
		return "—"
	case d < time.Hour:
		return d.String()
	default:
		return d.Round(time.Minute).String()
	}
}
