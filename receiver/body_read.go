package receiver

import (
	"errors"
	"io"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/oncehook/oncehook/internal/metrics"
)

var (
	errBodyTooLarge = errors.New("body is larger than MAX_BODY_BYTES")
	errBodyBudget   = errors.New("request bodies in flight are at their bound")
)

// Body buffers: the first holds at most firstBodyBuf bytes, and each next
// one doubles, as bytes arrive. Sizes from 4 KB to 64 KB are powers of two
// and pooled; larger ones are left to the GC.
const (
	minBodyBuf    = 4 << 10
	firstBodyBuf  = 16 << 10
	maxPooledBody = 64 << 10
)

var bodyPools [5]sync.Pool // 4, 8, 16, 32, 64 KB

type bodyBuf struct{ b []byte }

func bodyClass(size int) int {
	i := 0
	for minBodyBuf<<i < size {
		i++
	}
	return i
}

// getBodyBuf returns an empty buffer of at least size bytes.
func getBodyBuf(size int) *bodyBuf {
	if size > maxPooledBody {
		return &bodyBuf{make([]byte, 0, size)}
	}
	i := bodyClass(size)
	if v := bodyPools[i].Get(); v != nil {
		return v.(*bodyBuf)
	}
	return &bodyBuf{make([]byte, 0, minBodyBuf<<i)}
}

func putBodyBuf(bb *bodyBuf) {
	if bb == nil {
		return
	}
	c := cap(bb.b)
	if c < minBodyBuf || c > maxPooledBody || c&(c-1) != 0 {
		return
	}
	bb.b = bb.b[:0]
	bodyPools[bodyClass(c)].Put(bb)
}

// readBody reads a body of declared length (-1: unknown, chunked) from r,
// at most max bytes. Before each growth the new buffer is charged to
// budget, so a body holds at most twice what has arrived (firstBodyBuf at
// least), not what it declares. The caller gives back charged and the
// buffer, also after an error.
func readBody(r io.Reader, declared, max int, budget *bodyBudget) (bb *bodyBuf, charged int, err error) {
	limit := max
	if declared >= 0 {
		if declared > max {
			return nil, 0, errBodyTooLarge
		}
		limit = declared
	}
	n := 0 // bytes read
	for {
		if n == limit {
			if declared >= 0 {
				break
			}
			err = probeEnd(r)
			break
		}
		if bb == nil || n == cap(bb.b) {
			size := firstBodyBuf
			if bb != nil {
				size = 2 * cap(bb.b)
			}
			nb := getBodyBuf(min(size, limit))
			if !budget.take(cap(nb.b)) {
				putBodyBuf(nb)
				return bb, charged, errBodyBudget
			}
			if bb != nil {
				nb.b = append(nb.b, bb.b[:n]...)
				putBodyBuf(bb)
				budget.give(charged)
			}
			bb, charged = nb, cap(nb.b)
		}
		var m int
		m, err = r.Read(bb.b[n:min(cap(bb.b), limit)])
		n += m
		if err == io.EOF {
			err = nil
			if declared >= 0 && n < declared {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			break
		}
	}
	if bb != nil {
		bb.b = bb.b[:n]
	}
	return bb, charged, err
}

// probeEnd reads on from a body that has reached its bound: one more byte
// means it is too large.
func probeEnd(r io.Reader) error {
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		switch {
		case n > 0:
			return errBodyTooLarge
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
}

// heldBody is what a webhook body holds until its handler returns.
type heldBody struct {
	buf     *bodyBuf
	charged int
}

func (s *Server) releaseBody(h heldBody) {
	s.budget.give(h.charged)
	putBodyBuf(h.buf)
}

// readWebhookBody reads the request body within MaxBodyBytes and the
// budget; if it cannot, it answers the request and reports false.
func (s *Server) readWebhookBody(ctx *fasthttp.RequestCtx) ([]byte, heldBody, bool) {
	stream := ctx.RequestBodyStream()
	if stream == nil { // a body set in memory, as in tests
		return ctx.PostBody(), heldBody{}, true
	}
	bb, charged, err := readBody(stream, ctx.Request.Header.ContentLength(), s.cfg.MaxBodyBytes, &s.budget)
	h := heldBody{bb, charged}
	if err == nil {
		if bb == nil {
			return nil, h, true
		}
		return bb.b, h, true
	}
	s.releaseBody(h)
	ctx.SetConnectionClose() // the rest of the body is not read
	if errors.Is(err, errBodyBudget) {
		s.bodyBudgetFull.Warn("request bodies in flight are at MaxBodyBytesInFlight; answered 503")
		s.cfg.Metrics.Request(metrics.Overloaded)
		ctx.Response.Header.Set("Retry-After", "1")
		writeError(ctx, fasthttp.StatusServiceUnavailable, "receiver is at its bound for request bodies in memory; retry")
	} else {
		s.handleTransportError(ctx, err)
	}
	return nil, heldBody{}, false
}
