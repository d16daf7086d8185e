package main

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/pace"
	"github.com/oncehook/oncehook/route"
)

func withMinimal(extra map[string]string) map[string]string {
	env := maps.Clone(minimal)
	maps.Copy(env, extra)
	return env
}

func TestLoadDestinations(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(lookupFrom(withMinimal(map[string]string{
		"WORKERS": "8", "DELIVERY_TIMEOUT": "5s", "DELIVERY_MAX_ATTEMPTS": "10", "SINK_SIGNING_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM=",
		"DESTINATIONS":                      " billing, crm-eu ,analytics",
		"DESTINATION_BILLING_URL":           "https://billing.internal/hooks",
		"DESTINATION_BILLING_TYPES":         "invoice.*, charge.refunded",
		"DESTINATION_BILLING_LIVEMODE":      "live",
		"DESTINATION_BILLING_WORKERS":       "4",
		"DESTINATION_BILLING_TIMEOUT":       "30s",
		"DESTINATION_BILLING_MAX_ATTEMPTS":  "20",
		"DESTINATION_BILLING_ORDER_KEY":     " data.object.customer ",
		"DESTINATION_BILLING_RATE":          "100/s",
		"DESTINATION_BILLING_MAX_IN_FLIGHT": "2",
		"DESTINATION_CRM_EU_RATE":           "600/m",
		"DESTINATION_CRM_EU_URL":            "redis://cache:6379/0?stream=crm",
		"DESTINATION_CRM_EU_TYPES":          "customer.*",
		"DESTINATION_ANALYTICS_URL":         "file:///var/log/events.jsonl",
		"DESTINATION_ANALYTICS_TYPES":       "*",
	})))
	if err != nil {
		t.Fatal(err)
	}
	if got := destinationNames(c.Destinations); !slices.Equal(got, []string{"billing", "crm-eu", "analytics"}) {
		t.Fatalf("destinations %v", got)
	}
	b, crm, a := c.Destinations[0], c.Destinations[1], c.Destinations[2]
	if !slices.Equal(b.Filter.Types, []string{"invoice.*", "charge.refunded"}) || b.Filter.Livemode != route.Live ||
		b.Workers != 4 || b.Timeout != 30*time.Second || b.MaxAttempts != 20 || b.Signer == nil || b.Target.Scheme != "https" ||
		b.OrderKey.String() != "data.object.customer" || b.Rate != (pace.Rate{Count: 100, Per: time.Second}) || b.MaxInFlight != 2 {
		t.Errorf("billing: %+v", b)
	}
	if crm.Rate != (pace.Rate{Count: 600, Per: time.Minute}) || crm.MaxInFlight != 0 || !a.Rate.IsZero() {
		t.Errorf("rates: crm-eu %v, analytics %v; want 600/m and none", crm.Rate, a.Rate)
	}
	if crm.Workers != 8 || crm.Timeout != 5*time.Second || crm.MaxAttempts != 10 || crm.Signer != nil || crm.Filter.Livemode != route.Both {
		t.Errorf("crm-eu takes the global defaults and is not signed (not HTTP): %+v", crm)
	}
	if a.Filter.Types != nil || a.Target.Scheme != "file" || !a.OrderKey.IsZero() || !crm.OrderKey.IsZero() {
		t.Errorf("analytics: %+v", a)
	}
	if c.DeliveryLease != 90*time.Second {
		t.Errorf("DELIVERY_LEASE defaults to 3 × the longest timeout: %s", c.DeliveryLease)
	}
	if err := strayDestinationVars([]string{"DESTINATION_BILLING_URL=x", "DESTINATION_CRM_EU_TYPES=y", "DESTINATION_BILLING_RATE=1/s", "DESTINATION_BILLING_ORDER_KEY=z",
		"DESTINATION_BILLING_MAX_IN_FLIGHT=1", "PATH=/bin"}, c.Destinations); err != nil {
		t.Errorf("known variables reported as stray: %v", err)
	}
}

// TestDestinationConfigErrors: every bad destination setting stops the
// start with an error naming the variable and what it accepts.
func TestDestinationConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SINK_URL": "stdout", "DESTINATIONS": "a", "DESTINATION_A_URL": "stdout"}, "DESTINATIONS: set either SINK_URL (one destination, named default) or DESTINATIONS, not both"},
		{map[string]string{"DESTINATIONS": "Billing", "DESTINATION_BILLING_URL": "stdout"}, `DESTINATIONS: destination name "Billing": use lowercase letters, digits, '-' and '_'`},
		{map[string]string{"DESTINATIONS": "a,,b"}, "DESTINATIONS: a destination name is empty"},
		{map[string]string{"DESTINATIONS": "a,a", "DESTINATION_A_URL": "stdout"}, `DESTINATIONS: "a" is listed twice`},
		{map[string]string{"DESTINATIONS": "a-b,a_b", "DESTINATION_A_B_URL": "stdout"}, `DESTINATIONS: "a-b" and "a_b" both use the variables DESTINATION_A_B_*`},
		{map[string]string{"DESTINATIONS": strings.Repeat("x", 65)}, "longer than 64 characters"},
		{map[string]string{"DESTINATIONS": strings.Repeat("d,", 64) + "d"}, "DESTINATIONS: 65 destinations; at most 64"},
		{map[string]string{"DESTINATIONS": "a"}, "DESTINATION_A_URL: required for destination a"},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "ftp://x/y"}, "DESTINATION_A_URL: "},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_TYPES": "invoice.%"}, `DESTINATION_A_TYPES: event type pattern "invoice.%"`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_TYPES": "invoice.paid,,"}, "DESTINATION_A_TYPES: an event type pattern is empty"},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_LIVEMODE": "sometimes"}, `DESTINATION_A_LIVEMODE: "sometimes" is not one of live, test, both`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_SIGNING_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM="}, "DESTINATION_A_SIGNING_SECRET: only an http:// or https:// DESTINATION_A_URL is signed"},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "http://x", "DESTINATION_A_SIGNING_SECRET": "nope"}, "DESTINATION_A_SIGNING_SECRET: "},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_WORKERS": "0"}, `DESTINATION_A_WORKERS: "0" is not a whole number of at least 1`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_TIMEOUT": "soon"}, `DESTINATION_A_TIMEOUT: "soon" is not a duration`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_MAX_ATTEMPTS": "5000"}, "DESTINATION_A_MAX_ATTEMPTS: 5000 is more than 1000"},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_RATE": "fast"}, `DESTINATION_A_RATE: "fast": want deliveries per second, minute or hour, such as 50/s, 600/m or 1000/h`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_RATE": "0/s"}, `DESTINATION_A_RATE: "0/s": at least 1 delivery per period`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_RATE": "5/d"}, `DESTINATION_A_RATE: "5/d": want deliveries per second`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_RATE": "2000000/s"}, `DESTINATION_A_RATE: "2000000/s": more than 1000000 a second`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_MAX_IN_FLIGHT": "0"}, `DESTINATION_A_MAX_IN_FLIGHT: "0" is not a whole number of at least 1`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_TIMEOUT": "2m", "DELIVERY_LEASE": "1m"}, "DELIVERY_LEASE: "},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_ORDER_KEY": "data.object[0].id"}, `DESTINATION_A_ORDER_KEY: order key path "data.object[0].id": want member names`},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_ORDER_KEY": "data..id"}, "DESTINATION_A_ORDER_KEY: "},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "stdout", "DESTINATION_A_ORDER_KEY": "a.b.c.d.e.f.g.h.i"}, "DESTINATION_A_ORDER_KEY: order key path \"a.b.c.d.e.f.g.h.i\" has 9 names; at most 8; want a path in the event such as data.object.id"},
		{map[string]string{"DESTINATIONS": "a,b,c", "DESTINATION_A_URL": "stdout", "DESTINATION_B_URL": "stdout", "DESTINATION_C_URL": "stdout", "QUEUE_MAX_BYTES": "2097152"}, "QUEUE_MAX_BYTES: 2097152 shared by 3 destination(s) leaves less than MAX_BODY_BYTES"},
		{map[string]string{"DESTINATIONS": "a", "DESTINATION_A_URL": "http://u:PASSWORDVALUE@x/%zz"}, "DESTINATION_A_URL: "},
	} {
		_, err := loadConfig(lookupFrom(withMinimal(tc.env)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v\nwant an error containing %q", tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "PASSWORDVALUE") {
			t.Errorf("%v: the error shows a credential: %v", tc.env, err)
		}
	}
	err := strayDestinationVars([]string{"DESTINATION_BILING_URL=http://x", "DESTINATION_BILLING_URL=http://x"},
		[]destinationConfig{{Name: "billing"}})
	if err == nil || !strings.Contains(err.Error(), "DESTINATION_BILING_URL: no such destination setting") || strings.Contains(err.Error(), "DESTINATION_BILLING_URL") {
		t.Errorf("a misspelt destination variable: %v", err)
	}
	err = strayDestinationVars([]string{"DESTINATION_BILLING_URL=http://x"}, []destinationConfig{{Name: "default"}})
	if err == nil || !strings.Contains(err.Error(), "DESTINATION_BILLING_URL") {
		t.Errorf("a destination variable without DESTINATIONS: %v", err)
	}
}

// TestDestinationDefaultSettingsNeedDestinations: with DESTINATIONS unset,
// SINK_URL's destination is named default but takes no DESTINATION_DEFAULT_*
// setting; one set stops the start, naming it, instead of being ignored
// (an invoice.* filter that let every event through).
func TestDestinationDefaultSettingsNeedDestinations(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"DESTINATION_DEFAULT_TYPES", "DESTINATION_DEFAULT_LIVEMODE", "DESTINATION_DEFAULT_RATE", "DESTINATION_DEFAULT_URL"} {
		env := withMinimal(map[string]string{"SINK_URL": "stdout", name: "invoice.*"})
		_, err := loadConfig(lookupFrom(env))
		if err == nil || !strings.Contains(err.Error(), name+": DESTINATIONS is not set") || !strings.Contains(err.Error(), "DESTINATIONS=default") {
			t.Errorf("%s without DESTINATIONS: %v; want the start refused, naming it", name, err)
		}
		// And the environment check of serve and config says so too.
		err = strayDestinationVars([]string{"SINK_URL=stdout", name + "=invoice.*"},
			[]destinationConfig{{Name: "default", URLVar: "SINK_URL"}})
		if err == nil || !strings.Contains(err.Error(), name+": no such destination setting") {
			t.Errorf("%s without DESTINATIONS, the environment check: %v", name, err)
		}
	}
	// Listed, default is a destination like any other.
	c, err := loadConfig(lookupFrom(withMinimal(map[string]string{
		"DESTINATIONS": "default", "DESTINATION_DEFAULT_URL": "stdout", "DESTINATION_DEFAULT_TYPES": "invoice.*",
	})))
	if err != nil || len(c.Destinations) != 1 || len(c.Destinations[0].Filter.Types) != 1 || c.Destinations[0].Filter.Types[0] != "invoice.*" {
		t.Fatalf("DESTINATIONS=default with its settings: %+v, %v", c.Destinations, err)
	}
	if err := strayDestinationVars([]string{"DESTINATION_DEFAULT_URL=stdout", "DESTINATION_DEFAULT_TYPES=invoice.*"}, c.Destinations); err != nil {
		t.Fatalf("DESTINATIONS=default with its settings, the environment check: %v", err)
	}
}
