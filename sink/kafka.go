package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/oncehook/oncehook/event"
)

// KafkaConfig is a Kafka sink, parsed from kafka://host:port[,host:port…]/TOPIC.
type KafkaConfig struct {
	// Brokers are the seed brokers, host:port each.
	Brokers []string
	// Topic is where every event goes.
	Topic string
	// Key returns an event's record key, which picks its partition.
	// Defaults to the delivery's order key (ev.OrderKey) when it has one,
	// else the event id: a key's records share a partition, in order.
	Key func(*event.Event) []byte
}

// parseKafka reads kafka://host:port[,host:port…]/TOPIC.
func parseKafka(u *url.URL) (KafkaConfig, error) {
	if u.User != nil {
		return KafkaConfig{}, errors.New("a Kafka sink takes no user or password: SASL is not supported")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return KafkaConfig{}, errors.New("a Kafka sink takes no query or fragment: kafka://host:9092[,host:9092]/TOPIC")
	}
	var cfg KafkaConfig
	for b := range strings.SplitSeq(u.Host, ",") {
		host, port, err := net.SplitHostPort(b)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return KafkaConfig{}, errors.New("a Kafka sink needs brokers as host:port, comma-separated: kafka://host:9092[,host:9092]/TOPIC")
		}
		cfg.Brokers = append(cfg.Brokers, b)
	}
	cfg.Topic = strings.TrimPrefix(u.Path, "/")
	if err := checkTopic(cfg.Topic); err != nil {
		return KafkaConfig{}, err
	}
	return cfg, nil
}

// checkTopic applies Kafka's rule for topic names: 1 to 249 of
// [a-zA-Z0-9._-], and neither "." nor "..".
func checkTopic(topic string) error {
	if topic == "" {
		return errors.New("a Kafka sink needs a topic: kafka://host:9092/TOPIC")
	}
	bad := len(topic) > 249 || topic == "." || topic == ".." || strings.IndexFunc(topic, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0
	if bad {
		return errors.New("a Kafka topic is 1 to 249 letters, digits, '.', '_' or '-' (not \".\" or \"..\")")
	}
	return nil
}

// Kafka is a Sink that produces each event as one record, with the
// idempotent producer and acks=all, and succeeds on the produce
// acknowledgement.
type Kafka struct {
	cfg       KafkaConfig
	client    *kgo.Client
	closeOnce sync.Once
}

// NewKafka makes the producer; it connects on the first Deliver. opts are
// added to the sink's own (tests shorten timeouts with them).
func NewKafka(cfg KafkaConfig, opts ...kgo.Opt) (*Kafka, error) {
	if cfg.Key == nil {
		cfg.Key = func(ev *event.Event) []byte {
			if ev.OrderKey != "" {
				return []byte(ev.OrderKey)
			}
			return []byte(ev.ID)
		}
	}
	client, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // required by the idempotent producer, which is kgo's default
		kgo.ProducerLinger(0),              // every Deliver waits for its ack: lingering only adds latency
		kgo.ClientID("oncehook"),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("Kafka producer for %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	return &Kafka{cfg: cfg, client: client}, nil
}

// Deliver produces ev's raw body as the record value, keyed by cfg.Key,
// with headers Stripe-Event-Id, Stripe-Event-Type, Stripe-Livemode and
// Oncehook-Source. When ctx ends first, the record may still be written
// later: a duplicate, which the event id lets the consumer drop.
func (s *Kafka) Deliver(ctx context.Context, ev *event.Event) error {
	rec := &kgo.Record{Key: s.cfg.Key(ev), Value: ev.Payload}
	for _, h := range brokerHeaders(ev) {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.key, Value: []byte(h.value)})
	}
	done := make(chan error, 1)
	s.client.Produce(ctx, rec, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("producing %s to topic %s: %w", ev.ID, s.cfg.Topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("producing %s to topic %s: waiting for the acknowledgement: %w", ev.ID, s.cfg.Topic, ctx.Err())
	}
}

// Close closes the producer; every Deliver has already had its ack, and
// records whose Deliver gave up are failed.
func (s *Kafka) Close() error {
	s.closeOnce.Do(s.client.Close)
	return nil
}
