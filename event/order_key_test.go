package event

import (
	"strings"
	"testing"
)

func TestKeyPathLookup(t *testing.T) {
	body := `{"id":"evt_1","object":"event","created":1700000000,
		"data":{"previous_attributes":{"id":"old","x":[1,{"id":"no"}]},
			"object":{"metadata":{"a":"}{][\"x"},"id" : "sub_123","customer":"cus_\u00e9",
				"amount":-12.5e2,"empty":"","flag":true,"nested":{"id":null},"list":["x"]}}}`
	for _, tc := range []struct{ path, want string }{
		{"data.object.id", "sub_123"},
		{"data.object.customer", "cus_é"},
		{"data.object.amount", "-12.5e2"},
		{"created", "1700000000"},
		{"data.previous_attributes.id", "old"},
		{"data.object.empty", ""},
		{"data.object.flag", ""},
		{"data.object.nested.id", ""},
		{"data.object.list", ""},
		{"data.object.missing", ""},
		{"data.object.id.deeper", ""},
		{"id.x", ""},
	} {
		p, err := ParseKeyPath(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Lookup([]byte(body)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestKeyPathEscapedNameAndUnsafeValues(t *testing.T) {
	p, _ := ParseKeyPath("data.id")
	if got := p.Lookup([]byte(`{"d\u0061ta":{"id":"k"}}`)); got != "k" {
		t.Errorf("escaped member name: %q", got)
	}
	long := strings.Repeat("x", MaxOrderKeyLen+1)
	for _, v := range []string{long, `a\u0000b`, "\xff\xfe"} {
		got := p.Lookup([]byte(`{"data":{"id":"` + v + `"}}`))
		if !strings.HasPrefix(got, "sha256:") || len(got) != 71 {
			t.Errorf("value %.20q: key %q, want a sha256 digest", v, got)
		}
	}
	for _, b := range []string{``, `[`, `{"data":`, `{"data":{"id":"unterminated`, `{"data" {"id":"k"}}`, `"x"`, `{"data":{"id":"a\qb"}}`} {
		if got := p.Lookup([]byte(b)); got != "" {
			t.Errorf("body %q: key %q, want none", b, got)
		}
	}
}

func TestParseKeyPath(t *testing.T) {
	for _, bad := range []string{"", ".", "data..id", "data.object.id.", "data object", "a.b.c.d.e.f.g.h.i", "data.$id", strings.Repeat("a", 65)} {
		if _, err := ParseKeyPath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	p, err := ParseKeyPath("data.object.customer")
	if err != nil || p.String() != "data.object.customer" || p.IsZero() {
		t.Fatalf("%v %q", err, p.String())
	}
}

func FuzzKeyPathLookup(f *testing.F) {
	f.Add([]byte(`{"data":{"object":{"id":"x"}}}`))
	f.Add([]byte(`{"data":[{"object":1}],"data":{"object":{"id":12}}}`))
	p, _ := ParseKeyPath("data.object.id")
	f.Fuzz(func(t *testing.T, b []byte) {
		k := p.Lookup(b)
		if len(k) > MaxOrderKeyLen && !strings.HasPrefix(k, "sha256:") {
			t.Fatalf("key of %d bytes", len(k))
		}
	})
}
