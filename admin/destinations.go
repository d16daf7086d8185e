package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/store"
)

// LiveWithin is how recent an instance's heartbeat must be for it to
// count as running: a few heartbeats (HeartbeatInterval), so that one
// slow refresh does not make it look gone.
const LiveWithin = 45 * time.Second

// InstanceSet is the destination set one instance recorded.
type InstanceSet struct {
	Instance     string              `json:"instance"`
	Fingerprint  string              `json:"fingerprint"`
	Destinations []route.Destination `json:"destinations"`
	StartedAt    time.Time           `json:"started_at"`
	HeartbeatAt  time.Time           `json:"heartbeat_at"`
}

// Names are the set's destination names, in order.
func (s InstanceSet) Names() []string { return names(s.Destinations) }

// Record is the destination set of record: what the running instances
// serve.
type Record struct {
	// Live are the instances with a recent heartbeat, by instance.
	Live []InstanceSet
	// Gone are the others: crashed (a clean stop removes its set), or
	// unreachable from Postgres.
	Gone []InstanceSet
}

// Sets groups the live instances by the set they serve: one entry, with
// every instance, when they agree; several during a rolling change.
func (r Record) Sets() [][]InstanceSet {
	var out [][]InstanceSet
	for _, in := range r.Live {
		i := slices.IndexFunc(out, func(g []InstanceSet) bool { return g[0].Fingerprint == in.Fingerprint })
		if i < 0 {
			out = append(out, []InstanceSet{in})
		} else {
			out[i] = append(out[i], in)
		}
	}
	return out
}

// Mixed reports whether the live instances serve different sets.
func (r Record) Mixed() bool { return len(r.Sets()) > 1 }

// Served are the names some live instance serves, sorted.
func (r Record) Served() []string {
	var out []string
	for _, in := range r.Live {
		for _, d := range in.Destinations {
			if !slices.Contains(out, d.Name) {
				out = append(out, d.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Describe writes the live sets, one line each, for messages: "billing,crm
// (host-a:12, host-b:40)".
func (r Record) Describe() string {
	var lines []string
	for _, g := range r.Sets() {
		ids := make([]string, len(g))
		for i, in := range g {
			ids[i] = in.Instance
		}
		lines = append(lines, describeSet(g[0].Destinations)+" ("+strings.Join(ids, ", ")+")")
	}
	return strings.Join(lines, "; ")
}

// Record reads the destination set of record.
func (a *Admin) Record(ctx context.Context) (Record, error) {
	rows, err := a.store.InstanceDestinations(ctx, LiveWithin)
	if err != nil {
		return Record{}, err
	}
	var r Record
	for i := 0; i < len(rows); {
		j := i
		in := InstanceSet{Instance: rows[i].Instance, Fingerprint: rows[i].Fingerprint, StartedAt: rows[i].StartedAt, HeartbeatAt: rows[i].HeartbeatAt}
		for ; j < len(rows) && rows[j].Instance == rows[i].Instance; j++ {
			in.Destinations = append(in.Destinations, rows[j].Destination)
		}
		if rows[i].Live {
			r.Live = append(r.Live, in)
		} else {
			r.Gone = append(r.Gone, in)
		}
		i = j
	}
	return r, nil
}

// Source says where a Resolution's destination set comes from.
type Source string

// The sources of a destination set.
const (
	// FromRecord: what the running instances recorded.
	FromRecord Source = "record"
	// FromEnvironment: the caller's own configuration (no instance runs,
	// or --force).
	FromEnvironment Source = "environment"
)

// ResolveParams is what the caller knows of its own configuration.
type ResolveParams struct {
	// Env is the set the caller's own environment configures.
	Env []route.Destination
	// EnvSet is set when the environment names a set (DESTINATIONS or
	// SINK_URL is set) rather than falling back to the default.
	EnvSet bool
	// Force routes by Env whatever the record says.
	Force bool
}

// Resolution is the destination set a command routes by.
type Resolution struct {
	Destinations []route.Destination
	Source       Source
	// Note says why the set is not the record's, for stderr; empty when
	// it is.
	Note   string
	Record Record
}

// ErrMixedSets is returned by Resolve while the live instances serve
// different destination sets (a rolling configuration change).
var ErrMixedSets = errors.New("the running instances serve different destination sets")

// SetMismatchError is returned by Resolve when the caller's environment
// names another set than the running instances serve.
type SetMismatchError struct {
	Env, Record []route.Destination
	Instances   []string
}

func (e *SetMismatchError) Error() string {
	return fmt.Sprintf("this environment's destinations differ from those the running instances (%s) serve: %s; "+
		"unset DESTINATIONS and SINK_URL to use theirs, or give --force to route by this environment's",
		strings.Join(e.Instances, ", "), diffSets(e.Env, e.Record))
}

// Resolve decides which destination set a command routes by: the live
// instances' record; the caller's environment with Force, or when no
// instance runs (Note says so). It refuses, without Force, an environment
// that names a set the running instances do not serve (SetMismatchError),
// and live instances that disagree (ErrMixedSets).
func (a *Admin) Resolve(ctx context.Context, p ResolveParams) (Resolution, error) {
	rec, err := a.Record(ctx)
	if err != nil {
		return Resolution{}, err
	}
	res := Resolution{Record: rec}
	sets := rec.Sets()
	switch {
	case p.Force && !p.EnvSet && len(sets) > 0:
		// The environment's set would be the implicit default, which
		// the running instances do not serve: what is routed by it would
		// wait for good.
		return res, fmt.Errorf("--force routes by this environment's destinations, but it names none (set DESTINATIONS or SINK_URL); the running instances serve %s",
			rec.Describe())
	case p.Force:
		res.Destinations, res.Source = p.Env, FromEnvironment
		if len(sets) > 0 {
			res.Note = fmt.Sprintf("--force: routing by this environment's destinations (%s), not by the running instances' (%s)",
				describeSet(p.Env), rec.Describe())
		}
		return res, nil
	case len(sets) == 0:
		res.Destinations, res.Source = p.Env, FromEnvironment
		res.Note = "no running instance has recorded its destinations"
		if len(rec.Gone) > 0 {
			last := slices.MaxFunc(rec.Gone, func(x, y InstanceSet) int { return x.HeartbeatAt.Compare(y.HeartbeatAt) })
			res.Note = fmt.Sprintf("no running instance (the last heartbeat, of %s, was %s ago)", last.Instance,
				time.Since(last.HeartbeatAt).Round(time.Second))
		}
		res.Note += fmt.Sprintf("; using this environment's destinations: %s", describeSet(p.Env))
		return res, nil
	case len(sets) > 1:
		return res, fmt.Errorf("%w: %s; wait for the rollout to finish, or give --force to route by this environment's destinations (%s)",
			ErrMixedSets, rec.Describe(), describeSet(p.Env))
	}
	record := sets[0][0].Destinations
	if p.EnvSet && store.SetFingerprint(p.Env) != store.SetFingerprint(record) {
		ids := make([]string, len(sets[0]))
		for i, in := range sets[0] {
			ids[i] = in.Instance
		}
		return res, &SetMismatchError{Env: p.Env, Record: record, Instances: ids}
	}
	res.Destinations, res.Source = record, FromRecord
	return res, nil
}

// Table is the routing table of r's destinations.
func (r Resolution) Table() (*route.Table, error) { return route.NewTable(r.Destinations) }

func names(set []route.Destination) []string {
	out := make([]string, len(set))
	for i, d := range set {
		out[i] = d.Name
	}
	return out
}

// describeFilter writes a filter as DESTINATION_*_TYPES and _LIVEMODE
// take it.
func describeFilter(f route.Filter) string {
	types := "*"
	if len(f.Types) > 0 {
		types = strings.Join(f.Types, ",")
	}
	if m := f.Livemode; m != "" && m != route.Both {
		return types + " " + string(m)
	}
	return types
}

func describeSet(set []route.Destination) string {
	if len(set) == 0 {
		return "none"
	}
	return strings.Join(names(set), ",")
}

// diffSets names what differs between mine and theirs.
func diffSets(mine, theirs []route.Destination) string {
	var parts []string
	for _, d := range mine {
		i := slices.IndexFunc(theirs, func(t route.Destination) bool { return t.Name == d.Name })
		switch {
		case i < 0:
			parts = append(parts, d.Name+" is not served by them")
		case store.SetFingerprint([]route.Destination{d}) != store.SetFingerprint([]route.Destination{theirs[i]}):
			parts = append(parts, fmt.Sprintf("%s takes %s here, %s there", d.Name, describeFilter(d.Filter), describeFilter(theirs[i].Filter)))
		}
	}
	for _, t := range theirs {
		if !slices.ContainsFunc(mine, func(d route.Destination) bool { return d.Name == t.Name }) {
			parts = append(parts, t.Name+" is missing here")
		}
	}
	return fmt.Sprintf("here %s, there %s (%s)", describeSet(mine), describeSet(theirs), strings.Join(parts, "; "))
}

// Destination states in an Overview.
const (
	// StateConfigured: served by every running instance (or, with no
	// record, configured in the caller's environment).
	StateConfigured = "configured"
	// StatePartial: served by some running instances only (a rolling
	// change).
	StatePartial = "partial"
	// StateOrphaned: served by none, yet it has deliveries; pending ones
	// wait for an instance that serves it.
	StateOrphaned = "orphaned"
)

// DestinationInfo is one destination of the overview.
type DestinationInfo struct {
	store.DestinationStats
	State  string       `json:"state"`
	Filter route.Filter `json:"-"`
	// Instances are the live instances that serve it.
	Instances []string `json:"instances,omitempty"`
}

// Overview is every destination of res (the set a command routes by),
// then every other one with deliveries, with their counts (a scan of the
// deliveries: for the command line).
func (a *Admin) Overview(ctx context.Context, res Resolution) ([]DestinationInfo, error) {
	stats, err := a.store.Stats(ctx)
	if err != nil {
		return nil, err
	}
	serving := map[string][]string{}
	for _, in := range res.Record.Live {
		for _, d := range in.Destinations {
			serving[d.Name] = append(serving[d.Name], in.Instance)
		}
	}
	var out []DestinationInfo
	add := func(d route.Destination) {
		info := DestinationInfo{DestinationStats: store.DestinationStats{Name: d.Name}, State: StateConfigured, Filter: d.Filter,
			Instances: serving[d.Name]}
		if res.Source == FromRecord && len(serving[d.Name]) < len(res.Record.Live) {
			info.State = StatePartial
		}
		out = append(out, info)
	}
	for _, d := range res.Destinations {
		add(d)
	}
	if res.Source == FromRecord {
		// During a rolling change, what the other instances serve.
		for _, in := range res.Record.Live {
			for _, d := range in.Destinations {
				if !slices.ContainsFunc(out, func(o DestinationInfo) bool { return o.Name == d.Name }) {
					add(d)
				}
			}
		}
	}
	for _, s := range stats {
		if i := slices.IndexFunc(out, func(o DestinationInfo) bool { return o.Name == s.Name }); i >= 0 {
			out[i].DestinationStats = s
			continue
		}
		out = append(out, DestinationInfo{DestinationStats: s, State: StateOrphaned, Instances: serving[s.Name]})
	}
	return out, nil
}

// Backlog is one destination's undelivered work.
type Backlog = store.Backlog

// Backlogs returns the backlog (pending and dead, each counted up to
// CountCap) of every destination the running instances serve, or of
// fallback when none runs, and of every other destination with pending or
// dead deliveries; Configured marks the served ones. It reads only the
// indexes of those states: for the console, at every view.
func (a *Admin) Backlogs(ctx context.Context, fallback []string) ([]Backlog, Record, error) {
	rec, err := a.Record(ctx)
	if err != nil {
		return nil, rec, err
	}
	served := rec.Served()
	if len(served) == 0 {
		served = fallback
	}
	b, err := a.store.Backlogs(ctx, served)
	return b, rec, err
}

// Served returns the destination names the running instances serve, or
// fallback when none runs.
func (a *Admin) Served(ctx context.Context, fallback []string) ([]string, error) {
	rec, err := a.Record(ctx)
	if err != nil {
		return nil, err
	}
	if s := rec.Served(); len(s) > 0 {
		return s, nil
	}
	return fallback, nil
}

// Unserved counts the pending deliveries to destinations that no running
// instance serves (with no record at all, that fallback does not name),
// each destination's up to CountCap: they wait until an instance serves
// their destination again.
func (a *Admin) Unserved(ctx context.Context, fallback []string) (int64, error) {
	served, err := a.Served(ctx, fallback)
	if err != nil {
		return 0, err
	}
	return a.store.UnservedPending(ctx, served)
}
