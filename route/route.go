// Package route decides which destinations an event goes to: each
// destination has a filter on the event type (with * wildcards) and on
// livemode. The intake writes one delivery row per match, and delivery
// hands the event to the same destinations, so both use one Table.
package route

import (
	"errors"
	"fmt"
	"strings"

	"github.com/oncehook/oncehook/event"
)

// DefaultName is the destination that SINK_URL configures, and the one
// every delivery of an older schema belongs to.
const DefaultName = "default"

// Livemode selects events by mode.
type Livemode string

// The livemode filters.
const (
	Both Livemode = "both"
	Live Livemode = "live"
	Test Livemode = "test"
)

// Filter selects the events a destination receives.
type Filter struct {
	// Types are event type patterns: "invoice.paid", "invoice.*", "*".
	// Empty means every type.
	Types []string
	// Livemode defaults to Both.
	Livemode Livemode
}

// Match reports whether an event of type typ and mode livemode passes f.
func (f Filter) Match(typ string, livemode bool) bool {
	switch f.Livemode {
	case Live:
		if !livemode {
			return false
		}
	case Test:
		if livemode {
			return false
		}
	}
	if len(f.Types) == 0 {
		return true
	}
	for _, p := range f.Types {
		if glob(p, typ) {
			return true
		}
	}
	return false
}

// LikePatterns returns f's type patterns as SQL LIKE patterns, escaped
// with the default backslash; nil types give "%".
func (f Filter) LikePatterns() []string {
	if len(f.Types) == 0 {
		return []string{"%"}
	}
	out := make([]string, len(f.Types))
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`, `*`, `%`)
	for i, p := range f.Types {
		out[i] = r.Replace(p)
	}
	return out
}

// LivemodeSQL returns the livemode an event must have, or nil for both.
func (f Filter) LivemodeSQL() *bool {
	switch f.Livemode {
	case Live:
		v := true
		return &v
	case Test:
		v := false
		return &v
	}
	return nil
}

// glob matches s against p, where * matches any run of characters, in
// time linear in len(p)×len(s) at worst (backtracking to the last star).
func glob(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// Destination is a named filter.
type Destination struct {
	Name   string
	Filter Filter
	// OrderKey, when set, is where its events' order key is read: the
	// deliveries of one key go one at a time, in created order.
	OrderKey event.KeyPath
}

// Table is the configured destinations, in order.
type Table struct {
	dests []Destination
}

// NewTable checks names and patterns. Names are unique, made of lowercase
// letters, digits, '-' and '_'.
func NewTable(dests []Destination) (*Table, error) {
	seen := make(map[string]bool, len(dests))
	for _, d := range dests {
		if err := ValidName(d.Name); err != nil {
			return nil, err
		}
		if seen[d.Name] {
			return nil, fmt.Errorf("destination %q is named twice", d.Name)
		}
		seen[d.Name] = true
		for _, p := range d.Filter.Types {
			if err := ValidPattern(p); err != nil {
				return nil, fmt.Errorf("destination %s: %w", d.Name, err)
			}
		}
		switch d.Filter.Livemode {
		case "", Both, Live, Test:
		default:
			return nil, fmt.Errorf("destination %s: livemode %q is not live, test or both", d.Name, d.Filter.Livemode)
		}
	}
	return &Table{dests: append([]Destination(nil), dests...)}, nil
}

// All is one destination, DefaultName, matching every event.
func All() *Table {
	return &Table{dests: []Destination{{Name: DefaultName}}}
}

// Match appends to dst the destinations an event goes to.
func (t *Table) Match(dst []string, typ string, livemode bool) []string {
	for _, d := range t.dests {
		if d.Filter.Match(typ, livemode) {
			dst = append(dst, d.Name)
		}
	}
	return dst
}

// MatchKeys is Match that also appends, for each destination, ev's order
// key there ("" when the destination is unordered or ev has no key).
func (t *Table) MatchKeys(names, keys []string, ev *event.Event) ([]string, []string) {
	for _, d := range t.dests {
		if d.Filter.Match(ev.Type, ev.Livemode) {
			names = append(names, d.Name)
			keys = append(keys, d.OrderKey.Lookup(ev.Payload))
		}
	}
	return names, keys
}

// MaxNameLen bounds a destination name.
const MaxNameLen = 64

// ValidName checks a destination name.
func ValidName(name string) error {
	if name == "" {
		return errors.New("a destination name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("destination name %.20q... is longer than %d characters", name, MaxNameLen)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("destination name %q: use lowercase letters, digits, '-' and '_'", name)
		}
	}
	return nil
}

// ValidPattern checks an event type pattern: letters, digits, '.', '_'
// and '*'.
func ValidPattern(p string) error {
	if p == "" {
		return errors.New("an event type pattern is empty")
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '*') {
			return fmt.Errorf("event type pattern %q: use letters, digits, '.', '_' and '*' (as in invoice.*)", p)
		}
	}
	return nil
}
