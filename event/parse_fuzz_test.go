package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/oncehook/oncehook/event"
)

// FuzzParseEvent checks Parse against encoding/json: it must accept
// only valid JSON, report syntax errors only for invalid JSON, and read the
// same top-level values encoding/json decodes. The seed corpus is the table
// of TestParseEvent plus testdata/fuzz/FuzzParseEvent.
func FuzzParseEvent(f *testing.F) {
	for _, tc := range parseEventCases {
		if len(tc.body) < 4096 {
			f.Add([]byte(tc.body))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.Parse(body)
		// The peek that answers copies of recent events never reads an id
		// that Parse would read otherwise.
		if id, ok := event.PeekID(body); ok && err == nil && string(id) != ev.ID {
			t.Fatalf("PeekID read %q, Parse %q", id, ev.ID)
		}
		valid := json.Valid(body)
		depth := maxNesting(body)

		if err != nil {
			if !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("error %q does not wrap ErrInvalid", err)
			}
			msg := err.Error()
			switch {
			case msg == "":
				t.Fatal("empty error message")
			case strings.HasPrefix(msg, "body is not valid JSON") && valid:
				t.Fatalf("Parse reports %q, but json.Valid accepts the body", msg)
			case msg == "JSON nesting deeper than 64 levels" && depth <= 64:
				t.Fatalf("Parse reports %q for nesting depth %d", msg, depth)
			case msg == "body is empty" && len(bytes.Trim(body, " \t\r\n")) != 0:
				t.Fatalf("Parse reports %q for a non-blank body", msg)
			}
			if !reflectZero(ev) {
				t.Fatalf("Parse returned %s along with error %q", describe(ev), msg)
			}
			return
		}

		if !valid {
			t.Fatalf("Parse accepted a body json.Valid rejects: %s", describe(ev))
		}
		if depth > 64 {
			t.Fatalf("Parse accepted nesting depth %d", depth)
		}
		if len(ev.Payload) != len(body) || &ev.Payload[0] != &body[0] {
			t.Fatal("Payload is not the body itself")
		}

		// What Parse read must hold its own promises...
		if ev.ID == "" || len(ev.ID) > 255 || strings.ContainsFunc(ev.ID, func(r rune) bool {
			return r < 0x21 || r > 0x7e || r == '"' || r == '\\'
		}) {
			t.Fatalf("bad id %q", ev.ID)
		}
		if ev.Type == "" || len(ev.Type) > 255 || !utf8.ValidString(ev.Type) || strings.ContainsFunc(ev.Type, func(r rune) bool {
			return r < 0x20 || (r >= 0x7f && r <= 0x9f)
		}) {
			t.Fatalf("bad type %q", ev.Type)
		}
		for _, s := range []string{ev.Account, ev.APIVersion} {
			if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("captured string %q is not valid UTF-8 without NUL", s)
			}
		}

		// ...and agree with encoding/json. A map, not a struct: struct
		// fields would also match "ID" or "Type", case-insensitively. On
		// success no captured key is duplicated, so each map entry is the
		// one value Parse read.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			t.Fatalf("json.Unmarshal of an accepted body: %v", err)
		}
		str := func(key string) (string, bool) {
			raw, ok := top[key]
			if !ok || string(raw) == "null" {
				return "", false
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatalf("%s = %s: %v", key, raw, err)
			}
			return s, true
		}
		if id, _ := str("id"); id != ev.ID {
			t.Fatalf("id = %q, encoding/json reads %q", ev.ID, id)
		}
		if typ, _ := str("type"); typ != ev.Type {
			t.Fatalf("type = %q, encoding/json reads %q", ev.Type, typ)
		}
		object, _ := str("object")
		if thin := object == "v2.core.event"; thin != ev.Thin {
			t.Fatalf("object %q, Thin = %v", object, ev.Thin)
		}
		account, ok := str("account")
		if !ok && ev.Thin {
			if raw := top["context"]; len(raw) > 0 && raw[0] == '"' {
				account, _ = str("context")
			}
		}
		if account != ev.Account {
			t.Fatalf("account = %q, encoding/json reads %q", ev.Account, account)
		}
		if version, _ := str("api_version"); version != ev.APIVersion {
			t.Fatalf("api_version = %q, encoding/json reads %q", ev.APIVersion, version)
		}
		if lm := string(top["livemode"]) == "true"; lm != ev.Livemode {
			t.Fatalf("livemode = %v, encoding/json reads %s", ev.Livemode, top["livemode"])
		}
		var created time.Time
		if raw, ok := top["created"]; ok && string(raw) != "null" {
			if raw[0] == '"' {
				s, _ := str("created")
				if created, err = time.Parse(time.RFC3339Nano, s); err != nil {
					t.Fatalf("created %s accepted, but time.Parse: %v", raw, err)
				}
			} else {
				var sec int64
				if err := json.Unmarshal(raw, &sec); err != nil {
					t.Fatalf("created %s accepted, but not an int64: %v", raw, err)
				}
				created = time.Unix(sec, 0)
			}
		}
		if !created.Equal(ev.Created) || created.IsZero() != ev.Created.IsZero() {
			t.Fatalf("created = %v, encoding/json reads %v", ev.Created, created)
		}
	})
}

// maxNesting returns the deepest nesting of objects and arrays in body,
// counting brackets outside strings; for invalid JSON it is an estimate.
func maxNesting(body []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}
