package sink_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/oncehook/oncehook/internal/sinktest"
	"github.com/oncehook/oncehook/internal/testenv"
	"github.com/oncehook/oncehook/sink"
)

// openSink opens the sink a SINK_URL names, as cmd/oncehook does.
func openSink(t *testing.T, rawURL string, signer *sink.StandardWebhooksSigner) sink.Sink {
	t.Helper()
	target, err := sink.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := target.Open(signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readLines reads JSON lines written by a Writer.
func readLines(t *testing.T, r io.Reader) []sinktest.Received {
	t.Helper()
	var out []sinktest.Received
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			ID      string          `json:"id"`
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, sinktest.Received{ID: l.ID, Type: l.Type, Payload: l.Payload})
	}
	return out
}

func TestConformanceWriter(t *testing.T) {
	t.Parallel()
	var buf *bytes.Buffer
	sinktest.Run(t, sinktest.Harness{
		New: func(*testing.T) sink.Sink {
			buf = &bytes.Buffer{}
			return sink.NewWriter(buf)
		},
		Received: func(t *testing.T) []sinktest.Received { return readLines(t, bytes.NewReader(buf.Bytes())) },
	})
}

func TestConformanceFile(t *testing.T) {
	t.Parallel()
	var path string
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sink.Sink {
			path = filepath.Join(t.TempDir(), "events.jsonl")
			return openSink(t, "file://"+path, nil)
		},
		Received: func(t *testing.T) []sinktest.Received {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return readLines(t, bytes.NewReader(b))
		},
	})
}

const sinkSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// recorder is a downstream HTTP service that verifies what it receives.
type recorder struct {
	mu   sync.Mutex
	got  []sinktest.Received
	errs []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	wh, _ := standardwebhooks.NewWebhook(sinkSecret)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	switch {
	case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json":
		rec.errs = append(rec.errs, "method or content type: "+r.Method+" "+r.Header.Get("Content-Type"))
	case r.Header.Get("Idempotency-Key") == "" || r.Header.Get("Idempotency-Key") != r.Header.Get("webhook-id"):
		rec.errs = append(rec.errs, "Idempotency-Key and webhook-id must be the event id")
	default:
		if err := wh.Verify(body, r.Header); err != nil {
			rec.errs = append(rec.errs, "Standard Webhooks verification: "+err.Error())
		}
	}
	rec.got = append(rec.got, sinktest.Received{ID: r.Header.Get("Idempotency-Key"), Type: r.Header.Get("Stripe-Event-Type"), Payload: body})
	w.WriteHeader(http.StatusNoContent)
}

func TestConformanceHTTP(t *testing.T) {
	t.Parallel()
	var rec *recorder
	sinktest.Run(t, sinktest.Harness{
		PayloadExact: true,
		New: func(t *testing.T) sink.Sink {
			rec = &recorder{}
			srv := httptest.NewServer(rec)
			t.Cleanup(srv.Close)
			signer, err := sink.NewStandardWebhooksSigner(sinkSecret)
			if err != nil {
				t.Fatal(err)
			}
			return openSink(t, srv.URL+"/hooks", signer)
		},
		Received: func(t *testing.T) []sinktest.Received {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, e := range rec.errs {
				t.Error(e)
			}
			return append([]sinktest.Received(nil), rec.got...)
		},
	})
}

func TestConformanceRedisStream(t *testing.T) {
	t.Parallel()
	reader, prefix := testenv.Redis(t)
	var stream string
	n := 0
	sinktest.Run(t, sinktest.Harness{
		PayloadExact: true,
		New: func(t *testing.T) sink.Sink {
			n++
			stream = prefix + "events" + string(rune('a'+n))
			return openSink(t, testenv.RedisURL(t)+"?stream="+stream+"&maxlen=1000", nil)
		},
		Received: func(t *testing.T) []sinktest.Received {
			msgs, err := reader.XRange(context.Background(), stream, "-", "+").Result()
			if err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			var out []sinktest.Received
			for _, m := range msgs {
				out = append(out, sinktest.Received{ID: m.Values["id"].(string), Type: m.Values["type"].(string), Payload: []byte(m.Values["payload"].(string))})
			}
			return out
		},
	})
}
