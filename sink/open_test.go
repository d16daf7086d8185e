package sink_test

import (
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
