package bench

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The RabbitMQ scenario's exchange (topic) and the queue bound to all of
// it, in the vhost of the URL given.
const (
	AMQPExchange = "bench"
	AMQPQueue    = "bench"
)

// amqpReader drains the queue into a tally.
type amqpReader struct {
	conn *amqp.Connection
	done chan struct{}
}

// startAMQP connects to url (amqp://user:password@host:port/VHOST),
// declares the exchange and the queue, and tallies each message's
// message_id as it is read (other runs' messages are skipped).
func startAMQP(_ context.Context, url string, t *brokerTally) (*amqpReader, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq scenario: connecting to %s (is rabbitmq-server running, with the vhost? Debian package rabbitmq-server): %w", redactAMQP(url), err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.ExchangeDeclare(AMQPExchange, amqp.ExchangeTopic, true, false, false, false, nil)
	}
	if err == nil {
		_, err = ch.QueueDeclare(AMQPQueue, true, false, false, false, nil)
	}
	if err == nil {
		err = ch.QueueBind(AMQPQueue, "#", AMQPExchange, false, nil)
	}
	if err == nil {
		err = ch.Qos(1000, 0, false)
	}
	var msgs <-chan amqp.Delivery
	if err == nil {
		msgs, err = ch.Consume(AMQPQueue, "", true, false, false, false, nil)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("rabbitmq scenario: exchange %s and queue %s: %w", AMQPExchange, AMQPQueue, err)
	}
	r := &amqpReader{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for m := range msgs {
			t.add([]byte(m.MessageId), nowNS())
		}
	}()
	return r, nil
}

func (r *amqpReader) close() {
	_ = r.conn.Close()
	<-r.done
}

// redactAMQP drops the password from an AMQP URL for messages.
func redactAMQP(url string) string {
	u, err := amqp.ParseURI(url)
	if err != nil {
		return "the AMQP URL"
	}
	u.Password = ""
	return u.String()
}
