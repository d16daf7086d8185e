package sink_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/sinktest"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/sink"
)

// rabbitChannel opens a test's own channel on the vhost at rawURL.
func rabbitChannel(t *testing.T, rawURL string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(rawURL)
	if err != nil {
		t.Fatalf("connecting to RabbitMQ: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// declareBound declares a durable exchange of kind and a durable queue
// bound to it with key.
func declareBound(t *testing.T, ch *amqp.Channel, exchange, kind, queue, key string) {
	t.Helper()
	if err := ch.ExchangeDeclare(exchange, kind, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, key, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
}

// drain takes every message off queue, checking the properties and
// headers each must carry; routingKey "" stands for the event type.
func drain(t *testing.T, ch *amqp.Channel, queue, routingKey string) []sinktest.Received {
	t.Helper()
	var out []sinktest.Received
	for {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get from %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		wantKey := routingKey
		if wantKey == "" {
			wantKey = m.Type
		}
		if m.DeliveryMode != amqp.Persistent || m.ContentType != "application/json" ||
			m.Headers[sink.HeaderEventID] != m.MessageId || m.Headers[sink.HeaderEventType] != m.Type ||
			m.Headers[sink.HeaderLivemode] != "false" || m.Headers[sink.HeaderSource] != "webhook" || m.RoutingKey != wantKey {
			t.Errorf("message %s: delivery mode %d, content type %q, routing key %q, headers %v; want persistent JSON routed by %q, headers matching message_id and type",
				m.MessageId, m.DeliveryMode, m.ContentType, m.RoutingKey, m.Headers, wantKey)
		}
		out = append(out, sinktest.Received{ID: m.MessageId, Type: m.Type, Payload: m.Body})
	}
}

func TestConformanceAMQP(t *testing.T) {
	t.Parallel()
	_, base := testenv.RabbitMQVhost(t)
	reader := rabbitChannel(t, base)
	var queue string
	n := 0
	sinktest.Run(t, sinktest.Harness{
		PayloadExact: true,
		New: func(t *testing.T) sink.Sink {
			n++
			exchange := fmt.Sprintf("stripe%d", n)
			queue = fmt.Sprintf("events%d", n)
			declareBound(t, reader, exchange, "topic", queue, "#")
			return openSink(t, base+"?exchange="+exchange, nil)
		},
		Received: func(t *testing.T) []sinktest.Received { return drain(t, reader, queue, "") },
	})
}

// TestAMQPRefusals: an unroutable message (basic.return) and an exchange
// that does not exist are failed attempts, and the sink goes on working.
func TestAMQPRefusals(t *testing.T) {
	t.Parallel()
	_, base := testenv.RabbitMQVhost(t)
	reader := rabbitChannel(t, base)
	declareBound(t, reader, "stripe", "direct", "events", "bound")
	deliver := func(s sink.Sink, id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.Deliver(ctx, sinktest.Event(id))
	}

	unbound := openSink(t, base+"?exchange=stripe&routing_key=nowhere", nil)
	defer unbound.Close()
	for range 2 { // the second on the channel the first one left
		if err := deliver(unbound, "evt_unroutable"); err == nil || !strings.Contains(err.Error(), "unroutable") {
			t.Fatalf("Deliver of an unroutable message = %v, want an error naming it unroutable", err)
		}
	}

	missing := openSink(t, base+"?exchange=no-such-exchange", nil)
	defer missing.Close()
	if err := deliver(missing, "evt_noexchange"); err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Fatalf("Deliver to a missing exchange = %v, want NOT_FOUND", err)
	}

	bound := openSink(t, base+"?exchange=stripe&routing_key=bound", nil)
	defer bound.Close()
	if err := deliver(bound, "evt_routed"); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, reader, "events", "bound"); len(got) != 1 || got[0].ID != "evt_routed" {
		t.Fatalf("queue holds %+v, want evt_routed alone", got)
	}

	direct := openSink(t, base+"?exchange=&routing_key=events", nil) // the default exchange routes by queue name
	defer direct.Close()
	if err := deliver(direct, "evt_direct"); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, reader, "events", "events"); len(got) != 1 || got[0].ID != "evt_direct" {
		t.Fatalf("queue holds %+v, want evt_direct alone", got)
	}
}

// TestAMQPBrokerAwayThenBack: the broker closes the sink's connection and
// refuses new ones (its permissions on the vhost are cleared: the system
// RabbitMQ is shared, so it is not restarted). A Deliver meanwhile fails;
// once the vhost is back, Delivers reconnect and succeed, and nothing
// confirmed is lost.
func TestAMQPBrokerAwayThenBack(t *testing.T) {
	t.Parallel()
	vhost, base := testenv.RabbitMQVhost(t)
	declareBound(t, rabbitChannel(t, base), "stripe", "topic", "events", "#")
	s := openSink(t, base+"?exchange=stripe", nil)
	defer s.Close()
	deliver := func(id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.Deliver(ctx, sinktest.Event(id))
	}
	if err := deliver("evt_before"); err != nil {
		t.Fatal(err)
	}

	testenv.RabbitMQCutOff(t, vhost)
	err := deliver("evt_during")
	t.Logf("while cut off: %v", err)
	if err == nil {
		t.Fatal("Deliver while the broker refuses the vhost: want an error")
	}
	testenv.RabbitMQGrant(t, vhost)
	eventually.RequireNoError(t, 15*time.Second, "a Deliver after the broker is back", func() error { return deliver("evt_after") })
	if err := deliver("evt_during"); err != nil { // the dispatcher's retry
		t.Fatal(err)
	}

	var ids []string
	for _, r := range drain(t, rabbitChannel(t, base), "events", "") {
		ids = append(ids, r.ID)
	}
	if got := strings.Join(ids, " "); got != "evt_before evt_after evt_during" {
		t.Fatalf("queue holds %q, want evt_before evt_after evt_during", got)
	}
}

// TestAMQPWrongPassword: the broker's refusal names the problem without
// the password.
func TestAMQPWrongPassword(t *testing.T) {
	t.Parallel()
	s := openSink(t, "amqp://guest:WRONG-PASSWORD@"+testenv.RabbitMQAddr+"/"+url.PathEscape("/")+"?exchange=x", nil)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.Deliver(ctx, sinktest.Event("evt_noauth"))
	t.Logf("with a wrong password: %v", err)
	if err == nil || strings.Contains(err.Error(), "WRONG-PASSWORD") {
		t.Fatalf("Deliver with a wrong password = %v, want an error without the password", err)
	}
}
