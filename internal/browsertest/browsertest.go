// Package browsertest starts Debian's Chromium, headless, for tests that
// drive the fleet's pages (chromedp); a host without it skips them, loudly.
package browsertest

import (
	"context"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's chromium.
const ChromiumPath = "/usr/bin/chromium"

// Start starts a headless Chromium with a window of width×height and
// returns its context; it stops when the test ends.
func Start(t testing.TB, width, height int) context.Context {
	t.Helper()
	if _, err := exec.LookPath(ChromiumPath); err != nil {
		t.Skip("SKIP: chromium is not installed (apt-get install chromium); browser tests cannot run")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(width, height),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}
