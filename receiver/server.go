package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oncehook/oncehook/dedup"
	"github.com/oncehook/oncehook/event"
	"github.com/oncehook/oncehook/internal/metrics"
	"github.com/oncehook/oncehook/internal/ratelog"
)

// WebhookPath is where Stripe posts events.
const WebhookPath = "/webhooks/stripe"

// Server is the webhook listener: the handlers of the HTTP contract on a
// fasthttp server.
type Server struct {
	cfg            Config
	intake         dedup.Intake // how handleWebhook admits a verified body
	srv            *fasthttp.Server
	guard          *connGuard
	budget         bodyBudget
	handling       atomic.Int64 // webhook requests past their body read
	stopping       atomic.Bool
	storeErr       ratelog.Logger
	queueFull      ratelog.Logger
	bodyBudgetFull ratelog.Logger
	connsFull      ratelog.Logger
	connErrs       ratelog.Logger
	// The reasons behind /readyz, each dependency on its own so that a
	// Redis outage does not hide a Postgres one.
	readyPostgres, readyRedis ratelog.Logger
	ready                     readyState // what /readyz answers from
}

// New returns a Server; call Serve to start it.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, intake: dedup.Intake{Enqueue: cfg.Queue.Enqueue, Metrics: cfg.Metrics}}
	for _, l := range []*ratelog.Logger{&s.storeErr, &s.queueFull, &s.bodyBudgetFull, &s.connsFull, &s.connErrs, &s.readyPostgres, &s.readyRedis} {
		l.Log = cfg.Logger
	}
	s.budget.limit = int64(cfg.MaxBodyBytesInFlight)
	s.guard = newConnGuard(cfg.MaxConns, cfg.MaxConnsPerIP, cfg.TLSCertFile != "", s.connRefused)
	s.srv = &fasthttp.Server{
		Handler:            s.Handle,
		ErrorHandler:       s.handleTransportError,
		HeaderReceived:     s.headerReceived,
		ExpectHandler:      s.expectBody,
		ConnState:          s.guard.connState,
		Logger:             connLog{&s.connErrs},
		Name:               "oncehook",
		MaxRequestBodySize: cfg.MaxBodyBytes,
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		// The guard bounds connections; fasthttp's bound (a goroutine per
		// connection) only has to stay clear of it.
		Concurrency:    2 * cfg.MaxConns,
		ReadBufferSize: 8192, // bounds the request line and headers: larger gets 431
		// A connection that has sent nothing holds no buffer, and the
		// handler reads bodies itself, within the budget.
		ReduceMemoryUsage:            true,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
	}
	return s, nil
}

// Serve serves on ln until Shutdown, over TLS when configured.
func (s *Server) Serve(ln net.Listener) error {
	ln = s.guard.listener(ln)
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
	path := string(ctx.Path())
	if path != WebhookPath || !ctx.IsPost() {
		s.guard.served(ctx.Conn()) // no body to wait for
	}
	switch path {
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
	body, held, ok := s.readWebhookBody(ctx)
	if !ok {
		return
	}
	s.guard.served(ctx.Conn())
	defer s.releaseBody(held)
	if s.handling.Add(1) > int64(s.cfg.Concurrency) {
		s.handling.Add(-1)
		s.cfg.Metrics.Request(metrics.Overloaded)
		ctx.SetConnectionClose()
		ctx.Response.Header.Set("Retry-After", "1")
		writeError(ctx, fasthttp.StatusServiceUnavailable, "receiver is at its bound for requests in progress; retry")
		return
	}
	defer s.handling.Add(-1)
	start := time.Now()
	defer s.cfg.Metrics.Stage(metrics.StageTotal, start)
	err := s.cfg.Verifier.Verify(body, string(ctx.Request.Header.Peek("Stripe-Signature")))
	s.cfg.Metrics.Stage(metrics.StageVerify, start)
	if err != nil {
		s.cfg.Metrics.Request(metrics.BadSignature)
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	if id, ok := event.PeekID(body); ok && s.cfg.Deduper.Recent(id) {
		s.cfg.Metrics.Request(metrics.Duplicate)
		writeOutcome(ctx, dedup.Duplicate, string(id))
		return
	}
	ad, err := dedup.Admit(context.Background(), s.cfg.Deduper, body, s.intake)
	if errors.Is(err, event.ErrInvalid) {
		s.cfg.Metrics.Request(metrics.BadEvent)
		writeError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	ev, res := &ad.Event, ad.Result
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
	if res.Outcome == dedup.Accepted && !ad.Queued {
		s.queueFull.Warn("delivery queue full; the event stays pending for the sweeper", "event_id", ev.ID, "event_type", ev.Type)
	}
	s.cfg.Metrics.Request(res.Outcome.String())
	writeOutcome(ctx, res.Outcome, ev.ID)
}

func (s *Server) handleReady(ctx *fasthttp.RequestCtx) {
	// Not ctx: a wait for the check under way ends with the check's own
	// bounds (readyTimeout), and Shutdown answers at once.
	st := s.readiness(context.Background())
	code := fasthttp.StatusOK
	if st.Status != "ready" {
		code = fasthttp.StatusServiceUnavailable
	}
	writeJSONValue(ctx, code, st)
}

// headerReceived has a body over MaxBodyBytes answered from the headers
// alone: marked as expecting 100-continue, it is not read by fasthttp,
// which asks expectBody.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if h.ContentLength() > s.cfg.MaxBodyBytes {
		h.Set(fasthttp.HeaderExpect, "100-continue")
	}
	return fasthttp.RequestConfig{}
}

// expectBody answers 413 before a body over MaxBodyBytes is sent.
func (s *Server) expectBody(ctx *fasthttp.RequestCtx) int {
	if ctx.Request.Header.ContentLength() <= s.cfg.MaxBodyBytes {
		return fasthttp.StatusContinue
	}
	s.cfg.Metrics.Request(metrics.TooLarge)
	writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "body is larger than MAX_BODY_BYTES")
	return fasthttp.StatusRequestEntityTooLarge
}

// connRefused counts a connection the guard refused.
func (s *Server) connRefused(status int) {
	if status == fasthttp.StatusServiceUnavailable {
		s.connsFull.Warn("connections are at MaxConns and none is idle; new ones are refused")
		s.cfg.Metrics.Request(metrics.Overloaded)
	}
}

// handleTransportError answers requests fasthttp, or the body reader,
// could not read.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge) || errors.Is(err, errBodyTooLarge):
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

// connLog takes fasthttp's own lines, one for each connection a client
// drops mid-request: rate-limited, so that an attack does not flood the log.
type connLog struct{ l *ratelog.Logger }

func (c connLog) Printf(format string, args ...any) {
	c.l.Warn("fasthttp: " + fmt.Sprintf(format, args...))
}

// readyTimeout bounds each dependency check of /readyz.
const readyTimeout = time.Second
