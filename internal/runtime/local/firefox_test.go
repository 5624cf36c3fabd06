package local

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/runtime"
	"atelier/internal/runtime/runtimetest"
)

// TestFirefoxRenders: under the seccomp filter and without user
// namespaces, Firefox (whose own sandbox would use both) starts, maps its
// window in sway and renders a page.
func TestFirefoxRenders(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: Firefox takes long to start: skipped with -short")
	}
	r := newRuntime(t, Options{})
	id := startDesktop(t, r, runtime.Spec{})
	runtimetest.RunInTerminal(t, r, id, `echo '<body style="background:rgb(0,200,0)">' > ~/green.html; `+
		`(firefox-esr --new-instance --profile "$(mktemp -d)" ~/green.html > ~/ff.log 2>&1 &); `+
		`for i in $(seq 180); do swaymsg -t get_tree | grep -q '"app_id": "firefox-esr"' && break; sleep 1; done; `+
		`swaymsg -t get_tree | grep -c '"app_id": "firefox-esr"' > ~/ff-window`)
	c := runtimetest.Agent(t, r, id)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		files := runtimetest.HomeFiles(t, r, id)
		if w, ok := files["ff-window"]; ok && strings.TrimSpace(w) != "0" && greenShare(t, c) > 0.3 {
			t.Logf("Firefox's window is mapped and renders the page; its log:\n%s", files["ff.log"])
			return
		}
		if time.Now().After(deadline) {
			saveScreen(t, c)
			t.Fatalf("no rendered Firefox window within 2 min (window count %q); its log:\n%s", files["ff-window"], files["ff.log"])
		}
		time.Sleep(time.Second)
	}
}

// saveScreen writes the screen to a file, to explain a failure.
func saveScreen(t *testing.T, c *agentapi.Client) {
	resp, err := c.Do(t.Context(), agentapi.Request{Action: agentapi.Screenshot})
	if err == nil && resp.Image != nil {
		p := filepath.Join(os.TempDir(), "firefox-"+t.Name()+".png")
		os.WriteFile(p, resp.Image.Data, 0o644)
		t.Logf("screen: %s", p)
	}
}

// greenShare is the share of the screen the test page's green covers.
func greenShare(t *testing.T, c *agentapi.Client) float64 {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, agentapi.Request{Action: agentapi.Screenshot})
	if err != nil || resp.Image == nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(resp.Image.Data))
	if err != nil {
		t.Fatal(err)
	}
	b, n := img.Bounds(), 0
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 < 16 && g>>8 > 190 && g>>8 < 210 && bl>>8 < 16 {
				n++
			}
		}
	}
	return float64(n) / float64((b.Dx()/4+1)*(b.Dy()/4+1))
}
