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
		"kafka://broker/topic":                    "host:port",
		"mqtt://broker/topic":                     "unsupported scheme",
		"%zz":                                     "not a URL",

		"nats://nats:4222/stripe.{type}":                       "nats",
		"nats://u:p@nats:4222/stripe.events":                   "nats",
		"nats://nats:4222":                                     "needs a subject",
		"nats:///stripe":                                       "needs a host",
		"nats://nats:4222/stripe.*":                            "wildcards",
		"nats://nats:4222/stripe.>":                            "wildcards",
		"nats://nats:4222/stripe..events":                      "empty token",
		"nats://nats:4222/stripe.events.":                      "empty token",
		"nats://nats:4222/stripe%20events":                     "printable ASCII",
		"nats://nats:4222/stripe.{Type}":                       "only placeholder is {type}",
		"nats://nats:4222/stripe?stream=x":                     "no query",
		"amqp://u:p@rabbit:5672/vh?exchange=stripe":            "amqp",
		"amqps://u:p@rabbit/vh?exchange=stripe&routing_key=k":  "amqps",
		"amqp://u:p@rabbit:5672/?exchange=&routing_key=events": "amqp",
		"amqp://u:p@rabbit:5672/vh?exchange=x&heartbeat=30":    "amqp",
		"amqp://u:p@rabbit:5672/vh":                            "needs ?exchange=NAME",
		"amqp://u:p@rabbit:5672/vh?exchange=x&routingkey=k":    `not "routingkey"`,
		"amqp://u:p@rabbit:5672/vh?exchange=x&heartbeat=soon":  "bad AMQP address",
		"amqp://u:p@rabbit:notaport/vh?exchange=x":             "not a URL",
		"amqp:///vh?exchange=x":                                "needs a host",
		"kafka://k1:9092,k2:9092/stripe-events":                "kafka",
		"kafka://k1:9092/":                                     "needs a topic",
		"kafka://k1:9092,:9092/events":                         "host:port",
		"kafka://k1:9092,k2:99999/events":                      "host:port",
		"kafka://k1:9092/stripe/events":                        "1 to 249",
		"kafka://k1:9092/..":                                   "1 to 249",
		"kafka://u:p@k1:9092/events":                           "SASL",
		"kafka://k1:9092/events?acks=1":                        "no query",
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
		"amqp://u:PASSWORDVALUE@rabbit:5672/vh?exchange=x&heartbeat=SECRETVALUE":    "heartbeat",
		"amqp://u:PASSWORDVALUE@rabbit:5672/vh?routing_key=SECRETVALUE":             "exchange",
		"nats://u:PASSWORDVALUE@nats:4222/a.*?token=SECRETVALUE":                    "no query",
		"nats://u:PASSWORDVALUE@nats:4222/a.*":                                      "wildcards",
		"kafka://u:PASSWORDVALUE@k1:9092/events":                                    "SASL",
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
		"nats://u:PASSWORDVALUE@nats:4222/stripe.{type}":              "nats://u:xxxxx@nats:4222/stripe.%7Btype%7D",
		"amqp://u:PASSWORDVALUE@rabbit:5672/vh?exchange=stripe":       "amqp://u:xxxxx@rabbit:5672/vh?exchange=xxxxx",
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
