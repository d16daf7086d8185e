package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/oncehook/oncehook/delivery"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
	"github.com/oncehook/oncehook/sink"
)

// evilReason is a reason phrase that retitles the terminal, clears it,
// moves the cursor home and (as C1 CSI) turns the text red.
const evilReason = "\x1b]0;pwned\x07\x1b[2J\x1b[H\u009b31mall good\x7f"

// evilSink answers every request 500 with evilReason as its reason
// phrase, as a hostile or broken HTTP sink can: Go's server never sends
// such a line, so it writes the bytes itself.
func evilSink(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for { // the request's head; the body follows, unread
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = c.Write([]byte("HTTP/1.1 500 " + evilReason + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/hook"
}

// rawControls returns the control characters (but newline), DEL, C1
// controls and bidi overrides in s, or "" when it is safe to print.
func rawControls(s string) string {
	var bad []rune
	for _, r := range s {
		if r < 0x20 && r != '\n' || r >= 0x7f && r < 0xa0 || r >= 0x202a && r <= 0x202e || r == utf8.RuneError {
			bad = append(bad, r)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return string(bad)
}

// TestCommandsEscapeWhatASinkAnswered: a sink's reason phrase carrying
// terminal escapes is stored as the delivery's last error and in its
// history; events show and events list (text and --json) print it, and
// the payload's C1 control, escaped, with no raw control byte, so the
// sink cannot act on the operator's terminal.
func TestCommandsEscapeWhatASinkAnswered(t *testing.T) {
	pool, dbURL := testDB(t) // not parallel: t.Setenv
	ctx := context.Background()
	in := harness.StartInstance(t, harness.InstanceConfig{Pool: pool, Sink: sink.NewHTTP(evilSink(t), nil),
		Delivery: delivery.DispatcherConfig{MaxAttempts: 1, Workers: 1, SweepInterval: 20 * time.Millisecond}})
	body := bytes.Replace(harness.EventBody("evt_term_1", "invoice.paid"), []byte("Zoë"), []byte("Zoë\u009b2J\u202e"), 1)
	if r := harness.Post(t, in.URL, body); r.Code != 200 {
		t.Fatalf("webhook answered %d %s", r.Code, r.Body)
	}
	var stored string
	eventually.Require(t, 30*time.Second, "the delivery to go dead", func() bool {
		err := pool.QueryRow(ctx, `SELECT COALESCE(last_error, '') FROM stripe_webhook_deliveries WHERE event_id = 'evt_term_1' AND status = 'dead'`).Scan(&stored)
		return err == nil
	})
	if !strings.Contains(stored, "\x1b]0;pwned") {
		t.Fatalf("stored last error %q: the sink's reason phrase is not in it, the test shows nothing", stored)
	}

	t.Setenv("DATABASE_URL", dbURL)
	for _, args := range [][]string{
		{"events", "show", "evt_term_1"},
		{"events", "list"},
		{"events", "list", "--status", "dead"},
		{"events", "show", "evt_term_1", "--json"},
		{"events", "list", "--json"},
	} {
		var out bytes.Buffer
		if err := execute(ctx, args, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if bad := rawControls(out.String()); bad != "" {
			t.Errorf("%v prints raw control characters (%q):\n%q", args, bad, out.String())
		}
		want := `\x1b]0;pwned`
		if args[len(args)-1] == "--json" {
			want = `\u001b]0;pwned`
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("%v does not show the reason phrase escaped (%s):\n%s", args, want, out.String())
		}
	}
}
