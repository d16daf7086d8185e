package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/internal/testenv"
)

// TestSIGKILLDuringStormBrokers kills one of two receivers (the real
// binary, sharing Postgres and Redis) mid-storm, each with a NATS JetStream
// destination and a RabbitMQ destination. Every event answered 200 must end
// up on the stream and in the queue; JetStream's duplicate window
// (Nats-Msg-Id) keeps the stream at exactly once, while RabbitMQ may hold
// a second copy only of events the killed instance had accepted.
func TestSIGKILLDuringStormBrokers(t *testing.T) {
	t.Parallel()
	pool, dbURL := testDB(t)

	natsSrv := testenv.StartNATS(t)
	nc, err := nats.Connect(natsSrv.URL())
	if err != nil {
		t.Fatalf("connecting to nats-server: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "STRIPE", Subjects: []string{"stripe.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("creating stream STRIPE: %v", err)
	}

	vhost, rabbitURL := testenv.RabbitMQVhost(t)
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		t.Fatalf("connecting to RabbitMQ vhost %s: %v", vhost, err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("stripe", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("events", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("events", "#", "stripe", false, nil); err != nil {
		t.Fatal(err)
	}

	env := []string{
		"STRIPE_WEBHOOK_SECRET=" + harness.Secret,
		"DELIVERY_TIMEOUT=1s", "DELIVERY_LEASE=11s", "LOG_LEVEL=warn",
		"DESTINATIONS=jetstream,rabbit",
		"DESTINATION_JETSTREAM_URL=" + natsSrv.URL() + "/stripe.{type}",
		"DESTINATION_RABBIT_URL=" + rabbitURL + "?exchange=stripe",
		// A rate below the storm's, so that the victim holds a backlog
		// of both destinations when it dies.
		"DESTINATION_JETSTREAM_RATE=150/s", "DESTINATION_RABBIT_RATE=150/s",
	}
	addrs := []string{testenv.FreeAddr(t), testenv.FreeAddr(t)}
	victim := startProcess(t, addrs[0], dbURL, env...)
	startProcess(t, addrs[1], dbURL, env...)

	answered, victimAccepts := killMidStorm(t, victim, addrs, "evt_killbroker", 400, 6)

	// Wait until no delivery is pending: then every resend has been made.
	pending := -1
	eventually.Require(t, 45*time.Second, "every delivery to be done", func() bool {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM stripe_webhook_deliveries WHERE status <> 'delivered'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	}, func() string { return fmt.Sprintf("%d deliveries not delivered", pending) })

	onStream := map[string]int{}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		onStream[m.Header.Get(jetstream.MsgIDHeader)]++
	}
	inQueue := map[string]int{}
	for {
		m, ok, err := ch.Get("events", true)
		if err != nil {
			t.Fatalf("basic.get from events: %v", err)
		}
		if !ok {
			break
		}
		inQueue[m.MessageId]++
	}

	victimIDs := make([]string, 0, len(victimAccepts))
	for id := range victimAccepts {
		victimIDs = append(victimIDs, id)
	}
	for _, dest := range []struct {
		name   string
		got    map[string]int
		unique bool // the broker drops resends itself
	}{{"jetstream", onStream, true}, {"rabbit", inQueue, false}} {
		missing, twice := 0, 0
		for id := range answered {
			switch n := dest.got[id]; {
			case n == 0:
				missing++
			case n > 1:
				twice++
				if dest.unique {
					t.Errorf("%s: %s is there %d times; the Nats-Msg-Id window should have dropped the resend", dest.name, id, n)
				} else if !victimAccepts[id] {
					t.Errorf("%s: %s is there %d times but the killed instance never accepted it", dest.name, id, n)
				}
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d events answered 200 are missing", dest.name, missing, len(answered))
		}
		if extra := len(dest.got) - len(answered); extra > 0 {
			t.Errorf("%s: %d messages of events never sent", dest.name, extra)
		}
		// The survivor, not luck, delivered the victim's backlog.
		var rescued int
		if err := pool.QueryRow(ctx, `SELECT count(DISTINCT event_id) FROM stripe_webhook_delivery_attempts
			WHERE ok AND destination = $3 AND event_id = ANY($1) AND instance NOT LIKE $2`,
			victimIDs, fmt.Sprintf("%%:%d", victim.cmd.Process.Pid), dest.name).Scan(&rescued); err != nil {
			t.Fatal(err)
		}
		if rescued == 0 {
			t.Errorf("%s: no event the killed instance accepted was delivered by the survivor: the kill hit no backlog", dest.name)
		}
		t.Logf("%s: %d events answered 200, %d missing; killed instance accepted %d, survivor delivered %d of them; %d there twice",
			dest.name, len(answered), missing, len(victimAccepts), rescued, twice)
	}
}
