package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/oncehook/oncehook/reconcile"
	"github.com/oncehook/oncehook/stripeapi"
)

// eventTypeName is one Stripe event type, as the Events API's types[]
// takes it (no wildcard).
var eventTypeName = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)

// stripe reads STRIPE_API_* (see stripeAPI), RECONCILE_* but
// RECONCILE_TYPES (see eventTypes) and THIN_EVENTS.
func (e *env) stripe() stripeConfig {
	s := e.stripeAPI()
	s.ReconcileInterval = e.duration("RECONCILE_INTERVAL", 10*time.Minute, 0)
	s.ReconcileOverlap = e.duration("RECONCILE_OVERLAP", time.Hour, time.Second)
	s.ReconcileLookback = e.duration("RECONCILE_LOOKBACK", 72*time.Hour, time.Second)
	s.ReconcileAll = e.oneOf("RECONCILE_ALL", "false", "false", "true") == "true"
	s.ThinEvents = e.oneOf("THIN_EVENTS", "forward", "forward", "fetch")
	if s.ReconcileInterval > 0 && s.ReconcileInterval < time.Second {
		e.fail("RECONCILE_INTERVAL", "%s is less than 1s (0 turns the reconciler off)", s.ReconcileInterval)
	}
	if s.ReconcileLookback > reconcile.MaxLookback {
		e.fail("RECONCILE_LOOKBACK", "%s is beyond the Events API's 30 days (720h)", s.ReconcileLookback)
	}
	if s.ThinEvents == "fetch" && s.APIKey == "" {
		e.fail("THIN_EVENTS", "fetch needs STRIPE_API_KEY to read the full events")
	}
	return s
}

// stripeAPI reads STRIPE_API_KEY, STRIPE_API_BASE and STRIPE_API_VERSION.
func (e *env) stripeAPI() stripeConfig {
	s := stripeConfig{
		APIKey:     e.get("STRIPE_API_KEY"),
		APIBase:    e.str("STRIPE_API_BASE", stripeapi.DefaultBase),
		APIVersion: e.str("STRIPE_API_VERSION", stripeapi.DefaultVersion),
	}
	if u, err := url.Parse(s.APIBase); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// As stripeapi.New checks it, but with the other variables, before
		// serve connects to Postgres. The value is not shown: it may hold
		// credentials.
		e.fail("STRIPE_API_BASE", "is not an http(s) URL such as %s", stripeapi.DefaultBase)
	}
	if s.APIKey != "" && !validKeyPrefix(s.APIKey) {
		e.fail("STRIPE_API_KEY", "is not a Stripe secret or restricted key (sk_live_, sk_test_, rk_live_ or rk_test_)")
	}
	return s
}

// eventTypes reads RECONCILE_TYPES.
func (e *env) eventTypes() []string {
	types, errs := parseEventTypes(e.get("RECONCILE_TYPES"))
	for _, err := range errs {
		e.fail("RECONCILE_TYPES", "%v", err)
	}
	return types
}

// parseEventTypes reads a comma-separated list of exact event types, at
// most 20, as the Events API's types[] takes them; empty is none. Each
// error is one problem.
func parseEventTypes(v string) ([]string, []error) {
	if v == "" {
		return nil, nil
	}
	var types []string
	var errs []error
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		if !eventTypeName.MatchString(t) {
			errs = append(errs, fmt.Errorf("%q is not an event type such as invoice.paid (no wildcards: the Events API takes exact types)", t))
			continue
		}
		types = append(types, t)
	}
	if len(types) > 20 {
		errs = append(errs, fmt.Errorf("%d types; the Events API takes at most 20", len(types)))
	}
	return types, errs
}

func validKeyPrefix(key string) bool {
	for _, p := range []string{"sk_live_", "sk_test_", "rk_live_", "rk_test_"} {
		if strings.HasPrefix(key, p) && len(key) > len(p) {
			return true
		}
	}
	return false
}
