package main

import (
	"slices"
	"strings"

	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/stripeapi"
)

// enabledEvents is a webhook endpoint's enabled_events for dests: the
// union of the types of the destinations that take events of mode
// (route.Both: all of them), listed in served. It is ["*"] when one of
// them takes every event. Stripe takes no wildcard but "*", so a pattern
// such as invoice.* becomes the known types it matches
// (stripeapi.EventTypes); an exact type stripe-go does not know is kept
// and listed in unknown; a pattern matching no known type is listed in
// unmatched.
func enabledEvents(dests []route.Destination, mode route.Livemode) (events, served, unknown, unmatched []string) {
	known := stripeapi.EventTypes
	set := map[string]bool{}
	all := false
	for _, d := range dests {
		f := d.Filter
		if mode != route.Both && f.Livemode != "" && f.Livemode != route.Both && f.Livemode != mode {
			continue
		}
		served = append(served, d.Name)
		if len(f.Types) == 0 {
			all = true
		}
		for _, p := range f.Types {
			one := route.Filter{Types: []string{p}}
			n := 0
			for _, t := range known {
				if one.Match(t, true) {
					set[t] = true
					n++
				}
			}
			switch {
			case n == len(known): // "*", "*.*"
				all = true
			case n == 0 && !strings.Contains(p, "*"):
				set[p] = true
				unknown = append(unknown, p)
			case n == 0:
				unmatched = append(unmatched, p)
			}
		}
	}
	if all {
		return []string{"*"}, served, nil, nil
	}
	for t := range set {
		events = append(events, t)
	}
	slices.Sort(events)
	return events, served, unknown, unmatched
}
