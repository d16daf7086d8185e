package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/redact"
)

// AMQPConfig is a RabbitMQ sink, parsed from
// amqp://user:password@host:port/VHOST?exchange=NAME[&routing_key=KEY].
type AMQPConfig struct {
	// URL is the broker's URL without exchange and routing_key: what
	// amqp091.ParseURI reads (vhost, credentials, heartbeat).
	URL string
	// Exchange is where events are published; "" is the default exchange,
	// which routes by queue name.
	Exchange string
	// RoutingKey is each message's routing key. Defaults to the event type.
	RoutingKey string
	// IdleChannels bounds the open channels kept between deliveries.
	// Defaults to 16.
	IdleChannels int
}

// amqpParams are the query parameters an AMQP sink takes.
var amqpParams = map[string]bool{"exchange": true, "routing_key": true, "heartbeat": true}

// parseAMQP reads amqp(s)://user:password@host:port/VHOST?exchange=NAME[&routing_key=KEY][&heartbeat=SECONDS].
func parseAMQP(raw string, u *url.URL) (AMQPConfig, error) {
	if u.Host == "" {
		return AMQPConfig{}, errors.New("an AMQP sink needs a host: amqp://user:password@host:5672/VHOST?exchange=NAME")
	}
	q := u.Query()
	if !q.Has("exchange") {
		return AMQPConfig{}, errors.New("an AMQP sink needs ?exchange=NAME (exchange= with no name is the default exchange)")
	}
	for k := range q {
		if !amqpParams[k] {
			return AMQPConfig{}, fmt.Errorf("an AMQP sink takes exchange, routing_key and heartbeat, not %q", k)
		}
	}
	cfg := AMQPConfig{Exchange: q.Get("exchange"), RoutingKey: q.Get("routing_key")}
	q.Del("exchange")
	q.Del("routing_key")
	u.RawQuery = q.Encode()
	cfg.URL = u.String()
	if _, err := amqp.ParseURI(cfg.URL); err != nil {
		return AMQPConfig{}, fmt.Errorf("bad AMQP address: %v", redact.Error(err, raw, cfg.URL))
	}
	return cfg, nil
}

// AMQP is a Sink that publishes each event to a RabbitMQ exchange,
// persistent and mandatory, and succeeds on the publisher confirm. A
// message the exchange cannot route (basic.return) or that the broker
// nacks is a failed attempt.
//
// One connection is shared; each publish has a channel of its own while
// it is in flight (taken from a pool), so its confirm and return are its
// own. The connection is dialled on first use and again after it closes:
// a Deliver while the broker is away fails, the next ones reconnect.
type AMQP struct {
	cfg     AMQPConfig
	dialing chan struct{} // one slot: its holder dials

	mu     sync.Mutex
	conn   *amqpConn // nil before the first dial
	closed bool
}

// errAMQPClosed answers a Deliver after Close.
var errAMQPClosed = errors.New("the RabbitMQ sink is closed")

// amqpConn is a connection and its idle channels.
type amqpConn struct {
	conn *amqp.Connection
	idle chan *amqpChannel
}

// amqpChannel is a channel in confirm mode with its notifications.
type amqpChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error
}

// NewAMQP returns the sink; it connects on the first Deliver.
func NewAMQP(cfg AMQPConfig) *AMQP {
	if cfg.IdleChannels <= 0 {
		cfg.IdleChannels = 16
	}
	return &AMQP{cfg: cfg, dialing: make(chan struct{}, 1)}
}

// Deliver publishes ev's raw body with message_id and type set to the
// event's id and type, and headers Stripe-Event-Id, Stripe-Event-Type,
// Stripe-Livemode and Oncehook-Source.
func (s *AMQP) Deliver(ctx context.Context, ev *event.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := s.cfg.RoutingKey
	if key == "" {
		key = ev.Type
	}
	headers := amqp.Table{}
	for _, h := range brokerHeaders(ev) {
		headers[h.key] = h.value
	}
	msg := amqp.Publishing{
		Headers:      headers,
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    ev.ID,
		Type:         ev.Type,
		Timestamp:    ev.Created,
		AppId:        "oncehook",
		Body:         ev.Payload,
	}
	c, err := s.connection(ctx)
	if err != nil {
		return fmt.Errorf("publishing %s: %w", ev.ID, err)
	}
	ch, err := c.channel()
	if err != nil {
		return fmt.Errorf("publishing %s: opening a channel: %w", ev.ID, err)
	}
	if err := s.publish(ctx, ch, key, msg); err != nil {
		ch.ch.Close() // it may still hold a confirm or a return
		return fmt.Errorf("publishing %s to exchange %q with routing key %q: %w", ev.ID, s.cfg.Exchange, key, err)
	}
	c.put(ch)
	return nil
}

// publish sends msg on ch and waits for its confirm.
func (s *AMQP) publish(ctx context.Context, ch *amqpChannel, key string, msg amqp.Publishing) error {
	dc, err := ch.ch.PublishWithDeferredConfirmWithContext(ctx, s.cfg.Exchange, key, true, false, msg)
	if err != nil {
		return err
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return fmt.Errorf("waiting for the publisher confirm: %w", ctx.Err())
	}
	if !dc.Acked() {
		select {
		case e, ok := <-ch.closes:
			if ok && e != nil {
				return fmt.Errorf("the broker closed the channel: %w", e)
			}
		default:
		}
		return errors.New("the broker did not confirm the message (nack or channel closed)")
	}
	// RabbitMQ sends basic.return before the confirm, and the client hands
	// both over in that order: a return for this message is here by now.
	select {
	case r, ok := <-ch.returns:
		if ok {
			return fmt.Errorf("unroutable: the broker returned it (%d %s): no queue is bound for it", r.ReplyCode, r.ReplyText)
		}
	default:
	}
	return nil
}

// connection returns the open connection, dialling one if there is none.
func (s *AMQP) connection(ctx context.Context) (*amqpConn, error) {
	if c, err := s.current(); c != nil || err != nil {
		return c, err
	}
	select {
	case s.dialing <- struct{}{}:
		defer func() { <-s.dialing }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c, err := s.current(); c != nil || err != nil {
		return c, err // another Deliver dialled meanwhile
	}
	conn, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &amqpConn{conn: conn, idle: make(chan *amqpChannel, s.cfg.IdleChannels)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		conn.Close()
		return nil, errAMQPClosed
	}
	s.conn = c
	return c, nil
}

// current is the open connection, nil if there is none.
func (s *AMQP) current() (*amqpConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errAMQPClosed
	}
	if s.conn == nil || s.conn.conn.IsClosed() {
		return nil, nil
	}
	return s.conn, nil
}

// dial opens a connection, the TCP dial and the AMQP handshake bounded by ctx.
func (s *AMQP) dial(ctx context.Context) (*amqp.Connection, error) {
	cfg := amqp.Config{Properties: amqp.NewConnectionProperties()}
	cfg.Properties.SetClientConnectionName("oncehook")
	var tcp atomic.Pointer[net.Conn]
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// The handshake's deadline; amqp091 clears it once open.
		deadline := time.Now().Add(30 * time.Second)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		_ = c.SetDeadline(deadline)
		tcp.Store(&c)
		return c, nil
	}
	stop := context.AfterFunc(ctx, func() {
		if c := tcp.Load(); c != nil {
			_ = (*c).SetDeadline(time.Unix(1, 0)) // cancelled: end the handshake
		}
	})
	conn, err := amqp.DialConfig(s.cfg.URL, cfg)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("connecting to RabbitMQ: %w", redact.Error(err, s.cfg.URL))
	}
	return conn, nil
}

// channel takes an idle channel or opens one in confirm mode.
func (c *amqpConn) channel() (*amqpChannel, error) {
	for {
		var idle *amqpChannel
		select {
		case idle = <-c.idle:
		default:
		}
		if idle == nil {
			break
		}
		if !idle.ch.IsClosed() {
			return idle, nil
		}
	}
	ch, err := c.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	return &amqpChannel{
		ch:      ch,
		returns: ch.NotifyReturn(make(chan amqp.Return, 1)),
		closes:  ch.NotifyClose(make(chan *amqp.Error, 1)),
	}, nil
}

// put keeps ch for the next publish, or closes it when the pool is full.
func (c *amqpConn) put(ch *amqpChannel) {
	select {
	case c.idle <- ch:
	default:
		ch.ch.Close()
	}
}

// Close closes the connection and its channels; every Deliver has
// already had its confirm.
func (s *AMQP) Close() error {
	s.mu.Lock()
	c := s.conn
	s.closed, s.conn = true, nil
	s.mu.Unlock()
	if c != nil && !c.conn.IsClosed() {
		if err := c.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("closing the RabbitMQ connection: %w", err)
		}
	}
	return nil
}
