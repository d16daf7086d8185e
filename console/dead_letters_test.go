package console_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/oncehook/oncehook/internal/harness"
)

// lastErrorCell is a last-error cell of the dead-letter list: its title
// and its text.
var lastErrorCell = regexp.MustCompile(`<td class="sink-answer last-error"><span title="([^"]*)">([^<]*)</span> <span class="muted">\((\d+ attempts?)\)</span></td>`)

// TestDeadLettersShowTheLastError: the dead-letter list has a column with
// each dead letter's last error at the destination shown, as text (the
// sink's answer holds markup), cut to a bound.
func TestDeadLettersShowTheLastError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := f.console.URL
	f.post(t, harness.EventBody("evt_lasterr_a", "invoice.paid"))
	f.post(t, harness.EventBody("evt_lasterr_b", "invoice.paid"))
	f.waitStatus(t, "evt_lasterr_a", "billing", "dead")
	f.waitStatus(t, "evt_lasterr_b", "billing", "dead")
	long := strings.Repeat("é", 500) // 1000 bytes, the stored bound
	if _, err := f.in.Pool().Exec(t.Context(), `UPDATE stripe_webhook_deliveries SET last_error = $1
		WHERE event_id = 'evt_lasterr_b' AND destination = 'billing'`, long); err != nil {
		t.Fatal(err)
	}
	c := client(t)
	signIn(t, c, base)
	p := get(t, c, base+"/console/dead?destination=billing")
	if p.code != 200 || !strings.Contains(p.body, "<th>last error (billing)</th>") {
		t.Fatalf("dead letters: %d, no last-error column:\n%s", p.code, p.body)
	}
	cells := lastErrorCell.FindAllStringSubmatch(p.body, -1)
	if len(cells) != 2 {
		t.Fatalf("%d last-error cells, want 2:\n%s", len(cells), p.body)
	}
	escaped := "&lt;img src=x onerror=alert(&#34;xss-sink&#34;)&gt; 502 from upstream"
	var sawSink, sawLong bool
	for _, m := range cells {
		title, text, attempts := m[1], m[2], m[3]
		if attempts != "1 attempt" {
			t.Errorf("attempts %q, want 1 attempt", attempts)
		}
		switch {
		case text == escaped && title == escaped:
			sawSink = true
		case title == long && strings.HasSuffix(text, "…") && len(text) <= 300+len("…") && strings.HasPrefix(long, strings.TrimSuffix(text, "…")):
			sawLong = true
		default:
			t.Errorf("cell title %q text %q", title, text)
		}
	}
	if !sawSink || !sawLong {
		t.Errorf("want the sink's answer escaped (%v) and the long error cut with its whole text in the title (%v)", sawSink, sawLong)
	}
	if events := get(t, c, base+"/console/events").body; strings.Contains(events, "last error (") {
		t.Errorf("the events list has a last-error column; only the dead letters do")
	}
}
