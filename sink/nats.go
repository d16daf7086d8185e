package sink

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/safetext"
)

// TypePlaceholder in a NATS subject is replaced by the event type.
const TypePlaceholder = "{type}"

// NATSConfig is a NATS JetStream sink, parsed from
// nats://[user:password@]host:port/SUBJECT.
type NATSConfig struct {
	// Server is nats://host:port, without credentials.
	Server string
	// User and Password authenticate; a user without a password is a token.
	User, Password string
	// Subject is where events are published; TypePlaceholder in it is
	// replaced by the event type. A JetStream stream must take it.
	Subject string
}

// parseNATS reads nats://[user:password@]host:port/SUBJECT.
func parseNATS(u *url.URL) (NATSConfig, error) {
	if u.Host == "" {
		return NATSConfig{}, errors.New("a NATS sink needs a host: nats://host:4222/SUBJECT")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return NATSConfig{}, errors.New("a NATS sink takes no query or fragment: nats://host:4222/SUBJECT")
	}
	cfg := NATSConfig{Server: "nats://" + u.Host, Subject: strings.TrimPrefix(u.Path, "/")}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	if err := checkSubject(cfg.Subject); err != nil {
		return NATSConfig{}, err
	}
	return cfg, nil
}

// checkSubject checks a configured subject, TypePlaceholder standing for
// one token or more: dot-separated, non-empty tokens of printable ASCII
// without the wildcards * and >, which cannot be published to.
func checkSubject(subject string) error {
	if subject == "" {
		return errors.New("a NATS sink needs a subject: nats://host:4222/SUBJECT")
	}
	s := strings.ReplaceAll(subject, TypePlaceholder, "t")
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return errors.New("the NATS subject has an empty token (a leading, trailing or doubled dot)")
		}
		for _, r := range tok {
			switch {
			case r <= ' ' || r >= 0x7f:
				return errors.New("the NATS subject may hold printable ASCII only, without spaces")
			case r == '*' || r == '>':
				return errors.New("the NATS subject may not hold the wildcards * or >: events are published to one subject")
			case r == '{' || r == '}':
				return fmt.Errorf("the NATS subject's only placeholder is %s", TypePlaceholder)
			}
		}
	}
	return nil
}

// maxTypeInSubject bounds an event type put in a subject.
const maxTypeInSubject = 255

// typeTokens checks that typ can stand in a subject as it is: Stripe's
// types ("invoice.paid", "v1.billing.meter.error_report_triggered") are
// dot-separated tokens of letters, digits and _, which NATS subjects take
// unchanged. Anything else is refused rather than escaped: a * or > would
// be a wildcard, a space would end the subject, and an escaped type would
// go to a subject no consumer expects.
func typeTokens(typ string) error {
	bad := len(typ) == 0 || len(typ) > maxTypeInSubject
	for tok := range strings.SplitSeq(typ, ".") {
		bad = bad || tok == "" || strings.IndexFunc(tok, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
		}) >= 0
	}
	if bad {
		return fmt.Errorf("event type %q cannot go into a NATS subject: it must be dot-separated tokens of letters, digits, _ and -", safetext.Clean(typ, 100))
	}
	return nil
}

// NATS is a Sink that publishes each event to JetStream and succeeds on
// the stream's acknowledgement. Nats-Msg-Id is the event id, so a resend
// inside the stream's duplicate window is dropped by JetStream.
type NATS struct {
	cfg       NATSConfig
	nc        *nats.Conn
	js        jetstream.JetStream
	closeOnce sync.Once
}

// NewNATS connects to the server in the background: it returns at once
// even when the server is down, and reconnects for as long as the sink is
// open. A publish while disconnected fails at once (nothing is buffered).
func NewNATS(cfg NATSConfig) (*NATS, error) {
	opts := []nats.Option{
		nats.Name("oncehook"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(-1),
	}
	switch {
	case cfg.Password != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.User != "":
		opts = append(opts, nats.Token(cfg.User))
	}
	nc, err := nats.Connect(cfg.Server, opts...)
	if err != nil {
		// cfg.Server holds no credentials, and nats.Connect does not show them.
		return nil, fmt.Errorf("connecting to NATS at %s: %w", cfg.Server, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream at %s: %w", cfg.Server, err)
	}
	return &NATS{cfg: cfg, nc: nc, js: js}, nil
}

// Deliver publishes ev's raw body with headers Nats-Msg-Id (the event id),
// Stripe-Event-Id, Stripe-Event-Type, Stripe-Livemode and Oncehook-Source.
// A resend that JetStream drops as a duplicate is a success.
func (s *NATS) Deliver(ctx context.Context, ev *event.Event) error {
	subject := s.cfg.Subject
	if strings.Contains(subject, TypePlaceholder) {
		if err := typeTokens(ev.Type); err != nil {
			return fmt.Errorf("publishing %s: %w", ev.ID, err)
		}
		subject = strings.ReplaceAll(subject, TypePlaceholder, ev.Type)
	}
	if !s.nc.IsConnected() {
		// Publishing now would fail with "outbound buffer limit exceeded".
		err := errors.New("not connected")
		if last := s.nc.LastError(); last != nil {
			err = fmt.Errorf("not connected: %w", last)
		}
		return fmt.Errorf("publishing %s to NATS at %s: %w", ev.ID, s.cfg.Server, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = ev.Payload
	for _, h := range brokerHeaders(ev) {
		msg.Header.Set(h.key, h.value)
	}
	if _, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.ID)); err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			err = fmt.Errorf("%w (is there a stream for this subject?)", err)
		}
		return fmt.Errorf("publishing %s to JetStream subject %s: %w", ev.ID, subject, err)
	}
	return nil
}

// Close closes the connection; every Deliver has already had its ack.
func (s *NATS) Close() error {
	s.closeOnce.Do(s.nc.Close)
	return nil
}
