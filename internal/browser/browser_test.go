package browser

import (
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

func testServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>log</title>
<h1 style="height:1500px">hello</h1><script src="/app.js"></script>`))
	})
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write([]byte(`console.log("from app.js", 42);
setTimeout(() => { throw new Error("boom"); }, 0);`))
	})
	mux.HandleFunc("/alert", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>alert</title>
<script>alert("pwned"); document.title = "after";</script>`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestConsoleExceptionsScreenshot(t *testing.T) {
	srv := testServer(t)
	b := New(t)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(srv.URL+"/log")); err != nil {
		t.Fatal(err)
	}
	// The timer's exception may come just after the load event.
	if _, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool](
		`new Promise(r => setTimeout(() => r(true), 50))`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	if got := b.Console(); !slices.Contains(got, "log: from app.js 42") {
		t.Errorf("Console() = %q, want it to hold %q", got, "log: from app.js 42")
	}
	if got := b.Exceptions(); len(got) != 1 || !strings.Contains(got[0], "Error: boom") {
		t.Errorf("Exceptions() = %q, want one with Error: boom", got)
	}
	if got := b.Dialogs(); len(got) != 0 {
		t.Errorf("Dialogs() = %q, want none", got)
	}

	path := filepath.Join(t.TempDir(), "shots", "log.png")
	if err := b.Screenshot(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() != 1280 || r.Dy() < 1500 {
		t.Errorf("screenshot is %dx%d, want 1280 wide and the full page tall", r.Dx(), r.Dy())
	}
}

func TestDialogsDismissed(t *testing.T) {
	srv := testServer(t)
	b := New(t)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(srv.URL+"/alert")); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(b.Ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if title != "after" {
		t.Errorf("title = %q, want %q: the page stayed blocked", title, "after")
	}
	if got, want := b.Dialogs(), []string{"alert: pwned"}; !slices.Equal(got, want) {
		t.Errorf("Dialogs() = %q, want %q", got, want)
	}
}
