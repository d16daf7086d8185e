package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/service"
	"github.com/oncehook/oncehook/route"
)

// destinationConfig is one destination as configured.
type destinationConfig = service.Destination

// maxDestinations bounds DESTINATIONS.
const maxDestinations = 64

// destinationVar is the variable DESTINATION_<NAME>_<field>.
func destinationVar(name, field string) string {
	return "DESTINATION_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_" + field
}

// destinations reads DESTINATIONS and each one's variables, or SINK_URL as
// the one destination "default". The global WORKERS, DELIVERY_TIMEOUT,
// DELIVERY_MAX_ATTEMPTS and SINK_SIGNING_SECRET are the defaults.
func (e *env) destinations(c *config) []destinationConfig {
	list := e.get("DESTINATIONS")
	if strings.TrimSpace(list) == "" {
		// SINK_URL's destination is named default, but it takes no
		// DESTINATION_DEFAULT_* setting: one set would be ignored (a
		// _TYPES filter that filters nothing), so it stops the start.
		for _, f := range destinationFields {
			if name := destinationVar(route.DefaultName, f); e.get(name) != "" {
				e.fail(name, "DESTINATIONS is not set, so SINK_URL is the one destination and takes no DESTINATION_* setting; "+
					"to give it one, set DESTINATIONS=%s and %s instead of SINK_URL", route.DefaultName, destinationVar(route.DefaultName, "URL"))
			}
		}
		t := e.sink("SINK_URL")
		return []destinationConfig{{
			Name: route.DefaultName, URLVar: "SINK_URL", Target: t, Filter: route.Filter{Livemode: route.Both},
			Signer:  e.signer("SINK_SIGNING_SECRET", t, "SINK_URL"),
			Workers: c.Workers, Timeout: c.DeliveryTimeout, MaxAttempts: c.DeliveryMaxAttempts,
		}}
	}
	if e.get("SINK_URL") != "" {
		e.fail("DESTINATIONS", "set either SINK_URL (one destination, named default) or DESTINATIONS, not both")
		return nil
	}
	names := strings.Split(list, ",")
	if len(names) > maxDestinations {
		e.fail("DESTINATIONS", "%d destinations; at most %d (each has its own workers, queue and sweeper)", len(names), maxDestinations)
		return nil
	}
	var out []destinationConfig
	seen := map[string]string{} // variable prefix -> name
	for _, name := range names {
		name = strings.TrimSpace(name)
		if err := route.ValidName(name); err != nil {
			e.fail("DESTINATIONS", "%v; want names like billing,crm,analytics", err)
			continue
		}
		prefix := destinationVar(name, "")
		if other, ok := seen[prefix]; ok {
			if other == name {
				e.fail("DESTINATIONS", "%q is listed twice", name)
			} else {
				e.fail("DESTINATIONS", "%q and %q both use the variables %s*", other, name, prefix)
			}
			continue
		}
		seen[prefix] = name
		out = append(out, e.destination(name, c))
	}
	return out
}

func (e *env) destination(name string, c *config) destinationConfig {
	v := func(field string) string { return destinationVar(name, field) }
	d := destinationConfig{Name: name, URLVar: v("URL")}
	if e.get(d.URLVar) == "" {
		e.fail(d.URLVar, "required for destination %s: http(s)://..., redis://host:port/db?stream=NAME, file:///path or stdout", name)
	} else {
		d.Target = e.sink(d.URLVar)
	}
	if types := e.get(v("TYPES")); types != "" && strings.TrimSpace(types) != "*" {
		for _, p := range strings.Split(types, ",") {
			p = strings.TrimSpace(p)
			if err := route.ValidPattern(p); err != nil {
				e.fail(v("TYPES"), "%v; want comma-separated event types such as invoice.*,customer.created", err)
				continue
			}
			d.Filter.Types = append(d.Filter.Types, p)
		}
	}
	d.Filter.Livemode = route.Livemode(e.oneOf(v("LIVEMODE"), string(route.Both), string(route.Live), string(route.Test), string(route.Both)))
	if secret := v("SIGNING_SECRET"); e.get(secret) != "" {
		d.Signer = e.signer(secret, d.Target, d.URLVar)
	} else if d.Target.Scheme == "http" || d.Target.Scheme == "https" {
		d.Signer = e.signer("SINK_SIGNING_SECRET", d.Target, d.URLVar)
	}
	d.Workers = e.integer(v("WORKERS"), c.Workers, 1)
	d.Timeout = e.duration(v("TIMEOUT"), c.DeliveryTimeout, time.Millisecond)
	d.MaxAttempts = e.integerUpTo(v("MAX_ATTEMPTS"), c.DeliveryMaxAttempts, 1, delivery.MaxAttemptsLimit)
	if p := strings.TrimSpace(e.get(v("ORDER_KEY"))); p != "" {
		path, err := event.ParseKeyPath(p)
		if err != nil {
			e.fail(v("ORDER_KEY"), "%v; want a path in the event such as data.object.id or data.object.customer", err)
		}
		d.OrderKey = path
	}
	d.Rate = e.rate(v("RATE"))
	d.MaxInFlight = e.integer(v("MAX_IN_FLIGHT"), 0, 1)
	return d
}

// destinationFields are the settings of a destination in DESTINATIONS,
// each the variable DESTINATION_<NAME>_<field>.
var destinationFields = []string{"URL", "TYPES", "LIVEMODE", "SIGNING_SECRET", "WORKERS", "TIMEOUT", "MAX_ATTEMPTS", "ORDER_KEY", "RATE", "MAX_IN_FLIGHT"}

// strayDestinationVars names DESTINATION_* variables that belong to no
// destination in DESTINATIONS: a typo there would otherwise be ignored.
// SINK_URL's destination (DESTINATIONS unset) takes none.
func strayDestinationVars(environ []string, dests []destinationConfig) error {
	known := map[string]bool{}
	for _, d := range dests {
		if d.URLVar == "SINK_URL" {
			continue
		}
		for _, f := range destinationFields {
			known[destinationVar(d.Name, f)] = true
		}
	}
	var stray []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "DESTINATION_") && !known[name] {
			stray = append(stray, name)
		}
	}
	if len(stray) == 0 {
		return nil
	}
	names := make([]string, len(dests))
	for i, d := range dests {
		names[i] = d.Name
	}
	return fmt.Errorf("%s: no such destination setting; DESTINATIONS is %q and each destination takes _URL, _TYPES, _LIVEMODE, _SIGNING_SECRET, _WORKERS, _TIMEOUT, _MAX_ATTEMPTS, _ORDER_KEY, _RATE and _MAX_IN_FLIGHT",
		strings.Join(stray, ", "), strings.Join(names, ","))
}
