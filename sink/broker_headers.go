package sink

import (
	"net/url"
	"strconv"

	"github.com/oncehook/oncehook/event"
)

// The message headers every broker sink sets, beside the broker's own id
// field (Nats-Msg-Id, AMQP message_id, Kafka record key).
const (
	HeaderEventID   = "Stripe-Event-Id"
	HeaderEventType = "Stripe-Event-Type" // as the HTTP sink
	HeaderLivemode  = "Stripe-Livemode"   // "true" or "false"
	HeaderSource    = "Oncehook-Source"   // "webhook" or "reconcile"
	// HeaderOrderKey is the delivery's order key, when its destination
	// has one (see OrderKeyHeader); the HTTP sink sends it too.
	HeaderOrderKey = "Oncehook-Order-Key"
)

// OrderKeyHeader is an order key as a header value: as it is when it is
// visible ASCII, else percent-encoded (RFC 3986), so that no key can break
// a header.
func OrderKeyHeader(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return url.PathEscape(key)
		}
	}
	return key
}

// brokerHeader is one message header.
type brokerHeader struct{ key, value string }

// brokerHeaders are the headers of ev's message, in a fixed order.
func brokerHeaders(ev *event.Event) []brokerHeader {
	source := ev.Source
	if source == "" {
		source = "webhook"
	}
	h := []brokerHeader{
		{HeaderEventID, ev.ID},
		{HeaderEventType, ev.Type},
		{HeaderLivemode, strconv.FormatBool(ev.Livemode)},
		{HeaderSource, source},
	}
	if ev.OrderKey != "" {
		h = append(h, brokerHeader{HeaderOrderKey, OrderKeyHeader(ev.OrderKey)})
	}
	return h
}
