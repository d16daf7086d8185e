package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/stripeapi"
)

// TestStripeConfigDefaults: without any Stripe variable the reconciler is
// off (no key), and every setting has its documented default.
func TestStripeConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(lookupFrom(minimal))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Stripe
	if s.APIKey != "" || s.APIBase != "https://api.stripe.com" ||
		s.APIVersion != stripeapi.DefaultVersion || s.APIVersion == "" ||
		s.ReconcileInterval != 10*time.Minute || s.ReconcileOverlap != time.Hour || s.ReconcileLookback != 72*time.Hour ||
		s.ReconcileAll || s.ReconcileTypes != nil || s.ThinEvents != "forward" {
		t.Fatalf("defaults: %+v", s)
	}
	client, err := stripeClient(s)
	if client != nil || err != nil {
		t.Fatalf("stripeClient without STRIPE_API_KEY: %v, %v; want no client and no error", client, err)
	}
}

// TestStripeConfigSet: every variable set to a good value is read as given.
func TestStripeConfigSet(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(lookupFrom(withMinimal(map[string]string{
		"STRIPE_API_KEY":     "rk_live_abcdef",
		"STRIPE_API_BASE":    "http://127.0.0.1:12111/",
		"STRIPE_API_VERSION": "2024-06-20",
		"RECONCILE_INTERVAL": "1s",
		"RECONCILE_OVERLAP":  "5m",
		"RECONCILE_LOOKBACK": "720h",
		"RETENTION":          "2000h", // the lookback must stay within what the ledger keeps
		"RECONCILE_ALL":      "TRUE",
		"RECONCILE_TYPES":    "invoice.paid, customer.subscription.updated ,charge.dispute.funds_withdrawn",
		"THIN_EVENTS":        "fetch",
	})))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Stripe
	if s.APIKey != "rk_live_abcdef" || s.APIBase != "http://127.0.0.1:12111/" || s.APIVersion != "2024-06-20" ||
		s.ReconcileInterval != time.Second || s.ReconcileOverlap != 5*time.Minute || s.ReconcileLookback != 720*time.Hour ||
		!s.ReconcileAll || s.ThinEvents != "fetch" ||
		strings.Join(s.ReconcileTypes, "|") != "invoice.paid|customer.subscription.updated|charge.dispute.funds_withdrawn" {
		t.Fatalf("config: %+v", s)
	}
	if client, err := stripeClient(s); client == nil || err != nil {
		t.Fatalf("stripeClient: %v, %v", client, err)
	}
	// RECONCILE_INTERVAL=0 turns the reconciler off; it is no error.
	c, err = loadConfig(lookupFrom(withMinimal(map[string]string{"STRIPE_API_KEY": "sk_test_x1", "RECONCILE_INTERVAL": "0"})))
	if err != nil || c.Stripe.ReconcileInterval != 0 {
		t.Fatalf("RECONCILE_INTERVAL=0: %v, %s", err, c.Stripe.ReconcileInterval)
	}
	// Exactly 20 types is the Events API's limit, and allowed.
	types := make([]string, 20)
	for i := range types {
		types[i] = fmt.Sprintf("type_%d.created", i)
	}
	c, err = loadConfig(lookupFrom(withMinimal(map[string]string{"RECONCILE_TYPES": strings.Join(types, ",")})))
	if err != nil || len(c.Stripe.ReconcileTypes) != 20 {
		t.Fatalf("20 types: %v, %d", err, len(c.Stripe.ReconcileTypes))
	}
}

// TestStripeConfigErrorsNameTheVariable: each bad value fails loadConfig
// with an error naming its variable, and never shows STRIPE_API_KEY's value.
func TestStripeConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	const key = "sk_test_KEYVALUE0123456789"
	types21 := make([]string, 21)
	for i := range types21 {
		types21[i] = fmt.Sprintf("type_%d.created", i)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // in the error, after "NAME: "
	}{
		{"RECONCILE_INTERVAL", map[string]string{"RECONCILE_INTERVAL": "500ms"}, "less than 1s"},
		{"RECONCILE_INTERVAL", map[string]string{"RECONCILE_INTERVAL": "-1s"}, ""},
		{"RECONCILE_INTERVAL", map[string]string{"RECONCILE_INTERVAL": "often"}, ""},
		{"RECONCILE_OVERLAP", map[string]string{"RECONCILE_OVERLAP": "-1h"}, ""},
		{"RECONCILE_OVERLAP", map[string]string{"RECONCILE_OVERLAP": "0"}, ""}, // the reconciler would take 0 as its default, 1h
		{"RECONCILE_LOOKBACK", map[string]string{"RECONCILE_LOOKBACK": "800h"}, "30 days"},
		{"RECONCILE_LOOKBACK", map[string]string{"RECONCILE_LOOKBACK": "0"}, ""},
		{"RECONCILE_TYPES", map[string]string{"RECONCILE_TYPES": "invoice.*"}, "wildcard"},
		{"RECONCILE_TYPES", map[string]string{"RECONCILE_TYPES": "*"}, "wildcard"},
		{"RECONCILE_TYPES", map[string]string{"RECONCILE_TYPES": "invoice.paid,customer"}, `"customer"`},
		{"RECONCILE_TYPES", map[string]string{"RECONCILE_TYPES": strings.Join(types21, ",")}, "21 types"},
		{"THIN_EVENTS", map[string]string{"THIN_EVENTS": "fetch"}, "STRIPE_API_KEY"},
		{"THIN_EVENTS", map[string]string{"THIN_EVENTS": "maybe", "STRIPE_API_KEY": key}, "forward, fetch"},
		{"RECONCILE_ALL", map[string]string{"RECONCILE_ALL": "yes", "STRIPE_API_KEY": key}, "false, true"},
		{"STRIPE_API_KEY", map[string]string{"STRIPE_API_KEY": "pk_live_x"}, "secret or restricted key"},
		{"STRIPE_API_KEY", map[string]string{"STRIPE_API_KEY": "pk_test_KEYVALUE0123456789"}, "secret or restricted key"},
		{"STRIPE_API_KEY", map[string]string{"STRIPE_API_KEY": "whsec_KEYVALUE0123456789"}, "secret or restricted key"},
		{"STRIPE_API_KEY", map[string]string{"STRIPE_API_KEY": "sk_live_"}, "secret or restricted key"},
		{"STRIPE_API_BASE", map[string]string{"STRIPE_API_BASE": "ftp://x", "STRIPE_API_KEY": key}, "http(s)"},
		{"STRIPE_API_BASE", map[string]string{"STRIPE_API_BASE": "api.stripe.com", "STRIPE_API_KEY": key}, "http(s)"},
	} {
		_, err := loadConfig(lookupFrom(withMinimal(tc.env)))
		if err == nil {
			t.Errorf("%v: no error", tc.env)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.name+": ") || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: want an error naming %s (with %q), got:\n%s", tc.env, tc.name, tc.want, msg)
		}
		if strings.Count(msg, "\n") != 0 {
			t.Errorf("%v: want exactly one error, got:\n%s", tc.env, msg)
		}
		for _, k := range []string{"KEYVALUE", "pk_live_x"} {
			if strings.Contains(msg, k) {
				t.Errorf("%v: the error shows the key:\n%s", tc.env, msg)
			}
		}
	}
}

// TestStripeAPIBaseAtClientStart: a bad STRIPE_API_BASE also fails at
// stripeapi.New, which serve and the reconcile command reach through
// stripeClient, with a message naming the variable.
func TestStripeAPIBaseAtClientStart(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"ftp://x", "api.stripe.com", "https://", "://nope"} {
		_, err := stripeClient(stripeConfig{APIKey: "sk_test_KEYVALUE0123", APIBase: base, APIVersion: stripeapi.DefaultVersion})
		if err == nil || !strings.Contains(err.Error(), "STRIPE_API_BASE") || strings.Contains(err.Error(), "KEYVALUE") {
			t.Errorf("STRIPE_API_BASE=%s: %v, want an error naming STRIPE_API_BASE", base, err)
		}
	}
}
