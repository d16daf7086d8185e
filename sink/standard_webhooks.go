package sink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// StandardWebhooksSigner signs requests the way Standard Webhooks
// (standardwebhooks.com) specifies, so any of its libraries can verify them:
// webhook-signature is "v1," + base64(HMAC-SHA256(key, id + "." + ts + "." + body)).
type StandardWebhooksSigner struct {
	key []byte
}

// NewStandardWebhooksSigner takes a "whsec_" + base64 secret.
func NewStandardWebhooksSigner(secret string) (*StandardWebhooksSigner, error) {
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("signing secret must be whsec_ followed by base64")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) < 16 {
		return nil, errors.New("signing secret must be whsec_ followed by base64 of at least 16 bytes")
	}
	return &StandardWebhooksSigner{key: key}, nil
}

// Sign returns the webhook-timestamp and webhook-signature values for a
// message id and body at time t.
func (s *StandardWebhooksSigner) Sign(id string, t time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return timestamp, "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
