package route

import (
	"slices"
	"strings"
	"testing"
)

func TestFilterMatch(t *testing.T) {
	cases := []struct {
		types    []string
		mode     Livemode
		typ      string
		livemode bool
		want     bool
	}{
		{nil, "", "invoice.paid", false, true},
		{[]string{"*"}, Both, "anything.at.all", true, true},
		{[]string{"invoice.*"}, "", "invoice.paid", false, true},
		{[]string{"invoice.*"}, "", "invoice.payment_failed", false, true},
		{[]string{"invoice.*"}, "", "invoiceitem.created", false, false},
		{[]string{"invoice.*"}, "", "customer.created", false, false},
		{[]string{"invoice.paid"}, "", "invoice.paid", false, true},
		{[]string{"invoice.paid"}, "", "invoice.paid_out", false, false},
		{[]string{"*.created"}, "", "customer.created", false, true},
		{[]string{"*.created"}, "", "customer.updated", false, false},
		{[]string{"customer.*", "invoice.*"}, "", "invoice.paid", false, true},
		{[]string{"v2.core.*"}, "", "v2.core.account.updated", false, true},
		{nil, Live, "invoice.paid", false, false},
		{nil, Live, "invoice.paid", true, true},
		{nil, Test, "invoice.paid", true, false},
		{nil, Test, "invoice.paid", false, true},
		{[]string{"a*b*c"}, "", "aXbYc", false, true},
		{[]string{"a*b*c"}, "", "aXbY", false, false},
	}
	for _, c := range cases {
		f := Filter{Types: c.types, Livemode: c.mode}
		if got := f.Match(c.typ, c.livemode); got != c.want {
			t.Errorf("%v %q: Match(%q, %v) = %v, want %v", c.types, c.mode, c.typ, c.livemode, got, c.want)
		}
	}
}

func TestGlobIsNotExponential(t *testing.T) {
	p := strings.Repeat("*a", 30) + "b"
	s := strings.Repeat("a", 5000)
	if glob(p, s) {
		t.Fatal("matched without a b")
	}
}

func TestTableMatchAndNames(t *testing.T) {
	tab, err := NewTable([]Destination{
		{Name: "billing", Filter: Filter{Types: []string{"invoice.*"}}},
		{Name: "crm", Filter: Filter{Types: []string{"customer.*"}, Livemode: Live}},
		{Name: "analytics"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := tab.Match(nil, "invoice.paid", false); !slices.Equal(got, []string{"billing", "analytics"}) {
		t.Fatalf("invoice.paid went to %v", got)
	}
	if got := tab.Match(nil, "customer.created", true); !slices.Equal(got, []string{"crm", "analytics"}) {
		t.Fatalf("live customer.created went to %v", got)
	}
	if got := tab.Match(nil, "customer.created", false); !slices.Equal(got, []string{"analytics"}) {
		t.Fatalf("test customer.created went to %v", got)
	}
}

func TestNewTableRejectsBadInput(t *testing.T) {
	for _, dests := range [][]Destination{
		{{Name: "Billing"}},
		{{Name: "a b"}},
		{{Name: ""}},
		{{Name: strings.Repeat("a", MaxNameLen+1)}},
		{{Name: "a"}, {Name: "a"}},
		{{Name: "a", Filter: Filter{Types: []string{"invoice.%"}}}},
		{{Name: "a", Filter: Filter{Types: []string{""}}}},
		{{Name: "a", Filter: Filter{Livemode: "sometimes"}}},
	} {
		if _, err := NewTable(dests); err == nil {
			t.Errorf("%+v was accepted", dests)
		}
	}
}

func TestLikePatterns(t *testing.T) {
	got := Filter{Types: []string{"invoice.*", "a_b.*"}}.LikePatterns()
	if !slices.Equal(got, []string{"invoice.%", `a\_b.%`}) {
		t.Fatalf("LikePatterns = %q", got)
	}
	if got := (Filter{}).LikePatterns(); !slices.Equal(got, []string{"%"}) {
		t.Fatalf("no types: %q", got)
	}
}
