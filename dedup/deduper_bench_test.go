package dedup_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/testenv"
)

// BenchmarkRedisFastPath is a late duplicate answered by Redis alone: one
// SET NX GET round trip that finds "done" (or, when two callers in this
// process ask at once, a wait for the first one's answer).
func BenchmarkRedisFastPath(b *testing.B) {
	pool := testenv.Postgres(b)
	rdb, prefix := testenv.Redis(b)
	d, err := dedup.New(dedup.Config{Pool: pool, Redis: rdb, KeyPrefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Stop(context.Background())
	const ids = 1024
	for i := range ids {
		if _, err := d.StoreOnce(context.Background(), testEvent(fmt.Sprintf("evt_fast_%d", i))); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			res, err := d.StoreOnce(context.Background(), testEvent(fmt.Sprintf("evt_fast_%d", i%ids)))
			if err != nil || res.Outcome != dedup.Duplicate || res.Path == dedup.PathPostgres {
				b.Fatalf("StoreOnce: %+v, %v", res, err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}

// BenchmarkGroupCommit is new events stored by Postgres alone, from many
// concurrent callers, as the group-commit writer batches them.
func BenchmarkGroupCommit(b *testing.B) {
	pool := testenv.Postgres(b)
	d, err := dedup.New(dedup.Config{Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Stop(context.Background())
	run := testenv.RandomHex(4)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := d.StoreOnce(context.Background(), testEvent(fmt.Sprintf("evt_gc_%s_%d", run, n.Add(1))))
			if err != nil || res.Outcome != dedup.Accepted {
				b.Fatalf("StoreOnce: %+v, %v", res, err)
			}
		}
	})
	st := d.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(st.Rows)/float64(max(st.Batches, 1)), "rows/batch")
}
