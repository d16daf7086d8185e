package sink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/sinktest"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/sink"
)

// jetStream connects a test's reader to url.
func jetStream(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// createStream makes a stream taking subjects, with JetStream's default
// two-minute duplicate window.
func createStream(t *testing.T, js jetstream.JetStream, name string, subjects ...string) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("creating stream %s: %v", name, err)
	}
	return st
}

// streamMessages reads every message of st, in order.
func streamMessages(t *testing.T, st jetstream.Stream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// natsReceived turns stream messages into what the suite compares, and
// checks the headers every message must carry.
func natsReceived(t *testing.T, msgs []*jetstream.RawStreamMsg, subjectPrefix string) []sinktest.Received {
	t.Helper()
	var out []sinktest.Received
	for _, m := range msgs {
		id, typ := m.Header.Get(jetstream.MsgIDHeader), m.Header.Get(sink.HeaderEventType)
		if m.Header.Get(sink.HeaderEventID) != id || m.Header.Get(sink.HeaderLivemode) != "false" || m.Header.Get(sink.HeaderSource) != "webhook" {
			t.Errorf("message %d: headers %v, want Nats-Msg-Id = Stripe-Event-Id, livemode false, source webhook", m.Sequence, m.Header)
		}
		if want := subjectPrefix + typ; m.Subject != want {
			t.Errorf("message %d: subject %q, want %q", m.Sequence, m.Subject, want)
		}
		out = append(out, sinktest.Received{ID: id, Type: typ, Payload: m.Data})
	}
	return out
}

func TestConformanceNATS(t *testing.T) {
	t.Parallel()
	srv := testenv.StartNATS(t)
	js := jetStream(t, srv.URL())
	var st jetstream.Stream
	var prefix string
	n := 0
	sinktest.Run(t, sinktest.Harness{
		PayloadExact: true,
		DedupsByID:   true,
		New: func(t *testing.T) sink.Sink {
			n++
			prefix = fmt.Sprintf("stripe%d.", n)
			st = createStream(t, js, fmt.Sprintf("EVENTS%d", n), prefix+">")
			return openSink(t, srv.URL()+"/"+prefix+"{type}", nil)
		},
		Received: func(t *testing.T) []sinktest.Received { return natsReceived(t, streamMessages(t, st), prefix) },
	})
}

// TestNATSServerDownThenUp: a Deliver while the server is down fails; once
// it is back on the same store, Delivers succeed again without a new sink,
// and nothing acknowledged before the outage is lost.
func TestNATSServerDownThenUp(t *testing.T) {
	t.Parallel()
	srv := testenv.StartNATS(t)
	st := createStream(t, jetStream(t, srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond)), "EVENTS", "stripe.>")
	s := openSink(t, srv.URL()+"/stripe.events", nil)
	defer s.Close()
	deliver := func(id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return s.Deliver(ctx, sinktest.Event(id))
	}
	if err := deliver("evt_before"); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	// Not connected, or, where the client has not yet seen the server go
	// (a loaded machine), no acknowledgement within the call's deadline.
	if err := deliver("evt_during"); err == nil || !strings.Contains(err.Error(), "not connected") && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver while nats-server is down = %v, want \"not connected\" or the deadline", err)
	}
	srv.Start(t)
	eventually.RequireNoError(t, 15*time.Second, "a Deliver after nats-server is back", func() error { return deliver("evt_after") })
	if err := deliver("evt_during"); err != nil { // the dispatcher's retry
		t.Fatal(err)
	}

	var ids []string
	eventually.RequireNoError(t, 10*time.Second, "the stream to answer", func() error {
		_, err := st.Info(context.Background())
		return err
	})
	for _, m := range streamMessages(t, st) {
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	if got := strings.Join(ids, " "); got != "evt_before evt_after evt_during" {
		t.Fatalf("stream holds %q, want evt_before evt_after evt_during", got)
	}
}

// TestNATSCredentials: the URL's user and password reach the server; a
// wrong password fails each Deliver with an error that does not show it.
func TestNATSCredentials(t *testing.T) {
	t.Parallel()
	srv := testenv.StartNATS(t, "--user", "oncehook", "--pass", "s3cret-PASSWORD")
	host := strings.TrimPrefix(srv.URL(), "nats://")
	st := createStream(t, jetStream(t, srv.URL(), nats.UserInfo("oncehook", "s3cret-PASSWORD")), "EVENTS", "stripe.>")

	good := openSink(t, "nats://oncehook:s3cret-PASSWORD@"+host+"/stripe.events", nil)
	defer good.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := good.Deliver(ctx, sinktest.Event("evt_auth")); err != nil {
		t.Fatal(err)
	}
	if n := len(streamMessages(t, st)); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}

	bad := openSink(t, "nats://oncehook:WRONG-PASSWORD@"+host+"/stripe.events", nil)
	defer bad.Close()
	err := bad.Deliver(ctx, sinktest.Event("evt_noauth"))
	t.Logf("with a wrong password: %v", err)
	if err == nil || strings.Contains(err.Error(), "PASSWORD") || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("Deliver with a wrong password = %v, want \"not connected\" without the password", err)
	}
}

// TestNATSNoStream: a subject no stream takes is an error that says so,
// not a publish into the void.
func TestNATSNoStream(t *testing.T) {
	t.Parallel()
	srv := testenv.StartNATS(t)
	s := openSink(t, srv.URL()+"/nobody.listens", nil)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.Deliver(ctx, sinktest.Event("evt_void"))
	if err == nil || !strings.Contains(err.Error(), "stream") {
		t.Fatalf("Deliver to a subject without a stream = %v, want an error naming the stream", err)
	}
}

// TestNATSTypeMustBeSubjectTokens: an event type that is not a valid
// subject part is refused before anything is published.
func TestNATSTypeMustBeSubjectTokens(t *testing.T) {
	t.Parallel()
	s := openSink(t, "nats://"+testenv.FreeAddr(t)+"/stripe.{type}", nil)
	defer s.Close()
	for _, typ := range []string{"invoice.*", "invoice.>", "invoice paid", "invoice..paid", ".invoice", "", "in\x00voice", "zoë.paid", strings.Repeat("a", 256)} {
		ev := &event.Event{ID: "evt_bad", Type: typ, Payload: []byte(`{}`)}
		err := s.Deliver(context.Background(), ev)
		if err == nil || !strings.Contains(err.Error(), "cannot go into a NATS subject") {
			t.Errorf("type %q: %v, want a refusal", typ, err)
		}
	}
}
