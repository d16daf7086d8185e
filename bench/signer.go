package bench

import (
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// Kind says how a request is made: a valid event, or one of the bad
// requests of the mixed scenario, which must all be answered 400.
type Kind uint8

// The kinds of request.
const (
	Valid          Kind = iota
	BadSignature        // signed with another secret
	StaleTimestamp      // signed an hour ago
	Malformed           // signed, but not a valid event (cut short, or no type)
)

func (k Kind) String() string {
	return [...]string{"valid", "bad signature", "stale timestamp", "malformed"}[k]
}

// staleBy is how old a StaleTimestamp signature is: far outside any
// sensible SIGNATURE_TOLERANCE (Stripe's default is 5 minutes).
const staleBy = time.Hour

// Payload is a body to send, with its Stripe-Signature cached per second:
// the copies of a storm share one Payload and so one signature, and a
// retry in a later second is signed afresh.
type Payload struct {
	Body []byte
	Kind Kind

	mu     sync.Mutex
	sec    int64
	header string
}

// Header returns the Stripe-Signature for p at now, signed the way its
// Kind says.
func (p *Payload) Header(s *Signer, now time.Time) string {
	sec := now.Unix()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.header != "" && p.sec == sec {
		return p.header
	}
	secret, at := s.secret, time.Unix(sec, 0)
	switch p.Kind {
	case BadSignature:
		secret = s.wrong
	case StaleTimestamp:
		at = at.Add(-staleBy)
	}
	p.sec = sec
	p.header = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: p.Body, Secret: secret, Timestamp: at}).Header
	return p.header
}

// Signer holds the receiver's signing secret (and a wrong one).
type Signer struct {
	secret, wrong string
}

// NewSigner returns a Signer for secret, the first of a comma-separated
// STRIPE_WEBHOOK_SECRET.
func NewSigner(secret string) *Signer {
	secret, _, _ = strings.Cut(secret, ",")
	secret = strings.TrimSpace(secret)
	return &Signer{secret: secret, wrong: secret + "_not_the_real_one"}
}
