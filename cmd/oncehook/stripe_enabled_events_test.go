package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/route"
	"github.com/oncehook/oncehook/stripeapi"
)

func TestEnabledEvents(t *testing.T) {
	t.Parallel()
	invoiceTypes := func() []string {
		var out []string
		for _, typ := range stripeapi.EventTypes {
			if strings.HasPrefix(typ, "invoice.") {
				out = append(out, typ)
			}
		}
		return out
	}()
	if len(invoiceTypes) < 10 || !slices.Contains(invoiceTypes, "invoice.paid") {
		t.Fatalf("stripeapi.EventTypes has %d invoice.* types: %q", len(invoiceTypes), invoiceTypes)
	}
	dest := func(name string, mode route.Livemode, types ...string) route.Destination {
		return route.Destination{Name: name, Filter: route.Filter{Types: types, Livemode: mode}}
	}
	for _, tc := range []struct {
		name               string
		dests              []route.Destination
		mode               route.Livemode
		events, served     []string
		unknown, unmatched []string
	}{
		{name: "no types: every event", dests: []route.Destination{dest("default", route.Both)}, mode: route.Test,
			events: []string{"*"}, served: []string{"default"}},
		{name: "one destination takes all", dests: []route.Destination{dest("billing", "", "invoice.paid"), dest("all", route.Both, "*")}, mode: route.Both,
			events: []string{"*"}, served: []string{"billing", "all"}},
		{name: "a pattern matching every type", dests: []route.Destination{dest("all", "", "*.*")}, mode: route.Both,
			events: []string{"*"}, served: []string{"all"}},
		{name: "wildcards expand, duplicates merge",
			dests: []route.Destination{dest("billing", "", "invoice.*"), dest("crm", "", "customer.created", "invoice.paid")}, mode: route.Test,
			events: slices.Sorted(slices.Values(append(slices.Clone(invoiceTypes), "customer.created"))), served: []string{"billing", "crm"}},
		{name: "the key's mode leaves out the other mode's destinations",
			dests: []route.Destination{dest("live", route.Live, "*"), dest("crm", route.Test, "customer.created")}, mode: route.Test,
			events: []string{"customer.created"}, served: []string{"crm"}},
		{name: "no key: every mode counts",
			dests: []route.Destination{dest("live", route.Live, "charge.succeeded"), dest("crm", route.Test, "customer.created")}, mode: route.Both,
			events: []string{"charge.succeeded", "customer.created"}, served: []string{"live", "crm"}},
		{name: "no destination in the mode", dests: []route.Destination{dest("live", route.Live)}, mode: route.Test},
		{name: "unknown exact types are kept, unmatched patterns named",
			dests: []route.Destination{dest("x", "", "invoice.paid", "made_up.thing", "nothing.*")}, mode: route.Live,
			events: []string{"invoice.paid", "made_up.thing"}, served: []string{"x"}, unknown: []string{"made_up.thing"}, unmatched: []string{"nothing.*"}},
	} {
		events, served, unknown, unmatched := enabledEvents(tc.dests, tc.mode)
		if !slices.Equal(events, tc.events) || !slices.Equal(served, tc.served) || !slices.Equal(unknown, tc.unknown) || !slices.Equal(unmatched, tc.unmatched) {
			t.Errorf("%s:\n events %q, want %q\n served %q, want %q\n unknown %q, want %q\n unmatched %q, want %q",
				tc.name, events, tc.events, served, tc.served, unknown, tc.unknown, unmatched, tc.unmatched)
		}
	}
}

func TestCheckEndpointURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url, err, warning string
	}{
		{url: "https://hooks.example.com/webhooks/stripe"},
		{url: "https://hooks.example.com:8443/webhooks/stripe"},
		{url: "http://localhost:8080/webhooks/stripe"},
		{url: "http://127.0.0.1:8080/webhooks/stripe"},
		{url: "http://[::1]:8080/webhooks/stripe"},
		{url: "https://hooks.example.com/stripe", warning: `path is "/stripe", not /webhooks/stripe`},
		{url: "https://hooks.example.com", warning: `path is "", not /webhooks/stripe`},
		{url: "", err: "--url is required"},
		{url: "http://hooks.example.com/webhooks/stripe", err: "http is only for localhost"},
		{url: "ftp://hooks.example.com/webhooks/stripe", err: "want https://HOST/webhooks/stripe"},
		{url: "hooks.example.com/webhooks/stripe", err: "not an absolute URL"},
		{url: "https://user:pw@hooks.example.com/webhooks/stripe", err: "carries a user name or password"},
		{url: "https://hooks.example.com/webhooks/stripe#x", err: "fragment"},
		{url: "https://hooks.example.com/" + strings.Repeat("a", maxEndpointURL), err: "longer than 2048 bytes"},
	} {
		warning, err := checkEndpointURL(tc.url)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%.60s: %v", tc.url, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%.60s: error %v, want one containing %q", tc.url, err, tc.err)
		case tc.err != "" && strings.Contains(err.Error(), "pw@"):
			t.Errorf("%.60s: the error shows the password: %v", tc.url, err)
		case !strings.Contains(warning, tc.warning) || (tc.warning == "") != (warning == ""):
			t.Errorf("%.60s: warning %q, want %q", tc.url, warning, tc.warning)
		}
	}
}
