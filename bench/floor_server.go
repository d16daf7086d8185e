package bench

import (
	"time"

	"github.com/valyala/fasthttp"
)

// NewFloorServer returns the floor: a fasthttp server whose handler reads
// the body and answers 200, on any path, with the receiver's server
// settings. What the load generator gets from it is the most this
// machine can do with this load, the yardstick for the receiver.
func NewFloorServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       floorHandler,
		Name:                          "oncehook-bench-floor",
		MaxRequestBodySize:            1 << 20,
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		IdleTimeout:                   60 * time.Second,
		Concurrency:                   4096,
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
	}
}

func floorHandler(ctx *fasthttp.RequestCtx) {
	_ = ctx.PostBody() // fasthttp has read it already; touching it is the whole job
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"ok"}`)
}
