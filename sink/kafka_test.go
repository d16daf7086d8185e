package sink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/sinktest"
	"github.com/oncehook/oncehook/sink"
)

// No Kafka broker can be installed on these machines: these tests run
// against franz-go's in-process cluster, kfake, which speaks the Kafka
// protocol (idempotent produce, acks=all) but is not Kafka.

// startKafka starts an in-process cluster of one broker with topics of
// one partition each.
func startKafka(t *testing.T, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// kafkaRecords reads every record of partition 0 of topic.
func kafkaRecords(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1 // the end
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("listing the end offset of %s: %v", topic, err)
	}
	end := resp.Topics[0].Partitions[0].Offset
	var out []*kgo.Record
	for int64(len(out)) < end {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("reading %s (%d of %d records): %v", topic, len(out), end, err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// kafkaHeader is the value of a record's header key.
func kafkaHeader(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestConformanceKafka(t *testing.T) {
	t.Parallel()
	topics := []string{"events1", "events2", "events3", "events4", "events5"}
	brokers := startKafka(t, topics...).ListenAddrs()
	var topic string
	n := 0
	sinktest.Run(t, sinktest.Harness{
		PayloadExact: true,
		New: func(t *testing.T) sink.Sink {
			topic = topics[n]
			n++
			return openSink(t, "kafka://"+strings.Join(brokers, ",")+"/"+topic, nil)
		},
		Received: func(t *testing.T) []sinktest.Received {
			var out []sinktest.Received
			for _, r := range kafkaRecords(t, brokers, topic) {
				id := kafkaHeader(r, sink.HeaderEventID)
				if string(r.Key) != id || kafkaHeader(r, sink.HeaderLivemode) != "false" || kafkaHeader(r, sink.HeaderSource) != "webhook" {
					t.Errorf("record %d: key %q, headers %v; want the key and Stripe-Event-Id equal, livemode false, source webhook", r.Offset, r.Key, r.Headers)
				}
				out = append(out, sinktest.Received{ID: id, Type: kafkaHeader(r, sink.HeaderEventType), Payload: r.Value})
			}
			return out
		},
	})
}

// TestKafkaKeyFunction: the hook for the destination's order key sets the
// record key.
func TestKafkaKeyFunction(t *testing.T) {
	t.Parallel()
	brokers := startKafka(t, "events").ListenAddrs()
	s, err := sink.NewKafka(sink.KafkaConfig{Brokers: brokers, Topic: "events", Key: func(ev *event.Event) []byte { return []byte("cus_" + ev.ID) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Deliver(ctx, sinktest.Event("evt_keyed")); err != nil {
		t.Fatal(err)
	}
	if recs := kafkaRecords(t, brokers, "events"); len(recs) != 1 || string(recs[0].Key) != "cus_evt_keyed" {
		t.Fatalf("records %v, want one keyed cus_evt_keyed", recs)
	}
}

// TestKafkaClusterRefusesThenAccepts: while the cluster answers every
// produce with a retryable error (NOT_ENOUGH_REPLICAS, as while replicas
// are away), a Deliver fails when its context ends; once the cluster
// accepts again, Delivers succeed without a new sink, and nothing
// acknowledged is lost. (A kfake cluster cannot be restarted with its
// data, so a broker process going away is not tested here.)
func TestKafkaClusterRefusesThenAccepts(t *testing.T) {
	t.Parallel()
	cluster := startKafka(t, "events")
	brokers := cluster.ListenAddrs()
	s := openSink(t, "kafka://"+strings.Join(brokers, ",")+"/events", nil)
	defer s.Close()
	deliver := func(id string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return s.Deliver(ctx, sinktest.Event(id))
	}
	if err := deliver("evt_before", 10*time.Second); err != nil {
		t.Fatal(err)
	}

	refusal := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	if err := deliver("evt_during", time.Second); err == nil {
		t.Fatal("Deliver while the cluster refuses writes: want an error")
	}
	if refusal.Hits() == 0 {
		t.Fatal("the sink did not try to produce while the cluster refused")
	}
	refusal.Remove()
	eventually.RequireNoError(t, 20*time.Second, "a Deliver once the cluster accepts", func() error { return deliver("evt_after", 2*time.Second) })
	if err := deliver("evt_during", 5*time.Second); err != nil { // the dispatcher's retry
		t.Fatal(err)
	}

	var ids []string
	for _, r := range kafkaRecords(t, brokers, "events") {
		ids = append(ids, kafkaHeader(r, sink.HeaderEventID))
	}
	// The refused evt_during may also have been written by the producer's
	// own retry after its Deliver gave up: at least once.
	got := strings.Join(ids, " ")
	if !strings.HasPrefix(got, "evt_before ") || !strings.Contains(got, "evt_after") || !strings.Contains(got, "evt_during") {
		t.Fatalf("topic holds %q, want evt_before, then evt_after and evt_during", got)
	}
}
