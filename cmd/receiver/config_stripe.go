package main

import (
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

// stripe reads STRIPE_API_* and RECONCILE_* and THIN_EVENTS.
func (e *env) stripe() stripeConfig {
	s := stripeConfig{
		APIKey:            e.get("STRIPE_API_KEY"),
		APIBase:           e.str("STRIPE_API_BASE", stripeapi.DefaultBase),
		APIVersion:        e.str("STRIPE_API_VERSION", stripeapi.DefaultVersion),
		ReconcileInterval: e.duration("RECONCILE_INTERVAL", 10*time.Minute, 0),
		ReconcileOverlap:  e.duration("RECONCILE_OVERLAP", time.Hour, time.Second),
		ReconcileLookback: e.duration("RECONCILE_LOOKBACK", 72*time.Hour, time.Second),
		ReconcileAll:      e.oneOf("RECONCILE_ALL", "false", "false", "true") == "true",
		ThinEvents:        e.oneOf("THIN_EVENTS", "forward", "forward", "fetch"),
	}
	if u, err := url.Parse(s.APIBase); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// As stripeapi.New checks it, but with the other variables, before
		// serve connects to Postgres. The value is not shown: it may hold
		// credentials.
		e.fail("STRIPE_API_BASE", "is not an http(s) URL such as %s", stripeapi.DefaultBase)
	}
	if s.ReconcileInterval > 0 && s.ReconcileInterval < time.Second {
		e.fail("RECONCILE_INTERVAL", "%s is less than 1s (0 turns the reconciler off)", s.ReconcileInterval)
	}
	if s.ReconcileLookback > reconcile.MaxLookback {
		e.fail("RECONCILE_LOOKBACK", "%s is beyond the Events API's 30 days (720h)", s.ReconcileLookback)
	}
	if v := e.get("RECONCILE_TYPES"); v != "" {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if !eventTypeName.MatchString(t) {
				e.fail("RECONCILE_TYPES", "%q is not an event type such as invoice.paid (no wildcards: the Events API takes exact types)", t)
				continue
			}
			s.ReconcileTypes = append(s.ReconcileTypes, t)
		}
		if len(s.ReconcileTypes) > 20 {
			e.fail("RECONCILE_TYPES", "%d types; the Events API takes at most 20", len(s.ReconcileTypes))
		}
	}
	if s.APIKey != "" && !validKeyPrefix(s.APIKey) {
		e.fail("STRIPE_API_KEY", "is not a Stripe secret or restricted key (sk_live_, sk_test_, rk_live_ or rk_test_)")
	}
	if s.ThinEvents == "fetch" && s.APIKey == "" {
		e.fail("THIN_EVENTS", "fetch needs STRIPE_API_KEY to read the full events")
	}
	return s
}

func validKeyPrefix(key string) bool {
	for _, p := range []string{"sk_live_", "sk_test_", "rk_live_", "rk_test_"} {
		if strings.HasPrefix(key, p) && len(key) > len(p) {
			return true
		}
	}
	return false
}
