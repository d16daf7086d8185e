package redact_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/oncehook/oncehook/internal/testenv"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/oncehook/oncehook/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ raw, want string }{
		{"", ""},
		{"stdout", "stdout"},
		{"file:///var/log/events.jsonl", "file:///var/log/events.jsonl"},
		{"http://app.internal:8000/stripe", "http://app.internal:8000/stripe"},
		{"https://sink.example/hook?token=abc", "https://sink.example/hook?token=xxxxx"},
		{"https://sink.example/hook?token=abc&v=2&empty=&bare", "https://sink.example/hook?token=xxxxx&v=xxxxx&empty=&xxxxx"},
		{"https://sink.example/hook#access_token=abc", "https://sink.example/hook#xxxxx"},
		{"postgres://app:s3cret@db:5432/ledger?sslmode=require", "postgres://app:xxxxx@db:5432/ledger?sslmode=xxxxx"},
		{"redis://:s3cret@cache:6379/0", "redis://:xxxxx@cache:6379/0"},
		{"redis://user:p%40ss%3Aw%2Frd@cache:6379/0", "redis://user:xxxxx@cache:6379/0"},
		{"rediss://default:hunter2@cache.example:6380/1", "rediss://default:xxxxx@cache.example:6380/1"},
		{"redis://:pw@node1:6379?addr=node2:6379&addr=node3:6379", "redis://:xxxxx@node1:6379?addr=xxxxx&addr=xxxxx"},
		// A user name alone is the credential (Stripe's API key in basic auth).
		{"https://sk_live_123@api.stripe.com/v1", "https://xxxxx@api.stripe.com/v1"},
		{"redis:user:pw@cache:6379", "redis:xxxxx@cache:6379"},
		// A Postgres user name is a role: kept, with or without a password.
		{"postgres://app@db:5432/ledger", "postgres://app@db:5432/ledger"},
		{"postgresql://app:s3cret@db/ledger", "postgresql://app:xxxxx@db/ledger"},
		{"POSTGRES://app@db/ledger", "postgres://app@db/ledger"},
		// Unparseable: never the input.
		{"redis://:s3cret@host:6379/%zz", "<unparseable redis URL>"},
		{"postgres://u:s3cret@db:port/x", "<unparseable postgres URL>"},
		{"%zz:s3cret", "<unparseable URL>"},
		{" https://u:s3cret@host/", "<unparseable URL>"},
		{"host=db user=app password=s3cret", "<unparseable URL>"},
		{"/var/log/events.jsonl", "/var/log/events.jsonl"},
		{"//u:s3cret@host/x?k=v", "<unparseable URL>"},
		{"redis://:s3cret\x7f@host", "<unparseable redis URL>"},
	} {
		if got := redact.URL(tt.raw); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	parseErr := func(raw string) error {
		_, err := url.Parse(raw)
		if err == nil {
			t.Fatalf("url.Parse(%q): no error", raw)
		}
		return err
	}
	redisErr := func(raw string) error {
		_, err := redis.ParseURL(raw)
		if err == nil {
			t.Fatalf("redis.ParseURL(%q): no error", raw)
		}
		return err
	}
	addr := testenv.FreeAddr(t)
	httpErr := func(raw string) error {
		resp, err := http.Post(raw, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("POST %s: no error", raw)
		}
		return err
	}

	for _, tt := range []struct {
		name    string
		raw     string
		err     error
		secrets []string // none of these may remain
		keep    []string // all of these must remain
	}{
		{
			name:    "url.Parse, bad escape",
			raw:     "redis://:s3cret@host:6379/%zz",
			err:     parseErr("redis://:s3cret@host:6379/%zz"),
			secrets: []string{"s3cret"},
			keep:    []string{"<unparseable redis URL>", `invalid URL escape "%zz"`},
		},
		{
			name:    "url.Parse, control character quoted by %q",
			raw:     "redis://:s3\"cret\x7f@host:6379/0",
			err:     parseErr("redis://:s3\"cret\x7f@host:6379/0"),
			secrets: []string{"s3", "cret"},
			keep:    []string{"<unparseable redis URL>", "invalid control character"},
		},
		{
			name:    "url.Parse, bad port",
			raw:     "postgres://app:s3cret@db:port/ledger",
			err:     parseErr("postgres://app:s3cret@db:port/ledger"),
			secrets: []string{"s3cret"},
			keep:    []string{"invalid port"},
		},
		{
			name:    "password with special characters, decoded in the text",
			raw:     "redis://user:p%40ss%3Aw0rd@cache:6379/0",
			err:     errors.New(`auth as user with "p@ss:w0rd" failed; url p%40ss%3Aw0rd`),
			secrets: []string{"p@ss:w0rd", "p%40ss%3Aw0rd"},
			keep:    []string{"auth as user with"},
		},
		{
			name:    "query token, decoded and re-encoded",
			raw:     "https://sink.example/hook?token=a%2Fb+c%21longer",
			err:     errors.New(`token "a/b c!longer" rejected; sent a%2Fb%20c%21longer and a%2Fb+c%21longer`),
			secrets: []string{"a/b c!longer", "a%2Fb%20c%21longer", "a%2Fb+c%21longer"},
			keep:    []string{"rejected"},
		},
		{
			name:    "net/http *url.Error with a query token and a password",
			raw:     "http://user:pw0rd@" + addr + "/hook?a=1&token=abc",
			err:     httpErr("http://user:pw0rd@" + addr + "/hook?a=1&token=abc"),
			secrets: []string{"pw0rd", "abc"},
			keep:    []string{`Post "http://user:xxxxx@` + addr + `/hook?a=xxxxx&token=xxxxx"`, "connection refused"},
		},
		{
			name:    "go-redis option value",
			raw:     "rediss://default:hunter2@cache.example:6380/1?dial_timeout=hunter3",
			err:     redisErr("rediss://default:hunter2@cache.example:6380/1?dial_timeout=hunter3"),
			secrets: []string{"hunter2", "hunter3"},
			keep:    []string{"invalid dial_timeout duration"},
		},
		{
			name:    "several addr= parameters",
			raw:     "redis://:pw@node1:6379?addr=node2:6379&addr=node3:6379",
			err:     fmt.Errorf("cluster redis://:pw@node1:6379?addr=node2:6379&addr=node3:6379: dial tcp node3:6379: i/o timeout"),
			secrets: []string{"pw@", "node2", "node3"},
			keep:    []string{"cluster redis://:xxxxx@node1:6379?addr=xxxxx&addr=xxxxx: dial tcp xxxxx: i/o timeout"},
		},
		{
			name:    "short secrets only where they stand alone",
			raw:     "redis://:pw@127.0.0.1:6379/0?db=0&n=1",
			err:     errors.New(`127.0.0.1:6379: invalid db "0"; n=1 from port 45111; AUTH pw failed`),
			secrets: []string{`"0"`, "=1 ", " pw "},
			keep:    []string{"127.0.0.1:6379", `invalid db "xxxxx"`, "n=xxxxx from port 45111", "AUTH xxxxx failed"},
		},
		{
			name:    "Postgres user name, kept with or without a password",
			raw:     "postgres://oncehook@db:5432/oncehook?sslmode=disable",
			err:     errors.New("failed to connect to `user=oncehook database=oncehook`: FATAL: password authentication failed for user \"oncehook\" (SQLSTATE 28P01)"),
			secrets: []string{"disable"},
			keep:    []string{"user=oncehook database=oncehook", `for user "oncehook"`},
		},
		{
			name:    "lone user name",
			raw:     "https://sk_live_123@api.stripe.com/v1",
			err:     errors.New(`Post "https://sk_live_123@api.stripe.com/v1": EOF; key sk_live_123`),
			secrets: []string{"sk_live_123"},
			keep:    []string{`Post "https://xxxxx@api.stripe.com/v1": EOF; key xxxxx`},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := redact.Error(tt.err, tt.raw)
			msg := got.Error()
			for _, s := range tt.secrets {
				if strings.Contains(msg, s) {
					t.Errorf("%q remains in %q", s, msg)
				}
			}
			for _, k := range tt.keep {
				if !strings.Contains(msg, k) {
					t.Errorf("%q is missing from %q", k, msg)
				}
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("errors.Is(redacted, original) = false")
			}
		})
	}
}

func TestErrorUnwraps(t *testing.T) {
	t.Parallel()
	raw := "http://" + testenv.FreeAddr(t) + "/hook?token=abcdef"
	resp, err := http.Post(raw, "text/plain", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatal("no error")
	}
	red := redact.Error(fmt.Errorf("posting evt_1: %w", err), raw)
	if strings.Contains(red.Error(), "abcdef") || !strings.HasPrefix(red.Error(), "posting evt_1: ") {
		t.Errorf("redacted: %q", red)
	}
	var ue *url.Error
	if !errors.As(red, &ue) || !errors.Is(red, syscall.ECONNREFUSED) {
		t.Errorf("errors.As/Is through %v: lost the cause", red)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wrapped := fmt.Errorf("GET %s: %w", raw, ctx.Err())
	if red := redact.Error(wrapped, raw); !errors.Is(red, context.Canceled) || strings.Contains(red.Error(), "abcdef") {
		t.Errorf("redacted %v: want context.Canceled without the token", red)
	}

	if redact.Error(nil, raw) != nil {
		t.Error("Error(nil) != nil")
	}
	plain := errors.New("connection refused")
	if got := redact.Error(plain, raw); got != plain {
		t.Errorf("Error with nothing to replace = %#v, want the error itself", got)
	}
	if got := redact.Error(plain); got != plain {
		t.Errorf("Error without URLs = %#v, want the error itself", got)
	}
}

func TestStringSeveralURLs(t *testing.T) {
	t.Parallel()
	db, rd := "postgres://app:dbsecret@db/ledger", "redis://:redissecret@cache:6379"
	got := redact.String("db "+db+", redis "+rd+", again dbsecret redissecret", db, rd, "")
	want := "db postgres://app:xxxxx@db/ledger, redis redis://:xxxxx@cache:6379, again xxxxx xxxxx"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzURL: whatever the input, URL's answer is a placeholder or a URL
// whose password, user name alone (but a Postgres role), query values and
// fragment are Mask.
func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"redis://:s3cret@host:6379/0", "https://u@host/hook?token=abc&x&y=", "http://u:p@h/p?q=1;r=2#frag",
		"redis://:s3cret@host/%zz", "redis:u:p@host", "stdout", "postgres://u:p%40@db/x?sslmode=require", "host=db password=pw",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := redact.URL(raw)
		if strings.HasPrefix(got, "<unparseable ") {
			return
		}
		if _, err := url.Parse(raw); err != nil {
			t.Fatalf("URL(%q) = %q, want a placeholder", raw, got)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("URL(%q) = %q, which does not parse: %v", raw, got, err)
		}
		if u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != redact.Mask {
				t.Fatalf("URL(%q) = %q: password %q", raw, got, pw)
			} else if !ok && u.User.Username() != "" && u.User.Username() != redact.Mask && u.Scheme != "postgres" && u.Scheme != "postgresql" {
				t.Fatalf("URL(%q) = %q: lone user name %q", raw, got, u.User.Username())
			}
		}
		for p := range strings.SplitSeq(u.RawQuery, "&") {
			if k, v, ok := strings.Cut(p, "="); ok && v != "" && v != redact.Mask || !ok && k != "" && k != redact.Mask {
				t.Fatalf("URL(%q) = %q: query part %q", raw, got, p)
			}
		}
		if u.Fragment != "" && u.Fragment != redact.Mask {
			t.Fatalf("URL(%q) = %q: fragment %q", raw, got, u.Fragment)
		}
	})
}

func ExampleURL() {
	fmt.Println(redact.URL("https://hooks:pa55@sink.example/stripe?token=abc&v=2"))
	fmt.Println(redact.URL("redis://:s3cret@cache:6379/%zz"))
	// Output:
	// https://hooks:xxxxx@sink.example/stripe?token=xxxxx&v=xxxxx
	// <unparseable redis URL>
}

func ExampleError() {
	raw := "redis://:s3cret@cache:6379/%zz"
	_, err := redis.ParseURL(raw)
	fmt.Println(redact.Error(fmt.Errorf("REDIS_URL: %w", err), raw))
	// Output:
	// REDIS_URL: parse "<unparseable redis URL>": invalid URL escape "%zz"
}
