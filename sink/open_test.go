package sink_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/sink"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"stdout":                                  "stdout",
		"file:///var/log/events.jsonl":            "file",
		"http://app.internal:8000/stripe":         "http",
		"https://app.example.com/hooks":           "https",
		"redis://cache:6379/0?stream=stripe":      "redis",
		"rediss://cache:6380/1?stream=s&maxlen=5": "rediss",
		"file://host/x":                           "absolute path",
		"file:":                                   "absolute path",
		"http:///nohost":                          "needs a host",
		"redis://cache:6379/0":                    "stream=NAME",
		"redis://cache:6379/0?stream=s&maxlen=0":  "maxlen",
		"redis://cache:6379/x?stream=s":           "bad Redis address",
		"kafka://broker/topic":                    "unsupported scheme",
		"%zz":                                     "not a URL",
	} {
		target, err := sink.ParseURL(raw)
		got := target.Scheme
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("ParseURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestStandardWebhooksSecret(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "secret", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := sink.NewStandardWebhooksSigner(s); err == nil {
			t.Errorf("NewStandardWebhooksSigner(%q): want error", s)
		}
	}
	if _, err := sink.NewStandardWebhooksSigner(sinkSecret); err != nil {
		t.Fatal(err)
	}
}

// TestParseURLErrorsRedactURL: SINK_URL errors are printed at start; they
// name what is wrong without the URL's password or query values.
func TestParseURLErrorsRedactURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"redis://:PASSWORDVALUE@cache:6379/0?stream=s&dial_timeout=SECRETVALUE":     "dial_timeout",
		"redis://u:PASSWORDVALUE@cache:6379/0?stream=s&read_timeout=SECRETVALUE%21": "read_timeout",
		"rediss://:PASSWORDVALUE@cache:6379/0?stream=s&pool_size=SECRETVALUE":       "pool_size",
		"redis://:PASSWORDVALUE@cache:6379/x?stream=SECRETVALUE":                    "database number",
		"http://u:PASSWORDVALUE@/nohost?token=SECRETVALUE":                          "needs a host",
		"redis://:PASSWORDVALUE@cache:6379/%zz?token=SECRETVALUE":                   "not a URL",
	} {
		_, err := sink.ParseURL(raw)
		if err == nil {
			t.Errorf("ParseURL(%q): no error", raw)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "SECRETVALUE") || strings.Contains(msg, "PASSWORDVALUE") || !strings.Contains(msg, want) {
			t.Errorf("ParseURL(%q) = %q, want an error naming %q without the secrets", raw, msg, want)
		}
	}
}

// TestTargetStringIsRedacted: a Target may be logged to say which sink is
// configured, in any format, without its credentials.
func TestTargetStringIsRedacted(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"stdout":                       "stdout",
		"file:///var/log/events.jsonl": "file:///var/log/events.jsonl",
		"https://u:PASSWORDVALUE@sink.example/hook?token=SECRETVALUE": "https://u:xxxxx@sink.example/hook?token=xxxxx",
		"rediss://:PASSWORDVALUE@cache:6380/1?stream=stripe&maxlen=9": "rediss://:xxxxx@cache:6380/1?stream=xxxxx&maxlen=xxxxx",
	} {
		target, err := sink.ParseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := target.String(); got != want {
			t.Errorf("Target(%q).String() = %q, want %q", raw, got, want)
		}
		var js bytes.Buffer
		slog.New(slog.NewJSONHandler(&js, nil)).Info("sink", "target", target)
		for _, out := range []string{fmt.Sprint(target), fmt.Sprintf("%+v", target), fmt.Sprintf("%#v", target), js.String()} {
			if strings.Contains(out, "VALUE") || !strings.Contains(out, want) {
				t.Errorf("Target(%q) printed as %q, want %q", raw, out, want)
			}
		}
	}
	if got := (sink.Target{}).String(); got != "" {
		t.Errorf("zero Target: %q", got)
	}
}
