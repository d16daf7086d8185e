package sink

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/redact"
)

// DefaultStreamMaxLen bounds a Redis stream sink when the URL sets no maxlen.
const DefaultStreamMaxLen = 1_000_000

// Target is a parsed SINK_URL: stdout, file:///path, http(s)://...,
// redis://host:port/db?stream=NAME[&maxlen=N],
// nats://[user:password@]host:port/SUBJECT,
// amqp://user:password@host:port/VHOST?exchange=NAME[&routing_key=KEY] or
// kafka://host:port[,host:port…]/TOPIC.
type Target struct {
	Scheme string // "stdout", "file", "http", "https", "redis"/"rediss", "nats", "amqp"/"amqps" or "kafka"
	raw    string
	path   string
	redis  *redis.Options
	stream string
	maxLen int64
	nats   NATSConfig
	amqp   AMQPConfig
	kafka  KafkaConfig
}

// ParseURL checks raw without opening anything. Its errors never show raw's
// password or query values.
func ParseURL(raw string) (Target, error) {
	if raw == "stdout" {
		return Target{Scheme: "stdout", raw: raw}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, errors.New("not a URL")
	}
	t := Target{Scheme: u.Scheme, raw: raw}
	switch u.Scheme {
	case "file":
		if u.Path == "" || u.Host != "" {
			return Target{}, errors.New("a file sink needs an absolute path: file:///path/to/events.jsonl")
		}
		t.path = u.Path
	case "http", "https":
		if u.Host == "" {
			return Target{}, fmt.Errorf("an %s sink needs a host", u.Scheme)
		}
	case "redis", "rediss":
		q := u.Query()
		t.stream = q.Get("stream")
		if t.stream == "" {
			return Target{}, errors.New("a Redis sink needs ?stream=NAME")
		}
		t.maxLen = DefaultStreamMaxLen
		if m := q.Get("maxlen"); m != "" {
			if t.maxLen, err = strconv.ParseInt(m, 10, 64); err != nil || t.maxLen < 1 {
				return Target{}, errors.New("maxlen must be a positive whole number")
			}
		}
		q.Del("stream")
		q.Del("maxlen")
		u.RawQuery = q.Encode()
		if t.redis, err = redis.ParseURL(u.String()); err != nil {
			// go-redis quotes option values and may quote the URL.
			return Target{}, fmt.Errorf("bad Redis address: %v", redact.Error(err, raw, u.String()))
		}
	case "nats":
		t.nats, err = parseNATS(u)
	case "amqp", "amqps":
		t.amqp, err = parseAMQP(raw, u)
	case "kafka":
		t.kafka, err = parseKafka(u)
	default:
		return Target{}, fmt.Errorf("unsupported scheme %q: use stdout, file://, http://, https://, redis://, nats://, amqp:// or kafka://", u.Scheme)
	}
	if err != nil {
		return Target{}, err
	}
	return t, nil
}

// String returns the URL with its password and query values replaced
// (redact.URL), to show which sink is configured; "" for the zero Target.
func (t Target) String() string {
	return redact.URL(t.raw)
}

// GoString keeps %#v from printing the unredacted URL.
func (t Target) GoString() string {
	return "sink.Target(" + strconv.Quote(t.String()) + ")"
}

// LogValue logs t as String does.
func (t Target) LogValue() slog.Value {
	return slog.StringValue(t.String())
}

// Open makes the Sink. signer is used by HTTP sinks only and may be nil.
func (t Target) Open(signer *StandardWebhooksSigner) (Sink, error) {
	switch t.Scheme {
	case "stdout":
		return NewWriter(os.Stdout), nil
	case "file":
		return OpenFile(t.path)
	case "http", "https":
		return NewHTTP(t.raw, signer), nil
	case "redis", "rediss":
		opt := *t.redis
		opt.ContextTimeoutEnabled = true // DELIVERY_TIMEOUT bounds each XADD
		opt.MaxRetries = -1              // a failed XADD is retried by the dispatcher
		return NewRedisStream(redis.NewClient(&opt), t.stream, t.maxLen), nil
	case "nats":
		return NewNATS(t.nats)
	case "amqp", "amqps":
		return NewAMQP(t.amqp), nil
	case "kafka":
		return NewKafka(t.kafka)
	}
	return nil, fmt.Errorf("unsupported sink %q", t.Scheme)
}
