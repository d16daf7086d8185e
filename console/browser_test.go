package console_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/oncehook/oncehook/internal/browser"
	"github.com/oncehook/oncehook/internal/eventually"
	"github.com/oncehook/oncehook/internal/harness"
)

// screenshots is where the browser test saves its pictures:
// CONSOLE_SCREENSHOTS (`make screenshots` sets docs/console), else a
// temporary directory.
func screenshots(t *testing.T) string {
	if dir := os.Getenv("CONSOLE_SCREENSHOTS"); dir != "" {
		return dir
	}
	return t.TempDir()
}

// TestConsoleInARealBrowser drives Debian's headless chromium through the
// on-call path: sign in, filter the events, open one, replay a dead
// letter and see it delivered. Hostile payloads are on the pages
// throughout; nothing of theirs may run.
func TestConsoleInARealBrowser(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := f.console.URL
	dir := screenshots(t)
	for i, typ := range []string{"customer.created", "invoice.paid", "charge.succeeded", "customer.updated", "invoice.finalized"} {
		f.post(t, harness.EventBody("evt_browser_"+string(rune('a'+i)), typ))
	}
	f.post(t, hostileBody("evt_browser_hostile", "invoice.created"))
	f.post(t, harness.EventBody("evt_browser_dead", "invoice.payment_failed"))
	f.waitStatus(t, "evt_browser_hostile", "billing", "dead")
	f.waitStatus(t, "evt_browser_dead", "billing", "dead")

	b := browser.New(t)
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(b.Ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		if err := b.Screenshot(filepath.Join(dir, name+".png")); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}

	// 1. Sign in: the console sends a signed-out browser to the form.
	run("open the console", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot("signin")
	run("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("form.signin button")),
		chromedp.WaitVisible(chromedp.CSS("#overview")))
	// The overview refreshes itself: rates appear without a reload.
	if _, err := chromedp.Run(b.Ctx, chromedp.Poll[bool](`!document.body.innerText.includes("measuring")`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the overview did not refresh itself: %v", err)
	}
	if got := text("#overview"); !strings.Contains(got, "billing") || !strings.Contains(got, "accepted") {
		t.Fatalf("overview: %q", got)
	}
	shot("overview")

	// 2. Filter the events: billing's dead letters of type invoice.payment*.
	run("filter the events",
		chromedp.Click(chromedp.CSS(`header nav a[href="/console/events"]`)),
		chromedp.WaitVisible(chromedp.CSS("form.filters")),
		chromedp.SetValue(chromedp.CSS(`select[name="status"]`), "dead"),
		chromedp.SetValue(chromedp.CSS(`select[name="destination"]`), "billing"),
		chromedp.SendKeys(chromedp.CSS(`input[name="type"]`), "invoice.payment"),
		chromedp.Click(chromedp.CSS(`form.filters button`)))
	// The unfiltered page lists the event too: wait for the filtered one
	// (a script polling in the page would die with the navigation).
	var loc string
	var err error
	eventually.Require(t, 20*time.Second, "the filtered page to load", func() bool {
		loc, err = chromedp.Run(b.Ctx, chromedp.Location())
		return err == nil && strings.Contains(loc, "status=dead")
	}, func() string { return fmt.Sprintf("at %q, %v", loc, err) })
	run("see the filtered list", chromedp.WaitVisible(chromedp.CSS(`a[href="/console/events/evt_browser_dead"]`)))
	if got := text("table.events"); strings.Contains(got, "evt_browser_hostile") || strings.Contains(got, "evt_browser_a") {
		t.Fatalf("the filter let other events through: %q", got)
	}
	shot("events")

	// 3. Open an event: the hostile one shows its markup as text.
	run("open an event",
		chromedp.Navigate(base+"/console/events?type=invoice.created"),
		chromedp.Click(chromedp.CSS(`a[href="/console/events/evt_browser_hostile"]`)),
		chromedp.WaitVisible(chromedp.CSS("pre.payload")))
	if got := text("pre.payload"); !strings.Contains(got, `<script>alert(\"xss-script\")</script>`) || !strings.Contains(got, `onerror=alert(\"xss-img\")`) {
		t.Fatalf("the payload is not shown as text: %q", got)
	}
	if got := text("table.history"); !strings.Contains(got, hostileSink) {
		t.Fatalf("the sink's answer is not shown as text: %q", got)
	}
	shot("event")

	// 4. Replay a dead letter from billing's list, once billing is back.
	run("open the dead letters",
		chromedp.Click(chromedp.CSS(`header nav a[href="/console/dead"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[value="evt_browser_dead"]`)))
	run("ask to replay every dead letter",
		chromedp.Click(chromedp.CSS(`form[action="/console/dead/replay"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".replay-count")))
	// billing takes invoice.*, and fails: four of the events are its dead letters.
	if got := text(".replay-count"); got != "4" {
		t.Fatalf("the confirmation counts %q dead letters, want 4", got)
	}
	shot("confirm")
	run("cancel, select one", chromedp.Click(chromedp.CSS(`main form a`)),
		chromedp.WaitVisible(chromedp.CSS(`input[value="evt_browser_dead"]`)),
		chromedp.Click(chromedp.CSS(`input[value="evt_browser_dead"]`)))
	shot("dead")
	f.billing.failing.Store(false)
	run("replay the selection",
		chromedp.Click(chromedp.CSS(`#replay-selected button`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")))

	// 5. See it delivered, on its page.
	eventually.Require(t, 20*time.Second, "the replayed event shown delivered", func() bool {
		run("open the replayed event", chromedp.Navigate(base+"/console/events/evt_browser_dead"),
			chromedp.WaitVisible(chromedp.CSS("table.deliveries")))
		got := text("table.deliveries")
		return strings.Contains(got, "billing\tdelivered") || strings.Contains(got, "billing delivered")
	}, func() string { return fmt.Sprintf("%q", text("table.deliveries")) })
	if n := f.billing.delivered.Counts()["evt_browser_dead"]; n != 1 {
		t.Fatalf("billing received the replayed event %d times, want 1", n)
	}
	if n := f.billing.delivered.Counts()["evt_browser_hostile"]; n != 0 {
		t.Fatalf("billing received an event that was not replayed (%d times)", n)
	}

	// Nothing from the payloads ran, and the console's own script broke
	// no rule of its policy.
	if d := b.Dialogs(); len(d) != 0 {
		t.Errorf("a payload opened dialogs: %q", d)
	}
	if e := b.Exceptions(); len(e) != 0 {
		t.Errorf("uncaught script errors: %q", e)
	}
	for _, line := range b.Console() {
		if strings.Contains(line, "Content Security Policy") || strings.Contains(line, "xss") {
			t.Errorf("browser console: %s", line)
		}
	}
	t.Logf("screenshots in %s", dir)
}
