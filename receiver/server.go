package receiver

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// WebhookPath is where Stripe posts events.
const WebhookPath = "/webhooks/stripe"

// Server is the webhook listener: the handlers of the HTTP contract on a
// fasthttp server.
type Server struct {
	cfg       Config
	srv       *fasthttp.Server
	stopping  atomic.Bool
	storeErr  ratelog.Logger
	queueFull ratelog.Logger
}

// New returns a Server; call Serve to start it.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, storeErr: ratelog.Logger{Log: cfg.Logger}, queueFull: ratelog.Logger{Log: cfg.Logger}}
	s.srv = &fasthttp.Server{
		Handler:               s.Handle,
		ErrorHandler:          s.handleTransportError,
		Name:                  "oncehook",
		MaxRequestBodySize:    cfg.MaxBodyBytes,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		Concurrency:           cfg.Concurrency,
		MaxConnsPerIP:         cfg.MaxConnsPerIP,
		ReadBufferSize:        8192, // bounds the request line and headers: larger gets 431
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
	}
	return s, nil
}

// Serve serves on ln until Shutdown, over TLS when configured.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLSCertFile != "" {
		return s.srv.ServeTLS(ln, s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
	}
	return s.srv.Serve(ln)
}

// Shutdown fails /readyz, closes the listener and waits for in-flight
// requests to finish, up to ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	return s.srv.ShutdownWithContext(ctx)
}

// Handle routes one request.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case WebhookPath:
		if !ctx.IsPost() {
			s.cfg.Metrics.Request(metrics.MethodNotAllowed)
			ctx.Response.Header.Set("Allow", "POST")
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "method "+string(ctx.Method())+" not allowed; use POST")
			return
		}
		s.handleWebhook(ctx)
	case "/healthz":
		writeJSON(ctx, fasthttp.StatusOK, `{"status":"ok"}`)
	case "/readyz":
		s.handleReady(ctx)
	default:
		s.cfg.Metrics.Request(metrics.NotFound)
		writeError(ctx, fasthttp.StatusNotFound, "no such path")
	}
}

func (s *Server) handleWebhook(ctx *fasthttp.RequestCtx) {
	if s.cfg.Allowlist != nil {
		ip, ok := clientIP(ctx.RemoteIP(), forwardedFor(&ctx.Request.Header), s.cfg.TrustedProxies)
		if !ok || !s.cfg.Allowlist.Contains(ip) {
			s.cfg.Metrics.Request(metrics.Forbidden)
			writeError(ctx, fasthttp.StatusForbidden, "source address is not in STRIPE_IP_ALLOWLIST")
			return
		}
	}
	body := ctx.PostBody()
	if err := s.cfg.Verifier.Verify(body, string(ctx.Request.Header.Peek("Stripe-Signature"))); err != nil {
		s.cfg.Metrics.Request(metrics.BadSignature)
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	ev, err := ParseEvent(body)
	if err != nil {
		s.cfg.Metrics.Request(metrics.BadEvent)
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	res, err := s.cfg.Deduper.Check(context.Background(), &ev)
	if err != nil {
		s.storeErr.Warn("event not stored; answered 503", "event_id", ev.ID, "event_type", ev.Type, "error", err)
		ctx.Response.Header.Set("Retry-After", "5")
		msg, outcome := "event could not be stored; retry", metrics.Unavailable
		if errors.Is(err, dedup.ErrOverloaded) {
			msg, outcome = "receiver is over its intake bound; retry", metrics.Overloaded
		}
		s.cfg.Metrics.Request(outcome)
		writeError(ctx, fasthttp.StatusServiceUnavailable, msg)
		return
	}
	if res.Outcome == dedup.Accepted {
		ev.Payload = append([]byte(nil), body...) // the request's buffer is reused after the handler
		if !s.cfg.Queue.Enqueue(&ev, res.Lease) {
			s.queueFull.Warn("delivery queue full; the event stays pending for the sweeper", "event_id", ev.ID, "event_type", ev.Type)
		}
	}
	s.cfg.Metrics.Request(res.Outcome.String())
	writeOutcome(ctx, res.Outcome, ev.ID)
}

func (s *Server) handleReady(ctx *fasthttp.RequestCtx) {
	st := s.readiness(ctx)
	code := fasthttp.StatusOK
	if st.Status != "ready" {
		code = fasthttp.StatusServiceUnavailable
	}
	writeJSONValue(ctx, code, st)
}

// handleTransportError answers requests fasthttp could not read.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.cfg.Metrics.Request(metrics.TooLarge)
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "body is larger than MAX_BODY_BYTES")
	case errors.As(err, &small):
		s.cfg.Metrics.Request(metrics.BadRequest)
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers are too large")
	case errors.As(err, &netErr) && netErr.Timeout():
		s.cfg.Metrics.Request(metrics.BadRequest)
		writeError(ctx, fasthttp.StatusRequestTimeout, "request was not read in time")
	default:
		s.cfg.Metrics.Request(metrics.BadRequest)
		writeError(ctx, fasthttp.StatusBadRequest, "request could not be parsed")
	}
}

// readyTimeout bounds each dependency check of /readyz.
const readyTimeout = time.Second
