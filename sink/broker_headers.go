package sink

import (
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
)

// brokerHeader is one message header.
type brokerHeader struct{ key, value string }

// brokerHeaders are the headers of ev's message, in a fixed order.
func brokerHeaders(ev *event.Event) []brokerHeader {
	source := ev.Source
	if source == "" {
		source = "webhook"
	}
	return []brokerHeader{
		{HeaderEventID, ev.ID},
		{HeaderEventType, ev.Type},
		{HeaderLivemode, strconv.FormatBool(ev.Livemode)},
		{HeaderSource, source},
	}
}
