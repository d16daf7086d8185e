package receiver

import (
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v82/webhook"
	"github.com/valyala/fasthttp"
)

// BenchmarkServe is the request path on the wire up to dedup: accepting
// on the listener, reading headers and body, verifying the signature. The
// events are signed with a secret the server does not know, so every
// answer is a 400 and no database is needed.
func BenchmarkServe(b *testing.B) {
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none") // never dialled
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	s := newTestServer(b, pool, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	defer func() { _ = s.Shutdown(context.Background()) }()
	client := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 64}

	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"3KB", []byte(snapshotEventBody)},
		{"60KB", largeInvoiceEvent(60 << 10)},
	} {
		sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: bc.body, Secret: "whsec_other"}).Header
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					req.SetRequestURI("http://" + client.Addr + WebhookPath)
					req.Header.SetMethod(fasthttp.MethodPost)
					req.Header.Set("Stripe-Signature", sig)
					req.SetBodyRaw(bc.body)
					if err := client.Do(req, resp); err != nil {
						b.Fatal(err)
					}
					if resp.StatusCode() != fasthttp.StatusBadRequest {
						b.Fatalf("status %d, want 400", resp.StatusCode())
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}
