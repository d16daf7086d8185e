package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The NATS scenario's stream: the receiver's destination publishes to
// NATSSubjectPrefix + "{type}", which the stream NATSStream takes.
const (
	NATSStream        = "BENCH"
	NATSSubjectPrefix = "bench."
)

// natsReader reads the stream into a tally with an ordered consumer.
type natsReader struct {
	nc   *nats.Conn
	cons jetstream.ConsumeContext
}

// startNATS connects to server (nats://host:port), creates or updates the
// stream, and tallies each message's Nats-Msg-Id from the stream's start
// (other runs' messages are skipped).
func startNATS(ctx context.Context, server string, t *brokerTally) (*natsReader, error) {
	nc, err := nats.Connect(server, nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("nats scenario: connecting to %s (is nats-server running? Debian package nats-server): %w", server, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats scenario: %w", err)
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: NATSStream, Subjects: []string{NATSSubjectPrefix + ">"}, Storage: jetstream.FileStorage,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats scenario: creating stream %s on %s (is it started with -js?): %w", NATSStream, server, err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats scenario: consumer on stream %s: %w", NATSStream, err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		at := nowNS()
		if md, err := m.Metadata(); err == nil {
			at = md.Timestamp.UnixNano() // when the stream stored it
		}
		t.add([]byte(m.Headers().Get(nats.MsgIdHdr)), at)
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats scenario: consuming stream %s: %w", NATSStream, err)
	}
	return &natsReader{nc: nc, cons: cc}, nil
}

func (r *natsReader) close() {
	r.cons.Stop()
	r.nc.Close()
}
