package receiver

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

const (
	secretA = "whsec_test_secret_a"
	secretB = "whsec_test_secret_b"
)

var sigNow = time.Unix(1_800_000_000, 0)

func v1(body []byte, secret string, t time.Time) string {
	return hex.EncodeToString(webhook.ComputeSignature(t, body, secret))
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"evt_1","object":"event","type":"invoice.paid"}`)
	ts := sigNow.Unix()
	good := v1(body, secretA, sigNow)
	tests := []struct {
		name    string
		secrets []string
		header  string
		body    []byte
		wantErr string // "" = valid
	}{
		{name: "valid", header: fmt.Sprintf("t=%d,v1=%s", ts, good)},
		{name: "valid with v0 too", header: fmt.Sprintf("t=%d,v1=%s,v0=%s", ts, good, good)},
		{name: "rolled secret: two v1, second matches", header: fmt.Sprintf("t=%d,v1=%s,v1=%s", ts, v1(body, "whsec_old", sigNow), good)},
		{name: "second configured secret matches", secrets: []string{secretB, secretA}, header: fmt.Sprintf("t=%d,v1=%s", ts, good)},
		{name: "as stripe-go generates it", header: webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secretA, Timestamp: sigNow}).Header},
		{name: "within tolerance in the past", header: fmt.Sprintf("t=%d,v1=%s", ts-299, v1(body, secretA, sigNow.Add(-299*time.Second)))},
		{name: "within tolerance in the future", header: fmt.Sprintf("t=%d,v1=%s", ts+299, v1(body, secretA, sigNow.Add(299*time.Second)))},

		{name: "missing", header: "", wantErr: "Stripe-Signature header is missing"},
		{name: "no t", header: "v1=" + good, wantErr: "header has no t"},
		{name: "no v1", header: fmt.Sprintf("t=%d", ts), wantErr: "header has no v1 signature"},
		{name: "v0 only", header: fmt.Sprintf("t=%d,v0=%s", ts, good), wantErr: "header has no v1 signature"},
		{name: "garbage", header: "garbage", wantErr: "malformed"},
		{name: "t not a number", header: "t=abc,v1=" + good, wantErr: "t must be unix seconds"},
		{name: "million-digit t", header: "t=" + strings.Repeat("9", 1_000_000) + ",v1=" + good, wantErr: "longer than 4096 bytes"},
		{name: "long t", header: "t=" + strings.Repeat("9", 40) + ",v1=" + good, wantErr: "t must be unix seconds"},
		{name: "two t", header: fmt.Sprintf("t=%d,t=%d,v1=%s", ts, ts, good), wantErr: "more than one t"},
		{name: "too many v1", header: fmt.Sprintf("t=%d", ts) + strings.Repeat(",v1="+good, 17), wantErr: "more than 16 v1"},
		{name: "wrong secret", header: fmt.Sprintf("t=%d,v1=%s", ts, v1(body, "whsec_other", sigNow)), wantErr: "no v1 signature matches"},
		{name: "v1 not hex", header: fmt.Sprintf("t=%d,v1=zz", ts), wantErr: "no v1 signature matches"},
		{name: "body altered by one byte", body: []byte(`{"id":"evt_2","object":"event","type":"invoice.paid"}`), header: fmt.Sprintf("t=%d,v1=%s", ts, good), wantErr: "no v1 signature matches"},
		{name: "signature for another timestamp", header: fmt.Sprintf("t=%d,v1=%s", ts+1, good), wantErr: "no v1 signature matches"},
		{name: "too old", header: fmt.Sprintf("t=%d,v1=%s", ts-301, v1(body, secretA, sigNow.Add(-301*time.Second))), wantErr: "older than the tolerance"},
		{name: "too far in the future", header: fmt.Sprintf("t=%d,v1=%s", ts+301, v1(body, secretA, sigNow.Add(301*time.Second))), wantErr: "in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{secretA}
			}
			v, err := NewVerifier(secrets, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			v.now = func() time.Time { return sigNow }
			b := tt.body
			if b == nil {
				b = body
			}
			err = v.Verify(b, tt.header)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify: %v, want error containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("Verify: %v does not wrap ErrInvalidSignature", err)
			}
		})
	}
}

func TestNewVerifierRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := NewVerifier(nil, time.Minute); err == nil {
		t.Error("no secrets: want error")
	}
	if _, err := NewVerifier([]string{secretA}, 0); err == nil {
		t.Error("zero tolerance: want error")
	}
}

// FuzzSignatureHeader checks that no header panics, and that whatever our
// shape check lets through, stripe-go's parser agrees on the timestamp.
func FuzzSignatureHeader(f *testing.F) {
	body := []byte(`{"id":"evt_1","object":"event","type":"invoice.paid"}`)
	good := v1(body, secretA, sigNow)
	for _, h := range []string{
		"", "t=1,v1=ab", fmt.Sprintf("t=%d,v1=%s", sigNow.Unix(), good), fmt.Sprintf("t=%d,v0=%s", sigNow.Unix(), good),
		"t=,v1=", "t=1=2,v1=x", ",,,", "t=99999999999999999999,v1=00", "v1=" + good + ",t=1800000000",
	} {
		f.Add(h)
	}
	v, err := NewVerifier([]string{secretA, secretB}, 5*time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	v.now = func() time.Time { return sigNow }
	f.Fuzz(func(t *testing.T, header string) {
		err := v.Verify(body, header)
		if err != nil && !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("error %v does not wrap ErrInvalidSignature", err)
		}
		if err == nil {
			// stripe-go, ignoring the time, must agree the header is valid.
			if werr := webhook.ValidatePayloadIgnoringTolerance(body, header, secretA); werr != nil {
				t.Fatalf("accepted %q that stripe-go rejects: %v", header, werr)
			}
		}
	})
}
