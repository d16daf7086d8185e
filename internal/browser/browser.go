package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Timeout bounds the life of a browser from New. When it passes, the browser
// stops and every action on Ctx fails.
const Timeout = 2 * time.Minute

// Browser is one headless Chromium with one tab, for one test.
type Browser struct {
	// Ctx is the chromedp context of the tab. Pass it to chromedp.Do and
	// chromedp.Run.
	Ctx context.Context

	mu         sync.Mutex
	console    []string
	exceptions []string
	dialogs    []string
	dismissing sync.WaitGroup
}

// New starts a headless Chromium with a fresh profile in t.TempDir and opens
// a tab. It calls t.Fatalf when the browser cannot start. t.Cleanup stops the
// browser.
func New(t testing.TB) *Browser {
	t.Helper()
	execPath := Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	b := &Browser{}
	timeoutCtx, cancelTimeout := context.WithTimeout(context.Background(), Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(timeoutCtx, opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	b.Ctx = ctx
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for the browser process to exit
		cancelTimeout()
		b.dismissing.Wait()
	})
	// The first action starts the browser and opens the tab.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium %s: %v", execPath, err)
	}
	return b
}

// listen runs on chromedp's read loop, so it only records and never blocks.
func (b *Browser) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		b.add(&b.console, string(ev.Type)+": "+argsText(ev.Args))
	case *runtime.EventExceptionThrown:
		b.add(&b.exceptions, exceptionText(ev.ExceptionDetails))
	case *page.EventJavascriptDialogOpening:
		b.add(&b.dialogs, string(ev.Type)+": "+ev.Message)
		b.dismissing.Go(func() {
			// A dialog blocks the page until it is handled. The error only
			// means the tab is gone, and then so is the dialog.
			_, _ = chromedp.Call(b.Ctx, page.HandleJavaScriptDialog,
				page.HandleJavaScriptDialogParams{Accept: false})
		})
	}
}

func (b *Browser) add(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, s)
}

func (b *Browser) get(list *[]string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), *list...)
}

// Console returns the console API calls so far, as "type: args", for
// example "log: hello 42". Format verbs such as %s are not expanded.
func (b *Browser) Console() []string { return b.get(&b.console) }

// Exceptions returns the uncaught JavaScript exceptions so far, such as
// "Uncaught Error: boom".
func (b *Browser) Exceptions() []string { return b.get(&b.exceptions) }

// Dialogs returns the JavaScript dialogs opened so far, as "type: message",
// for example "alert: 1". Each one was dismissed.
func (b *Browser) Dialogs() []string { return b.get(&b.dialogs) }

// Screenshot saves a PNG of the whole page to path, creating its directory.
func (b *Browser) Screenshot(path string) error {
	buf, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, buf, 0o644)
}

func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		parts = append(parts, objectText(a))
	}
	return strings.Join(parts, " ")
}

func objectText(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if len(o.Value) > 0 {
		var s string
		if o.Type == runtime.RemoteObjectTypeString && json.Unmarshal(o.Value, &s) == nil {
			return s
		}
		return string(o.Value)
	}
	if o.UnserializableValue != "" {
		return string(o.UnserializableValue)
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Type)
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return ""
	}
	if d.Exception == nil {
		return d.Text
	}
	return d.Text + " " + objectText(d.Exception)
}
