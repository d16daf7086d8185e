// Package browser lets Go tests drive Debian's headless Chromium through
// chromedp.
//
// [Chromium] finds the chromium binary, and installs the Debian package
// chromium with apt-get when the test runs as root and the binary is missing.
// It never skips: a test that needs a browser fails when none can be had.
//
// [New] starts a fresh headless browser for one test and returns a [*Browser].
// Run chromedp actions on its Ctx field. The browser records console calls,
// uncaught exceptions and JavaScript dialogs, and it dismisses every dialog so
// that the page never blocks. The browser stops in t.Cleanup, or when
// [Timeout] has passed.
//
//	b := browser.New(t)
//	if err := chromedp.Do(b.Ctx, chromedp.Navigate(url)); err != nil {
//		t.Fatal(err)
//	}
//	if d := b.Dialogs(); len(d) > 0 {
//		t.Errorf("page opened dialogs: %q", d)
//	}
package browser
