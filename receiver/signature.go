package receiver

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// ErrInvalidSignature is wrapped by every signature failure; the message of
// the error returned says which.
var ErrInvalidSignature = errors.New("invalid Stripe-Signature")

// Limits on the Stripe-Signature header, far above what Stripe sends (one t,
// one or two v1, maybe a v0) and far below what would cost real work.
const (
	maxSignatureHeader = 4096
	maxSignatures      = 16
	maxTimestampDigits = 12
)

// Verifier checks Stripe-Signature headers against every configured secret.
type Verifier struct {
	secrets   []string
	tolerance time.Duration
	now       func() time.Time
}

// NewVerifier returns a Verifier accepting a signature by any of secrets
// whose timestamp is within tolerance of now, in either direction.
func NewVerifier(secrets []string, tolerance time.Duration) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("receiver: at least one webhook secret is required")
	}
	if tolerance <= 0 {
		return nil, errors.New("receiver: signature tolerance must be positive")
	}
	return &Verifier{secrets: secrets, tolerance: tolerance, now: time.Now}, nil
}

// Verify checks header against payload. It bounds the header's shape, checks
// that t is within tolerance both ways (stripe-go accepts any future time),
// then lets stripe-go's ValidatePayloadWithTolerance check the HMAC for each
// secret in turn.
func (v *Verifier) Verify(payload []byte, header string) error {
	ts, err := checkSignatureHeader(header)
	if err != nil {
		return err
	}
	now := v.now()
	t := time.Unix(ts, 0)
	if now.Sub(t) > v.tolerance {
		return sigError("timestamp is older than the tolerance of %s", v.tolerance)
	}
	if t.Sub(now) > v.tolerance {
		return sigError("timestamp is more than %s in the future", v.tolerance)
	}
	for _, secret := range v.secrets {
		err = webhook.ValidatePayloadWithTolerance(payload, header, secret, v.tolerance)
		if err == nil {
			return nil
		}
		if !errors.Is(err, webhook.ErrNoValidSignature) {
			break
		}
	}
	switch {
	case errors.Is(err, webhook.ErrNoValidSignature):
		return sigError("no v1 signature matches the body with any configured secret")
	case errors.Is(err, webhook.ErrTooOld):
		return sigError("timestamp is older than the tolerance of %s", v.tolerance)
	default:
		return sigError("header is malformed")
	}
}

// checkSignatureHeader checks the header's shape the way stripe-go reads it
// ("t=1495999758,v1=hex,v1=hex,v0=hex") and returns its timestamp.
func checkSignatureHeader(header string) (int64, error) {
	if header == "" {
		return 0, sigError("header is missing")
	}
	if len(header) > maxSignatureHeader {
		return 0, sigError("header is longer than %d bytes", maxSignatureHeader)
	}
	var ts int64
	haveT, v1s := false, 0
	for pair := range strings.SplitSeq(header, ",") {
		key, value, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(value, "=") {
			return 0, sigError("header is malformed: each element must be key=value")
		}
		switch key {
		case "t":
			if haveT {
				return 0, sigError("header has more than one t")
			}
			if len(value) == 0 || len(value) > maxTimestampDigits {
				return 0, sigError("t must be unix seconds")
			}
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n <= 0 {
				return 0, sigError("t must be unix seconds")
			}
			ts, haveT = n, true
		case "v1":
			v1s++
			if v1s > maxSignatures {
				return 0, sigError("header has more than %d v1 signatures", maxSignatures)
			}
		}
	}
	if !haveT {
		return 0, sigError("header has no t")
	}
	if v1s == 0 {
		return 0, sigError("header has no v1 signature")
	}
	return ts, nil
}

type signatureError struct{ msg string }

func (e *signatureError) Error() string        { return "Stripe-Signature " + e.msg }
func (e *signatureError) Is(target error) bool { return target == ErrInvalidSignature }

func sigError(format string, args ...any) error {
	if len(args) == 0 {
		return &signatureError{msg: format}
	}
	return &signatureError{msg: fmt.Sprintf(format, args...)}
}
