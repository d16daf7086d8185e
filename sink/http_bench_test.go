package sink_test

import (
	"context"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/oncehook/oncehook/internal/sinktest"
	"github.com/oncehook/oncehook/sink"
)

// BenchmarkHTTPSinkDeliver measures one delivery's cost in the receiver:
// a POST of a 3 KB event to a local fasthttp server, answered 200.
func BenchmarkHTTPSinkDeliver(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	s := sink.NewHTTP("http://"+ln.Addr().String()+"/hook", nil)
	defer s.Close()
	ev := sinktest.Event("evt_bench")
	ev.Payload = make([]byte, 3000)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Deliver(context.Background(), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
