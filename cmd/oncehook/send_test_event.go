package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/oncehook/oncehook/internal/redact"
	"github.com/oncehook/oncehook/internal/safetext"
)

// maxTestEventFile bounds --file: the receiver's largest MAX_BODY_BYTES
// is far below it.
const maxTestEventFile = 16 << 20

// testEventOptions are the flags of send-test-event.
type testEventOptions struct {
	url, id, typ, file string
	live               bool
}

func newSendTestEventCmd() *cobra.Command {
	var o testEventOptions
	c := &cobra.Command{
		Use:   "send-test-event",
		Short: "Post one signed test event to a running receiver",
		Long: `Post one event to a running receiver, signed with the first
STRIPE_WEBHOOK_SECRET as Stripe signs it, and print the answer. Sending the
same --id twice shows deduplication; --type and --live try a destination's
filter (DESTINATION_<NAME>_TYPES and _LIVEMODE); --file sends a body of your
own, such as one saved from the Stripe Dashboard.`,
		Example: `  oncehook send-test-event
  oncehook send-test-event --type invoice.paid --live
  oncehook send-test-event --file event.json --url http://127.0.0.1:8080/webhooks/stripe`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.file != "" {
				for _, name := range []string{"id", "type", "live"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--%s with --file: the file's body is sent as it is; set the id, type or livemode in it", name)
					}
				}
			}
			return sendTestEvent(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&o.url, "url", "http://127.0.0.1:8080/webhooks/stripe", "the receiver's webhook URL")
	f.StringVar(&o.id, "id", "", "event id (default: a new evt_test_ id)")
	f.StringVar(&o.typ, "type", "payment_intent.succeeded", "event type")
	f.BoolVar(&o.live, "live", false, "a live-mode event (livemode true)")
	f.StringVar(&o.file, "file", "", "send this file's JSON event body; its id is kept, or a new one is added")
	return c
}

// sendTestEvent posts one signed event and prints the answer.
func sendTestEvent(ctx context.Context, o testEventOptions, out io.Writer) error {
	secret, _, _ := strings.Cut(os.Getenv("STRIPE_WEBHOOK_SECRET"), ",")
	if !strings.HasPrefix(strings.TrimSpace(secret), "whsec_") {
		return errors.New("STRIPE_WEBHOOK_SECRET: set it to the receiver's secret (whsec_...)")
	}
	secret = strings.TrimSpace(secret)
	var body []byte
	if o.file != "" {
		var err error
		if body, err = fileEvent(o.file); err != nil {
			return err
		}
	} else {
		if err := checkEventType(o.typ); err != nil {
			return err
		}
		if o.id == "" {
			o.id = newTestEventID()
		}
		body = testEventBody(o.id, o.typ, o.live, time.Now())
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret})

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("--url: %w", redact.Error(err, o.url))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", redact.URL(o.url), redact.Error(err, o.url))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	// Whatever answers at --url (a proxy, another server) is outside text.
	fmt.Fprintf(out, "%s %s\n", term(resp.Status), termLines(string(answer)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("receiver answered %s", term(resp.Status))
	}
	return nil
}

func newTestEventID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "evt_test_" + hex.EncodeToString(b)
}

// checkEventType refuses a --type the receiver would answer 400: empty, or
// not a word of letters, digits, dots and underscores.
func checkEventType(t string) error {
	if t == "" || strings.IndexFunc(t, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_')
	}) >= 0 {
		return fmt.Errorf("--type %q: want an event type such as invoice.paid", t)
	}
	return nil
}

// testEventBody is a Stripe snapshot event of type typ around a
// PaymentIntent, created at now.
func testEventBody(id, typ string, live bool, now time.Time) []byte {
	return fmt.Appendf(nil, `{
  "id": %q,
  "object": "event",
  "api_version": "2025-08-27.basil",
  "created": %d,
  "data": {
    "object": {
      "id": "pi_test_oncehook",
      "object": "payment_intent",
      "amount": 2000,
      "currency": "eur",
      "status": "succeeded"
    }
  },
  "livemode": %t,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": %q
}`, id, now.Unix(), live, typ)
}

// fileEvent reads an event body from path: a JSON object, sent as it is
// when it has an id; without one a new id is added in front. Which of the
// two is said on stderr.
func fileEvent(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxTestEventFile+1))
	if err != nil {
		return nil, fmt.Errorf("--file %s: %w", path, err)
	}
	if len(body) > maxTestEventFile {
		return nil, fmt.Errorf("--file %s: larger than %d MiB", path, maxTestEventFile>>20)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, fmt.Errorf("--file %s: not a JSON object (%v)", path, err)
	}
	var id string
	if raw, ok := fields["id"]; ok {
		if err := json.Unmarshal(raw, &id); err != nil || id == "" {
			return nil, fmt.Errorf("--file %s: \"id\" is not a non-empty string", path)
		}
		fmt.Fprintf(stderr, "oncehook: sending %q, the id in %s\n", safetext.Clean(id, 255), term(path))
		return body, nil
	}
	id = newTestEventID()
	fmt.Fprintf(stderr, "oncehook: %s has no id: sending it as %s\n", term(path), id)
	rest := bytes.TrimLeft(body, " \t\r\n")[1:] // after the object's "{"
	sep := ","
	if len(fields) == 0 {
		sep = ""
	}
	return fmt.Appendf(nil, `{"id":%q%s%s`, id, sep, rest), nil
}
