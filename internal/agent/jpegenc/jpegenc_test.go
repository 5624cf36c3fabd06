package jpegenc

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

// screen draws a desktop-like picture as XRGB8888 (bytes B, G, R, X): a
// title bar with a gradient, a light page of dark anti-aliased "text",
// a dark terminal pane of coloured text, buttons, and a smooth
// photo-like patch.
func screen(w, h int) Pixels {
	const cellW, cellH = 8, 16
	pix := make([]byte, 4*w*h)
	set := func(x, y int, r, g, b byte) {
		o := 4 * (y*w + x)
		pix[o], pix[o+1], pix[o+2], pix[o+3] = b, g, r, 0xff
	}
	rnd := rand.New(rand.NewPCG(7, 11))
	// Ninety-six random glyphs: a 5×9 bitmap of strokes in a cell.
	var glyphs [96][cellH][cellW]uint8
	for i := range glyphs {
		for y := 3; y < 12; y++ {
			for x := 1; x < 6; x++ {
				if rnd.IntN(100) < 40 {
					glyphs[i][y][x] = 255
				}
			}
		}
		for y := range cellH { // soften edges as a font rasteriser does
			row := glyphs[i][y]
			for x := 1; x < cellW-1; x++ {
				glyphs[i][y][x] = uint8((int(row[x-1]) + 2*int(row[x]) + int(row[x+1])) / 4)
			}
		}
	}
	blend := func(a, b byte, t uint8) byte { return byte((int(a)*(255-int(t)) + int(b)*int(t)) / 255) }
	split := w / 2
	for y := range h {
		for x := range w {
			switch {
			case y < 28: // title bar
				v := byte(60 + 40*x/max(w, 1))
				set(x, y, v, v+20, v+60)
			case x < split: // page
				set(x, y, 250, 250, 247)
			default: // terminal
				set(x, y, 30, 30, 46)
			}
		}
	}
	// Text, word by word, on both panes.
	for _, pane := range []struct {
		x0, x1  int
		fg      [3]byte
		bg      [3]byte
		colours bool
	}{{8, split - 8, [3]byte{32, 32, 32}, [3]byte{250, 250, 247}, false}, {split + 4, w - 4, [3]byte{205, 214, 244}, [3]byte{30, 30, 46}, true}} {
		for ty := 36; ty+cellH <= h; ty += cellH + 2 {
			fg := pane.fg
			if pane.colours && rnd.IntN(4) == 0 {
				fg = [3]byte{166, 227, 161}
			}
			x := pane.x0
			for x+cellW <= pane.x1 {
				n := 1 + rnd.IntN(9)
				for ; n > 0 && x+cellW <= pane.x1; n-- {
					g := &glyphs[rnd.IntN(len(glyphs))]
					for gy := range cellH {
						for gx := range cellW {
							t := g[gy][gx]
							set(x+gx, ty+gy, blend(pane.bg[0], fg[0], t), blend(pane.bg[1], fg[1], t), blend(pane.bg[2], fg[2], t))
						}
					}
					x += cellW
				}
				x += cellW // a space
				if rnd.IntN(12) == 0 {
					break // a short line
				}
			}
		}
	}
	// Buttons and a photo-like patch in the lower right.
	for i := range 3 {
		for y := h - 40; y < h-16 && y >= 0; y++ {
			for x := 16 + i*90; x < 96+i*90 && x < split; x++ {
				set(x, y, byte(40+i*80), byte(120+i*40), 200)
			}
		}
	}
	for y := h * 2 / 3; y < h; y++ {
		for x := w * 3 / 4; x < w; x++ {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			set(x, y, byte(128+100*math.Sin(9*fx)), byte(128+100*math.Cos(7*fy)), byte(255*fx*fy))
		}
	}
	return Pixels{Pix: pix, Width: w, Height: h, Stride: 4 * w, B: 0, G: 1, R: 2}
}

// at returns pixel (x, y) of p, honouring its layout.
func (p *Pixels) at(x, y int) (r, g, b byte) {
	if p.BottomUp {
		y = p.Height - 1 - y
	}
	o := y*p.Stride + 4*x
	return p.Pix[o+p.R], p.Pix[o+p.G], p.Pix[o+p.B]
}

// psnr compares the decoded img with p over the three channels.
func psnr(t testing.TB, p *Pixels, img image.Image) float64 {
	t.Helper()
	var se float64
	for y := range p.Height {
		for x := range p.Width {
			r, g, b := p.at(x, y)
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			for _, d := range []int{int(r) - int(c.R), int(g) - int(c.G), int(b) - int(c.B)} {
				se += float64(d * d)
			}
		}
	}
	mse := se / float64(3*p.Width*p.Height)
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

func decode(t testing.TB, data []byte, w, h int) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%dx%d: stdlib decode: %v", w, h, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("decoded %v, want %dx%d", b, w, h)
	}
	return img
}

// TestEncodeSizes decodes the output with image/jpeg at many sizes and
// compares it with the source and with image/jpeg's own encoding: the
// quality must match the standard library's, and reach 30 dB on images
// big enough for the test picture to look like a screen (tiny ones are
// one colour edge that 4:2:0 chroma cannot hold).
func TestEncodeSizes(t *testing.T) {
	for _, sz := range []image.Point{{1, 1}, {2, 2}, {7, 3}, {15, 17}, {16, 16}, {17, 33}, {70, 30}, {100, 75}, {333, 211}, {640, 360}, {1280, 720}} {
		t.Run(fmt.Sprintf("%dx%d", sz.X, sz.Y), func(t *testing.T) {
			p := screen(sz.X, sz.Y)
			data, err := Encode(nil, p, 80)
			if err != nil {
				t.Fatal(err)
			}
			got := psnr(t, &p, decode(t, data, sz.X, sz.Y))
			var std bytes.Buffer
			if err := jpeg.Encode(&std, p.rgba(), &jpeg.Options{Quality: 80}); err != nil {
				t.Fatal(err)
			}
			want := psnr(t, &p, decode(t, std.Bytes(), sz.X, sz.Y))
			t.Logf("%d bytes, PSNR %.1f dB; image/jpeg %d bytes, %.1f dB", len(data), got, std.Len(), want)
			if got < want-0.3 || (sz.X >= 64 && got < 30) {
				t.Errorf("PSNR %.1f dB at quality 80, want ≥ 30 and ≥ image/jpeg's %.1f", got, want)
			}
			if len(data) > std.Len()*21/20+64 {
				t.Errorf("%d bytes, image/jpeg needs %d", len(data), std.Len())
			}
		})
	}
}

// rgba copies p into an image.RGBA.
func (p *Pixels) rgba() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, p.Width, p.Height))
	for y := range p.Height {
		for x := range p.Width {
			r, g, b := p.at(x, y)
			img.SetRGBA(x, y, color.RGBA{r, g, b, 0xff})
		}
	}
	return img
}

// TestEncodeRegion encodes a window into a larger buffer (a stride wider
// than the width, an offset start), as a region of a capture is.
func TestEncodeRegion(t *testing.T) {
	full := screen(640, 360)
	x0, y0, w, h := 101, 57, 203, 119
	p := full
	p.Pix = full.Pix[y0*full.Stride+4*x0:]
	p.Width, p.Height = w, h
	data, err := Encode(nil, p, 80)
	if err != nil {
		t.Fatal(err)
	}
	if got := psnr(t, &p, decode(t, data, w, h)); got < 30 {
		t.Errorf("PSNR %.1f dB, want ≥ 30", got)
	}
}

// TestEncodeLayouts checks that the same picture gives the same bytes
// whatever the channel order and row order it is stored in.
func TestEncodeLayouts(t *testing.T) {
	xrgb := screen(77, 45)
	want, err := Encode(nil, xrgb, 75)
	if err != nil {
		t.Fatal(err)
	}
	rgba := xrgb.rgba()
	flipped := make([]byte, len(xrgb.Pix))
	for y := range 45 {
		for x := range 77 {
			copy(flipped[(44-y)*xrgb.Stride+4*x:], xrgb.Pix[y*xrgb.Stride+4*x:][:4])
		}
	}
	for name, p := range map[string]Pixels{
		"rgba":      {Pix: rgba.Pix, Width: 77, Height: 45, Stride: rgba.Stride, R: 0, G: 1, B: 2},
		"bottom-up": {Pix: flipped, Width: 77, Height: 45, Stride: xrgb.Stride, R: 2, G: 1, B: 0, BottomUp: true},
	} {
		got, err := Encode(nil, p, 75)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoding differs from the XRGB one", name)
		}
	}
}

// TestEncodeParallelSame checks that the strips join into the same file
// whatever the number of workers, and that each MCU row but the last ends
// with the next restart marker.
func TestEncodeParallelSame(t *testing.T) {
	p := screen(300, 200) // 13 MCU rows
	prev := runtime.GOMAXPROCS(1)
	one, err := Encode(nil, p, 80)
	runtime.GOMAXPROCS(5)
	many, err2 := Encode(nil, p, 80)
	runtime.GOMAXPROCS(prev)
	if err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	if !bytes.Equal(one, many) {
		t.Fatal("one worker and five workers encode differently")
	}
	var rst []byte
	sos := bytes.Index(one, []byte{0xff, 0xda})
	for i := sos + 14; i+1 < len(one); i++ {
		if one[i] == 0xff && one[i+1] >= 0xd0 && one[i+1] <= 0xd7 {
			rst = append(rst, one[i+1]-0xd0)
		}
	}
	want := []byte{0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3}
	if !bytes.Equal(rst, want) {
		t.Fatalf("restart markers %v, want %v", rst, want)
	}
}

// TestEncodeAppends checks that Encode appends to dst. (How much it
// allocates is reported by the benchmarks, not asserted here.)
func TestEncodeAppends(t *testing.T) {
	p := screen(320, 200)
	want, err := Encode(nil, p, 80)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Encode([]byte("prefix"), p, 80)
	if err != nil || string(got[:6]) != "prefix" || !bytes.Equal(got[6:], want) {
		t.Fatalf("appended %d bytes after %q (err %v), want the %d of a fresh encoding", len(got)-6, got[:min(6, len(got))], err, len(want))
	}
}

func TestEncodeQuality(t *testing.T) {
	p := screen(320, 180)
	prevSize, prevPSNR := 0, 0.0
	for _, q := range []int{1, 10, 30, 50, 80, 95, 100} {
		data, err := Encode(nil, p, q)
		if err != nil {
			t.Fatal(err)
		}
		got := psnr(t, &p, decode(t, data, 320, 180))
		t.Logf("quality %d: %d bytes, %.1f dB", q, len(data), got)
		if len(data) <= prevSize || got <= prevPSNR {
			t.Errorf("quality %d: %d bytes, %.1f dB; not above the lower quality's %d bytes, %.1f dB", q, len(data), got, prevSize, prevPSNR)
		}
		prevSize, prevPSNR = len(data), got
	}
}

func TestEncodeBadInput(t *testing.T) {
	good := screen(20, 10)
	dst := []byte("keep")
	for name, tc := range map[string]struct {
		p Pixels
		q int
	}{
		"quality 0":     {good, 0},
		"quality 101":   {good, 101},
		"zero width":    {Pixels{Pix: good.Pix, Width: 0, Height: 10, Stride: 80}, 80},
		"too wide":      {Pixels{Pix: good.Pix, Width: 70000, Height: 1, Stride: 280000}, 80},
		"short pixels":  {Pixels{Pix: good.Pix[:799], Width: 20, Height: 10, Stride: 80}, 80},
		"narrow stride": {Pixels{Pix: good.Pix, Width: 20, Height: 10, Stride: 79}, 80},
		"offset 4":      {Pixels{Pix: good.Pix, Width: 20, Height: 10, Stride: 80, R: 4}, 80},
	} {
		got, err := Encode(dst, tc.p, tc.q)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if string(got) != "keep" {
			t.Errorf("%s: dst changed to %q", name, got)
		}
	}
}

// TestFlatShortcut checks that the shortcut for a constant block gives
// what the transform gives.
func TestFlatShortcut(t *testing.T) {
	q := makeQuant(&baseLuma, 90)
	for _, v := range []float32{-128, -77, 0, 3, 127} {
		var blk [64]float32
		for i := range blk {
			blk[i] = v
		}
		want := quantize(64 * v * q.recip[0])
		fdct(&blk)
		if got := quantize(blk[0] * q.recip[0]); got != want {
			t.Errorf("value %v: DCT gives DC %d, shortcut %d", v, got, want)
		}
		for i, c := range blk[1:] {
			if math.Abs(float64(c)) > 1e-3 {
				t.Fatalf("value %v: AC %d is %v", v, i+1, c)
			}
		}
	}
}

func TestTables(t *testing.T) {
	if want := []uint8{0, 1, 8, 16, 9, 2, 3, 10, 17, 24}; !bytes.Equal(zigzag[:10], want) {
		t.Errorf("zigzag starts %v, want %v", zigzag[:10], want)
	}
	if want := []uint8{61, 54, 47, 55, 62, 63}; !bytes.Equal(zigzag[58:], want) {
		t.Errorf("zigzag ends %v, want %v", zigzag[58:], want)
	}
	seen := map[uint8]bool{}
	for _, n := range zigzag {
		seen[n] = true
	}
	if len(seen) != 64 {
		t.Errorf("zigzag covers %d positions", len(seen))
	}
	for name, s := range map[string]*huffSpec{"luma DC": &specLumaDC, "chroma DC": &specChromaDC, "luma AC": &specLumaAC, "chroma AC": &specChromaAC} {
		n := 0
		for _, c := range s.counts {
			n += int(c)
		}
		want := 162
		if name[len(name)-2:] == "DC" {
			want = 12
		}
		if n != want || len(s.symbols) != want {
			t.Errorf("%s: %d codes for %d symbols, want %d", name, n, len(s.symbols), want)
		}
	}
	if q := makeQuant(&baseLuma, 50); q.dqt[0] != 16 || q.dqt[63] != 99 {
		t.Errorf("quality 50 is not the base table: %v", q.dqt)
	}
	if q := makeQuant(&baseChroma, 100); slices.ContainsFunc(q.dqt[:], func(v uint8) bool { return v != 1 }) {
		t.Errorf("quality 100 is not all ones: %v", q.dqt)
	}
}

func FuzzEncode(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(80), uint8(0), []byte{1, 2, 3, 4})
	f.Add(uint8(17), uint8(33), uint8(1), uint8(3), []byte{0xff, 0, 0xff, 0x80})
	f.Add(uint8(40), uint8(9), uint8(100), uint8(1), []byte{0xff})
	f.Fuzz(func(t *testing.T, w, h, quality, layout uint8, seed []byte) {
		width, height, q := 1+int(w%48), 1+int(h%48), 1+int(quality%100)
		if len(seed) == 0 {
			seed = []byte{0}
		}
		pix := make([]byte, 4*width*height+int(layout>>4)) // slack past the end
		for i := range pix {
			pix[i] = seed[i%len(seed)] ^ byte(i*int(layout|1))
		}
		p := Pixels{Pix: pix, Width: width, Height: height, Stride: 4 * width, R: int(layout) & 3, G: int(layout>>1) & 3, B: int(layout>>2) & 3, BottomUp: layout&0x80 != 0}
		data, err := Encode(nil, p, q)
		if err != nil {
			t.Fatal(err)
		}
		decode(t, data, width, height)
	})
}

// BenchmarkEncode1280x720 encodes a desktop-like screen with this package
// and with image/jpeg, and reports per-call p50/p95/p99 in milliseconds.
func BenchmarkEncode1280x720(b *testing.B) {
	b.ReportAllocs()
	p := screen(1280, 720)
	img := p.rgba()
	var out []byte
	var buf bytes.Buffer
	for _, bc := range []struct {
		name string
		enc  func() int
	}{
		{"jpegenc", func() int {
			var err error
			if out, err = Encode(out[:0], p, 80); err != nil {
				b.Fatal(err)
			}
			return len(out)
		}},
		{"stdlib", func() int {
			buf.Reset()
			if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
				b.Fatal(err)
			}
			return buf.Len()
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var times []time.Duration
			size := 0
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			for b.Loop() {
				t0 := time.Now()
				size = bc.enc()
				times = append(times, time.Since(t0))
			}
			// CPU time on all threads: on a shared machine it shows the
			// work done where the wall clock also shows waiting for a CPU.
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
			b.ReportMetric(float64(cpu)/1e6/float64(len(times)), "cpu-ms/op")
			reportPercentiles(b, times)
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

// reportPercentiles reports p50, p95 and p99 of times in milliseconds.
func reportPercentiles(b *testing.B, times []time.Duration) {
	slices.Sort(times)
	for _, q := range []float64{50, 95, 99} {
		d := times[int(q/100*float64(len(times)-1))]
		b.ReportMetric(float64(d.Microseconds())/1000, fmt.Sprintf("p%d-ms", int(q)))
	}
}

// TestEncodeChanged checks that an encoding reusing the unchanged rows of
// the previous one is the same file as a fresh encoding, and that rows
// said unchanged are taken from the previous encoding, not the pixels.
func TestEncodeChanged(t *testing.T) {
	p := screen(300, 200) // 13 MCU rows
	first, err := EncodeChanged(p, 80, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fresh, _ := Encode(nil, p, 80); !bytes.Equal(first.Data, fresh) {
		t.Fatal("EncodeChanged without a previous encoding differs from Encode")
	}
	// Change pixel rows 40..49: MCU rows 2 and 3.
	q := p
	q.Pix = bytes.Clone(p.Pix)
	for y := 40; y < 50; y++ {
		for x := range 4 * q.Width {
			q.Pix[y*q.Stride+x] ^= 0x5a
		}
	}
	var asked [][2]int
	next, err := EncodeChanged(q, 80, first, func(y0, y1 int) bool {
		asked = append(asked, [2]int{y0, y1})
		return y1 > 40 && y0 < 50
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 13 || asked[12] != [2]int{192, 200} {
		t.Errorf("asked about rows %v, want 13 spans ending [192 200]", asked)
	}
	if fresh, _ := Encode(nil, q, 80); !bytes.Equal(next.Data, fresh) {
		t.Fatal("reusing the unchanged rows differs from a fresh encoding")
	}
	// Said unchanged: the old rows stay, whatever the pixels.
	stale, err := EncodeChanged(q, 80, first, func(int, int) bool { return false })
	if err != nil || !bytes.Equal(stale.Data, first.Data) {
		t.Fatalf("all rows unchanged: not the previous encoding (err %v)", err)
	}
	// Another quality: nothing reused.
	other, err := EncodeChanged(q, 90, next, func(int, int) bool { return false })
	if fresh, _ := Encode(nil, q, 90); err != nil || !bytes.Equal(other.Data, fresh) {
		t.Fatalf("another quality reused rows (err %v)", err)
	}
}
