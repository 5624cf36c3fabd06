package agent_test

import (
	"bytes"
	"image/jpeg"
	"image/png"
	"strconv"
	"testing"
	"time"

	"atelier/internal/agent"
	"atelier/internal/agentapi"
)

// TestScreenshotJPEGMatchesPNG checks the JPEG path, which encodes the
// compositor's frame in place, against the lossless PNG of the same
// screen: bands of red, green and blue in a terminal must come out the
// same colours, the same way up, in the whole screen, a region, and a
// scaled region.
func TestScreenshotJPEGMatchesPNG(t *testing.T) {
	e := start(t)
	band := func(sgr int) string {
		return `for i in 1 2 3 4 5; do printf "\033[` + strconv.Itoa(sgr) + `m%100s\033[0m\n" ""; done; `
	}
	e.sway.Terminal(t, "bands", band(41)+band(42)+band(44)+"ls -l /usr/bin | head -n 20; exec sleep 100000")
	settle(t, e)
	for _, tc := range []struct {
		name   string
		region *agentapi.Region
		scale  float64
	}{
		{"full", nil, 0},
		{"region", &agentapi.Region{X: 3, Y: 5, Width: 301, Height: 251}, 0},
		{"scaled region", &agentapi.Region{X: 0, Y: 0, Width: 900, Height: 400}, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := e.do(t, agentapi.Request{Action: agentapi.Screenshot, Region: tc.region, Scale: tc.scale})
			got := e.do(t, agentapi.Request{Action: agentapi.Screenshot, Region: tc.region, Scale: tc.scale, Format: agentapi.FormatJPEG, Quality: 90})
			want, err := png.Decode(bytes.NewReader(ref.Image.Data))
			if err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(bytes.NewReader(got.Image.Data))
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds() != want.Bounds() {
				t.Fatalf("jpeg %v, png %v", img.Bounds(), want.Bounds())
			}
			if p := agent.PSNR(want, img); p < 30 {
				t.Errorf("jpeg differs from png: PSNR %.1f dB, want ≥ 30", p)
			}
		})
	}
}

// settle waits until two screenshots a quarter second apart are the same.
func settle(t testing.TB, e *env) {
	t.Helper()
	var last []byte
	for range 80 {
		resp := e.do(t, agentapi.Request{Action: agentapi.Screenshot})
		if bytes.Equal(resp.Image.Data, last) {
			return
		}
		last = resp.Image.Data
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal("the screen did not settle in 20s")
}
