package event_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventtest"
)

// The bodies the benchmarks share with the receiver's.
const snapshotEventBody = eventtest.SnapshotBody

var largeInvoiceEvent = eventtest.LargeInvoice

// thinEventBody is a thin (v2) event as Stripe sends it.
const thinEventBody = `{"id":"evt_test_65R9Ijk8EJ0pbrYb2a816OFLCfeJ4nGxu3wLTV4Vs3Q4B1","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered","created":"2024-09-17T06:20:52.246Z","livemode":false,"context":"acct_123","related_object":{"id":"mtr_test_61R9IeRVrpGJdsRDu41LYGNX6QRNUZ7M","type":"billing.meter","url":"/v1/billing/meters/mtr_test_61R9IeRVrpGJdsRDu41LYGNX6QRNUZ7M"},"reason":null}`

var (
	snapshotCreated = time.Unix(1726554052, 0).UTC()
	thinCreated     = time.Date(2024, 9, 17, 6, 20, 52, 246_000_000, time.UTC)
)

// nested returns {"id":"evt_1","type":"t","n":[[[...]]]} whose deepest
// array is at nesting level depth (the event object is level 1).
func nested(depth int) string {
	return `{"id":"evt_1","type":"t","n":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
}

type parseEventCase struct {
	name string
	body string
	want event.Event // Payload is not compared here: it must be body itself
	err  string      // the exact error message, when Parse must fail
}

// parseEventCases are shared with FuzzParseEvent as seeds.
var parseEventCases = []parseEventCase{
	// Accepted events.
	{
		name: "snapshot pretty-printed",
		body: snapshotEventBody,
		want: event.Event{ID: "evt_3PqRsT2eZvKYlo2C1aBcDeFg", Type: "payment_intent.succeeded", Created: snapshotCreated, APIVersion: "2024-06-20"},
	},
	{
		name: "thin",
		body: thinEventBody,
		want: event.Event{ID: "evt_test_65R9Ijk8EJ0pbrYb2a816OFLCfeJ4nGxu3wLTV4Vs3Q4B1", Type: "v1.billing.meter.error_report_triggered", Created: thinCreated, Account: "acct_123", Thin: true},
	},
	{
		name: "snapshot connect account livemode",
		body: `{"id":"evt_1","object":"event","account":"acct_1Nv0FGQ9RKHgCVdK","api_version":"2023-10-16","created":1700000000,"data":{"object":{"id":"cus_1","object":"customer"}},"livemode":true,"type":"customer.created"}`,
		want: event.Event{ID: "evt_1", Type: "customer.created", Created: time.Unix(1700000000, 0).UTC(), Livemode: true, Account: "acct_1Nv0FGQ9RKHgCVdK", APIVersion: "2023-10-16"},
	},
	{
		name: "account and api_version null",
		body: `{"id":"evt_1","object":"event","account":null,"api_version":null,"created":1700000000,"livemode":null,"type":"customer.created"}`,
		want: event.Event{ID: "evt_1", Type: "customer.created", Created: time.Unix(1700000000, 0).UTC()},
	},
	{
		name: "minimal",
		body: `{"id":"evt_1","type":"ping"}`,
		want: event.Event{ID: "evt_1", Type: "ping"},
	},
	{
		name: "fields in any order after nested id and type",
		body: `{"data":{"id":"in_1","type":"nested","created":"x","object":{"id":5}},"type":"invoice.paid","created":0,"id":"evt_last"}`,
		want: event.Event{ID: "evt_last", Type: "invoice.paid", Created: time.Unix(0, 0).UTC()},
	},
	{
		name: "escapes in captured strings",
		body: `{"id":"evt\u005f1\/x","type":"inv\u006fice.paid","account":"acct \"\\\/\b\f\n\r\t \u00e9 \ud83d\ude80 \u2028","api_version":"2024-06-20\u002Ebeta"}`,
		want: event.Event{ID: "evt_1/x", Type: "invoice.paid", Account: "acct \"\\/\b\f\n\r\t é 🚀 \u2028", APIVersion: "2024-06-20.beta"},
	},
	{
		name: "escaped keys",
		body: `{"\u0069d":"evt_1","typ\u0065":"a.b","\u006fbject":"v2.core.event","c\u006fntext":"acct_9"}`,
		want: event.Event{ID: "evt_1", Type: "a.b", Account: "acct_9", Thin: true},
	},
	{
		name: "escaped object value",
		body: `{"id":"evt_1","type":"a","object":"v2\u002ecore.event"}`,
		want: event.Event{ID: "evt_1", Type: "a", Thin: true},
	},
	{
		name: "unicode type",
		body: `{"id":"evt_1","type":"tëst.ü€🚀"}`,
		want: event.Event{ID: "evt_1", Type: "tëst.ü€🚀"},
	},
	{
		name: "whitespace around and inside",
		body: " \r\n\t{ \"id\" : \"evt_1\" ,\r\n\t\"type\"\t:\n\"a\" , \"x\" : [ 1 , { } , [ ] , \"\" ] } \n\r\t ",
		want: event.Event{ID: "evt_1", Type: "a"},
	},
	{
		name: "thin account wins over context",
		body: `{"id":"evt_1","object":"v2.core.event","type":"a","account":"acct_a","context":"acct_c"}`,
		want: event.Event{ID: "evt_1", Type: "a", Account: "acct_a", Thin: true},
	},
	{
		name: "thin null account uses context",
		body: `{"id":"evt_1","context":"acct_c","object":"v2.core.event","type":"a","account":null}`,
		want: event.Event{ID: "evt_1", Type: "a", Account: "acct_c", Thin: true},
	},
	{
		name: "thin context null",
		body: `{"id":"evt_1","object":"v2.core.event","type":"a","context":null}`,
		want: event.Event{ID: "evt_1", Type: "a", Thin: true},
	},
	{
		name: "thin context not a string is ignored",
		body: `{"id":"evt_1","object":"v2.core.event","type":"a","context":{"account":"acct_1"}}`,
		want: event.Event{ID: "evt_1", Type: "a", Thin: true},
	},
	{
		name: "snapshot ignores context",
		body: `{"id":"evt_1","object":"event","type":"a","context":"acct_c"}`,
		want: event.Event{ID: "evt_1", Type: "a"},
	},
	{
		name: "object null is snapshot",
		body: `{"id":"evt_1","object":null,"type":"a"}`,
		want: event.Event{ID: "evt_1", Type: "a"},
	},
	{
		name: "created null",
		body: `{"id":"evt_1","type":"a","created":null}`,
		want: event.Event{ID: "evt_1", Type: "a"},
	},
	{
		name: "snapshot created as RFC 3339 with offset",
		body: `{"id":"evt_1","object":"event","type":"a","created":"2024-09-17T08:20:52.246+02:00"}`,
		want: event.Event{ID: "evt_1", Type: "a", Created: thinCreated},
	},
	{
		name: "thin created as unix seconds",
		body: `{"id":"evt_1","object":"v2.core.event","type":"a","created":1726554052}`,
		want: event.Event{ID: "evt_1", Type: "a", Created: snapshotCreated, Thin: true},
	},
	{
		name: "created escaped RFC 3339",
		body: `{"id":"evt_1","type":"a","created":"2024-09-17T06:20:52.246\u005a"}`,
		want: event.Event{ID: "evt_1", Type: "a", Created: thinCreated},
	},
	{
		name: "created max",
		body: `{"id":"evt_1","type":"a","created":253402300799}`,
		want: event.Event{ID: "evt_1", Type: "a", Created: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	},
	{
		name: "created minus zero",
		body: `{"id":"evt_1","type":"a","created":-0}`,
		want: event.Event{ID: "evt_1", Type: "a", Created: time.Unix(0, 0).UTC()},
	},
	{
		name: "invalid UTF-8 and lone surrogates outside captured strings",
		body: "{\"id\":\"evt_1\",\"type\":\"a\",\"data\":\"\xff\xfe\\ud800\",\"\xc3\":[\"\\udc00x\"]}",
		want: event.Event{ID: "evt_1", Type: "a"},
	},
	{
		name: "duplicate keys that are not captured",
		body: `{"id":"evt_1","data":1,"type":"a","data":2,"ID":"x","Type":"y"}`,
		want: event.Event{ID: "evt_1", Type: "a"},
	},
	{
		name: "numbers and literals",
		body: `{"id":"evt_1","type":"a","n":[0,-0,1,-1,12.5,-0.0e+0,1E9,1e-9,123456789012345678901234567890,true,false,null]}`,
		want: event.Event{ID: "evt_1", Type: "a"},
	},
	{
		name: "id and type at maximum length",
		body: `{"id":"` + strings.Repeat("e", 255) + `","type":"` + strings.Repeat("t", 255) + `"}`,
		want: event.Event{ID: strings.Repeat("e", 255), Type: strings.Repeat("t", 255)},
	},
	{
		name: "nesting 64 levels",
		body: nested(64),
		want: event.Event{ID: "evt_1", Type: "t"},
	},

	// Syntax errors.
	{name: "empty body", body: ``, err: "body is empty"},
	{name: "whitespace body", body: " \n\t", err: "body is empty"},
	{name: "not JSON", body: `hello`, err: "body is not valid JSON: unexpected 'h' at offset 0"},
	{name: "form encoded", body: `id=evt_1&type=a`, err: "body is not valid JSON: unexpected 'i' at offset 0"},
	{name: "truncated", body: snapshotEventBody[:len(snapshotEventBody)/2], err: "body is not valid JSON: unexpected end of input"},
	{name: "truncated in string", body: `{"id":"evt_`, err: "body is not valid JSON: unexpected end of input"},
	{name: "truncated in escape", body: `{"id":"evt_\u00`, err: "body is not valid JSON: unexpected end of input"},
	{name: "truncated after key", body: `{"id"`, err: "body is not valid JSON: unexpected end of input"},
	{name: "truncated literal", body: `{"id":"evt_1","type":"a","livemode":tru`, err: "body is not valid JSON: unexpected end of input"},
	{name: "unclosed object", body: `{"id":"evt_1","type":"a"`, err: "body is not valid JSON: unexpected end of input"},
	{name: "missing colon", body: `{"id" "evt_1"}`, err: `body is not valid JSON: unexpected '"' at offset 6`},
	{name: "trailing comma", body: `{"id":"evt_1",}`, err: "body is not valid JSON: unexpected '}' at offset 14"},
	{name: "trailing comma in array", body: `{"id":"evt_1","a":[1,]}`, err: "body is not valid JSON: unexpected ']' at offset 21"},
	{name: "single quotes", body: `{'id':'evt_1'}`, err: `body is not valid JSON: unexpected '\'' at offset 1`},
	{name: "bare key", body: `{id:"evt_1"}`, err: "body is not valid JSON: unexpected 'i' at offset 1"},
	{name: "mismatched bracket", body: `{"id":"evt_1","a":[1}`, err: "body is not valid JSON: unexpected '}' at offset 20"},
	{name: "mismatched brace", body: `{"id":"evt_1","a":{"b":1]}`, err: "body is not valid JSON: unexpected ']' at offset 24"},
	{name: "bad escape", body: `{"id":"evt\x1"}`, err: "body is not valid JSON: invalid escape sequence at offset 10"},
	{name: "bad unicode escape", body: `{"id":"a","x":"\u12g4"}`, err: "body is not valid JSON: invalid escape sequence at offset 15"},
	{name: "raw newline in string", body: "{\"id\":\"evt\n1\"}", err: `body is not valid JSON: control character '\n' in string at offset 10`},
	{name: "raw NUL in string", body: "{\"id\":\"a\",\"x\":\"0123456789\x00\"}", err: `body is not valid JSON: control character '\x00' in string at offset 25`},
	{name: "leading zero", body: `{"id":"evt_1","n":01}`, err: "body is not valid JSON: unexpected '1' at offset 19"},
	{name: "lone minus", body: `{"id":"evt_1","n":-}`, err: "body is not valid JSON: unexpected '}' at offset 19"},
	{name: "fraction without digits", body: `{"id":"evt_1","n":1.}`, err: "body is not valid JSON: unexpected '}' at offset 20"},
	{name: "exponent without digits", body: `{"id":"evt_1","n":1e+}`, err: "body is not valid JSON: unexpected '}' at offset 21"},
	{name: "plus sign", body: `{"id":"evt_1","n":+1}`, err: "body is not valid JSON: unexpected '+' at offset 18"},
	{name: "bad literal", body: `{"id":"evt_1","n":nul}`, err: "body is not valid JSON: unexpected '}' at offset 21"},
	{name: "capitalized literal", body: `{"id":"evt_1","n":True}`, err: "body is not valid JSON: unexpected 'T' at offset 18"},
	{name: "byte order mark", body: "\xef\xbb\xbf{}", err: "body is not valid JSON: unexpected byte 0xef at offset 0"},
	{name: "trailing garbage", body: `{"id":"evt_1","type":"a"} x`, err: "body is not valid JSON: unexpected 'x' after the end of the event at offset 26"},
	{name: "two objects", body: `{"id":"evt_1","type":"a"}{}`, err: "body is not valid JSON: unexpected '{' after the end of the event at offset 25"},
	{name: "nesting 65 levels", body: nested(65), err: "JSON nesting deeper than 64 levels"},
	{name: "nesting far too deep", body: strings.Repeat(`{"a":[`, 100000), err: "JSON nesting deeper than 64 levels"},

	// Valid JSON, not an event.
	{name: "top-level array", body: `[{"id":"evt_1","type":"a"}]`, err: "event must be a JSON object"},
	{name: "top-level string", body: `"evt_1"`, err: "event must be a JSON object"},
	{name: "top-level null", body: `null`, err: "event must be a JSON object"},
	{name: "top-level invalid array", body: `[1,`, err: "body is not valid JSON: unexpected end of input"},
	{name: "no id", body: `{"object":"event","type":"a"}`, err: "event has no id"},
	{name: "empty object", body: `{}`, err: "event has no id"},
	{name: "empty id", body: `{"id":"","type":"a"}`, err: "event id is empty"},
	{name: "id not a string", body: `{"id":123,"type":"a"}`, err: "event id must be a string"},
	{name: "id null", body: `{"id":null,"type":"a"}`, err: "event id must be a string"},
	{name: "id object", body: `{"id":{"id":"evt_1"},"type":"a"}`, err: "event id must be a string"},
	{name: "id too long", body: `{"id":"` + strings.Repeat("e", 256) + `","type":"a"}`, err: "event id is longer than 255 bytes"},
	{name: "id with space", body: `{"id":"evt 1","type":"a"}`, err: "event id must be printable ASCII without spaces, quotes or backslashes"},
	{name: "id with quote", body: `{"id":"evt\"1","type":"a"}`, err: "event id must be printable ASCII without spaces, quotes or backslashes"},
	{name: "id with NUL escape", body: `{"id":"evt_\u0000","type":"a"}`, err: "event id must be printable ASCII without spaces, quotes or backslashes"},
	{name: "id with non-ASCII", body: `{"id":"evt_é","type":"a"}`, err: "event id must be printable ASCII without spaces, quotes or backslashes"},
	{name: "id with lone surrogate", body: `{"id":"evt_\ud800","type":"a"}`, err: "event id contains an unpaired surrogate escape"},
	{name: "no type", body: `{"id":"evt_1","object":"event","created":1}`, err: "event has no type"},
	{name: "empty type", body: `{"id":"evt_1","type":""}`, err: "event type is empty"},
	{name: "type not a string", body: `{"id":"evt_1","type":["a"]}`, err: "event type must be a string"},
	{name: "type too long", body: `{"id":"evt_1","type":"` + strings.Repeat("é", 128) + `"}`, err: "event type is longer than 255 bytes"},
	{name: "type with control escape", body: `{"id":"evt_1","type":"a\nb"}`, err: "event type contains a control character"},
	{name: "type with NUL", body: `{"id":"evt_1","type":"a\u0000"}`, err: "event type contains a control character"},
	{name: "type with DEL", body: "{\"id\":\"evt_1\",\"type\":\"a\x7f\"}", err: "event type contains a control character"},
	{name: "type with C1 control", body: `{"id":"evt_1","type":"a\u0085"}`, err: "event type contains a control character"},
	{name: "type invalid UTF-8", body: "{\"id\":\"evt_1\",\"type\":\"invoice.\xff\"}", err: "event type is not valid UTF-8"},
	{name: "type truncated UTF-8", body: "{\"id\":\"evt_1\",\"type\":\"invoice.\xe2\x82\"}", err: "event type is not valid UTF-8"},
	{name: "type lone high surrogate", body: `{"id":"evt_1","type":"a\ud83d"}`, err: "event type contains an unpaired surrogate escape"},
	{name: "type lone low surrogate", body: `{"id":"evt_1","type":"a\ude00b"}`, err: "event type contains an unpaired surrogate escape"},
	{name: "type reversed surrogates", body: `{"id":"evt_1","type":"\ude00\ud83d"}`, err: "event type contains an unpaired surrogate escape"},
	{name: "type high surrogate then BMP escape", body: `{"id":"evt_1","type":"\ud83d\u0041"}`, err: "event type contains an unpaired surrogate escape"},
	{name: "unsupported object", body: `{"id":"evt_1","object":"charge","type":"a"}`, err: `unsupported object "charge"`},
	{name: "unsupported long object", body: `{"id":"evt_1","object":"` + strings.Repeat("x", 100) + `","type":"a"}`, err: `unsupported object "` + strings.Repeat("x", 64) + `"...`},
	{name: "unsupported long object cut at a rune", body: `{"id":"evt_1","object":"` + strings.Repeat("x", 63) + `éééé","type":"a"}`, err: `unsupported object "` + strings.Repeat("x", 63) + `"...`},
	{name: "unsupported escaped object", body: `{"id":"evt_1","object":"ev\u00e9nt","type":"a"}`, err: `unsupported object "evént"`},
	{name: "object not a string", body: `{"id":"evt_1","object":1,"type":"a"}`, err: "event object must be a string"},
	{name: "created float", body: `{"id":"evt_1","type":"a","created":1726554052.5}`, err: "created must be unix seconds or an RFC 3339 time"},
	{name: "created exponent", body: `{"id":"evt_1","type":"a","created":1e9}`, err: "created must be unix seconds or an RFC 3339 time"},
	{name: "created bad string", body: `{"id":"evt_1","type":"a","created":"yesterday"}`, err: "created must be unix seconds or an RFC 3339 time"},
	{name: "created empty string", body: `{"id":"evt_1","type":"a","created":""}`, err: "created must be unix seconds or an RFC 3339 time"},
	{name: "created date only", body: `{"id":"evt_1","type":"a","created":"2024-09-17"}`, err: "created must be unix seconds or an RFC 3339 time"},
	{name: "created bool", body: `{"id":"evt_1","type":"a","created":true}`, err: "created must be unix seconds or an RFC 3339 time"},
	{name: "created negative", body: `{"id":"evt_1","type":"a","created":-1}`, err: "created is out of range"},
	{name: "created too large", body: `{"id":"evt_1","type":"a","created":253402300800}`, err: "created is out of range"},
	{name: "created huge", body: `{"id":"evt_1","type":"a","created":99999999999999999999999}`, err: "created is out of range"},
	{name: "livemode string", body: `{"id":"evt_1","type":"a","livemode":"true"}`, err: "livemode must be true or false"},
	{name: "livemode number", body: `{"id":"evt_1","type":"a","livemode":1}`, err: "livemode must be true or false"},
	{name: "account number", body: `{"id":"evt_1","type":"a","account":5}`, err: "account must be a string"},
	{name: "account NUL", body: `{"id":"evt_1","type":"a","account":"acct_\u0000"}`, err: "account contains a NUL character"},
	{name: "account invalid UTF-8", body: "{\"id\":\"evt_1\",\"type\":\"a\",\"account\":\"acct_\xc0\xaf\"}", err: "account is not valid UTF-8"},
	{name: "account lone surrogate", body: `{"id":"evt_1","type":"a","account":"\udfff"}`, err: "account contains an unpaired surrogate escape"},
	{name: "thin context NUL", body: `{"id":"evt_1","object":"v2.core.event","type":"a","context":"acct\u0000"}`, err: "context contains a NUL character"},
	{name: "api_version object", body: `{"id":"evt_1","type":"a","api_version":{}}`, err: "api_version must be a string"},
	{name: "duplicate id", body: `{"id":"evt_1","type":"a","id":"evt_2"}`, err: `duplicate key "id"`},
	{name: "duplicate type", body: `{"id":"evt_1","type":"a","type":"a"}`, err: `duplicate key "type"`},
	{name: "duplicate escaped id", body: `{"id":"evt_1","type":"a","\u0069d":"evt_2"}`, err: `duplicate key "id"`},
	{name: "duplicate created", body: `{"id":"evt_1","created":1,"type":"a","created":null}`, err: `duplicate key "created"`},
	{name: "duplicate before syntax error", body: `{"id":"evt_1","id":"evt_1",`, err: "body is not valid JSON: unexpected end of input"},
}

func TestParseEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range parseEventCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(tc.body)
			got, err := event.Parse(body)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("Parse succeeded with %+v, want error %q", got, tc.err)
				}
				if err.Error() != tc.err {
					t.Errorf("error = %q, want %q", err.Error(), tc.err)
				}
				if !errors.Is(err, event.ErrInvalid) {
					t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
				}
				var ee *event.ParseError
				if !errors.As(err, &ee) {
					t.Errorf("error %T is not a *ParseError", err)
				}
				if !reflectZero(got) {
					t.Errorf("event = %+v on error, want the zero Event", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got.Payload) != len(body) || &got.Payload[0] != &body[0] {
				t.Errorf("Payload is not the body itself")
			}
			want := tc.want
			want.Payload = got.Payload
			if got.ID != want.ID || got.Type != want.Type || !got.Created.Equal(want.Created) ||
				got.Created.IsZero() != want.Created.IsZero() || got.Livemode != want.Livemode ||
				got.Account != want.Account || got.APIVersion != want.APIVersion || got.Thin != want.Thin {
				t.Errorf("Parse =\n%s\nwant\n%s", describe(got), describe(want))
			}
			if !got.Created.IsZero() && got.Created.Location() != time.UTC {
				t.Errorf("Created %v is not in UTC", got.Created)
			}
		})
	}
}

// TestParseEventUnicodeEscapes decodes every \uXXXX escape, and a sample of
// surrogate pairs, in a captured string and compares with encoding/json.
func TestParseEventUnicodeEscapes(t *testing.T) {
	t.Parallel()
	check := func(esc string, wantErr string) {
		body := []byte(`{"id":"evt_1","type":"a","account":"<` + esc + `>"}`)
		ev, err := event.Parse(body)
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Fatalf("%s: error = %v, want %q", esc, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", esc, err)
		}
		var std struct{ Account string }
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatal(err)
		}
		if ev.Account != std.Account {
			t.Fatalf("%s: Account = %q, encoding/json reads %q", esc, ev.Account, std.Account)
		}
	}
	for r := 0; r <= 0xffff; r++ {
		want := ""
		switch {
		case r == 0:
			want = "account contains a NUL character"
		case r >= 0xd800 && r <= 0xdfff:
			want = "account contains an unpaired surrogate escape"
		}
		check(fmt.Sprintf(`\u%04x`, r), want)
		check(fmt.Sprintf(`\u%04X`, r), want)
	}
	for hi := 0xd800; hi <= 0xdbff; hi += 0x3f {
		for lo := 0xdc00; lo <= 0xdfff; lo += 0x3f {
			check(fmt.Sprintf(`\u%04x\u%04X`, hi, lo), "")
		}
	}
}

func reflectZero(ev event.Event) bool {
	return ev.ID == "" && ev.Type == "" && ev.Created.IsZero() && !ev.Livemode &&
		ev.Account == "" && ev.APIVersion == "" && !ev.Thin && ev.Payload == nil
}

func describe(ev event.Event) string {
	return fmt.Sprintf("{ID:%q Type:%q Created:%v Livemode:%v Account:%q APIVersion:%q Thin:%v}",
		ev.ID, ev.Type, ev.Created, ev.Livemode, ev.Account, ev.APIVersion, ev.Thin)
}

// TestParseEventBenchBodies checks that the benchmark bodies are events
// Parse accepts and that encoding/json agrees they are valid JSON.
func TestParseEventBenchBodies(t *testing.T) {
	t.Parallel()
	for _, body := range [][]byte{[]byte(snapshotEventBody), largeInvoiceEvent(60 << 10)} {
		if !json.Valid(body) {
			t.Fatalf("benchmark body of %d bytes is not valid JSON", len(body))
		}
		ev, err := event.Parse(body)
		if err != nil {
			t.Fatalf("Parse(%d bytes): %v", len(body), err)
		}
		if ev.ID == "" || ev.Type == "" || ev.Created.IsZero() {
			t.Errorf("Parse(%d bytes) = %s", len(body), describe(ev))
		}
	}
}

// TestParseEventAllocs pins the allocation budget: one allocation holds all
// the captured strings.
func TestParseEventAllocs(t *testing.T) {
	for _, body := range []string{snapshotEventBody, thinEventBody} {
		b := []byte(body)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := event.Parse(b); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 1 {
			t.Errorf("Parse allocates %v times per call, want at most 1", allocs)
		}
	}
}

func BenchmarkParseEvent(b *testing.B) {
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"3KB", []byte(snapshotEventBody)},
		{"60KB", largeInvoiceEvent(60 << 10)},
		{"thin", []byte(thinEventBody)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				if _, err := event.Parse(bc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestPeekID(t *testing.T) {
	for _, c := range []struct {
		body, want string
		ok         bool
	}{
		{"{\n  \"id\": \"evt_1NqRb2Lk\",\n  \"object\": \"event\"}", "evt_1NqRb2Lk", true},
		{`{"id":"evt_2","object":"event"}`, "evt_2", true},
		{` { "id" : "evt_3" }`, "evt_3", true},
		{`{"object":"event","id":"evt_4"}`, "", false}, // id not first: Parse reads it
		{`{"id":"evt_\u0035"}`, "", false},             // escapes
		{`{"id":"evt 6"}`, "", false},
		{`{"id":""}`, "", false},
		{`{"id":123}`, "", false},
		{`{"id":"evt_7`, "", false},
		{`{"idx":"evt_8"}`, "", false},
		{`["id","evt_9"]`, "", false},
		{`{"id":"` + strings.Repeat("x", 256) + `"}`, "", false},
		{"", "", false},
	} {
		id, ok := event.PeekID([]byte(c.body))
		if ok != c.ok || string(id) != c.want {
			t.Errorf("PeekID(%q) = %q, %v; want %q, %v", c.body, id, ok, c.want, c.ok)
		}
	}
}
