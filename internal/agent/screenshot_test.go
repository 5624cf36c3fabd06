package agent

import (
	"bytes"
	"hash/adler32"
	"image/color"
	"image/png"
	"math/rand/v2"
	"testing"

	"atelier/internal/agent/jpegenc"
	"atelier/internal/wayland"
)

// pixelAt reads pixel (x, y) of p in its layout.
func pixelAt(p jpegenc.Pixels, x, y int) color.RGBA {
	if p.BottomUp {
		y = p.Height - 1 - y
	}
	o := y*p.Stride + 4*x
	return color.RGBA{p.Pix[o+p.R], p.Pix[o+p.G], p.Pix[o+p.B], 0xff}
}

func TestEncodePNG(t *testing.T) {
	for _, tc := range []struct {
		w, h    int
		r, b    int
		upside  bool
		padding int
	}{{1, 1, 0, 2, false, 0}, {3, 7, 2, 0, true, 4}, {640, 360, 2, 0, false, 0}, {333, 101, 0, 2, true, 12}} {
		stride := 4*tc.w + tc.padding
		px := jpegenc.Pixels{Pix: make([]byte, stride*tc.h), Width: tc.w, Height: tc.h, Stride: stride, R: tc.r, G: 1, B: tc.b, BottomUp: tc.upside}
		r := rand.New(rand.NewPCG(1, 2))
		for i := range px.Pix {
			px.Pix[i] = byte(r.IntN(4) * 60) // runs and noise
		}
		got, err := png.Decode(bytes.NewReader(encodePNG(px)))
		if err != nil {
			t.Fatalf("%+v: decode: %v", tc, err)
		}
		if b := got.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
			t.Fatalf("%+v: decoded %v", tc, b)
		}
		for y := range tc.h {
			for x := range tc.w {
				if a, b := color.RGBAModel.Convert(got.At(x, y)), pixelAt(px, x, y); a != b {
					t.Fatalf("%+v: pixel (%d,%d) = %v, want %v", tc, x, y, a, b)
				}
			}
		}
	}
}

// TestEncodePNGChanged checks that a PNG taking the unchanged strips from
// the previous one is the same file as a fresh encoding, and that strips
// said unchanged come from the previous PNG, not the pixels.
func TestEncodePNGChanged(t *testing.T) {
	px := jpegenc.Pixels{Pix: make([]byte, 4*320*200), Width: 320, Height: 200, Stride: 4 * 320, R: 2, G: 1, B: 0}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range px.Pix {
		px.Pix[i] = byte(r.IntN(4) * 60)
	}
	first := encodePNGChanged(px, nil, nil)
	next := px
	next.Pix = bytes.Clone(px.Pix)
	for i := 4 * 320 * 60; i < 4*320*62; i++ { // rows 60 and 61
		next.Pix[i] ^= 0x5a
	}
	strips := 0
	got := encodePNGChanged(next, first, func(y0, y1 int) bool {
		strips++
		return y1 > 60 && y0 < 62
	})
	if !bytes.Equal(got.data, encodePNG(next)) {
		t.Fatal("reusing the unchanged strips differs from a fresh encoding")
	}
	if strips != pngStripCount(200) || strips < 2 {
		t.Errorf("asked about %d strips, want %d (at least 2)", strips, pngStripCount(200))
	}
	if stale := encodePNGChanged(next, first, func(int, int) bool { return false }); !bytes.Equal(stale.data, first.data) {
		t.Fatal("all strips unchanged: not the previous PNG")
	}
}

func TestAdler32Combine(t *testing.T) {
	a, b := bytes.Repeat([]byte("screen"), 30000), bytes.Repeat([]byte{0xff, 0, 7}, 50001)
	want := adler32.Checksum(append(append([]byte{}, a...), b...))
	if got := adler32Combine(adler32.Checksum(a), adler32.Checksum(b), len(b)); got != want {
		t.Fatalf("combined %#x, want %#x", got, want)
	}
}

func TestFramePixels(t *testing.T) {
	// Two rows of one pixel, XRGB8888 (bytes B G R X), stored bottom-up.
	f := &wayland.Frame{Width: 1, Height: 2, Stride: 4, Format: wayland.FormatXRGB8888, YInvert: true,
		Pix: []byte{1, 2, 3, 0, 4, 5, 6, 0}}
	px, err := framePixels(f)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := pixelAt(px, 0, 0), pixelAt(px, 0, 1); a != (color.RGBA{6, 5, 4, 0xff}) || b != (color.RGBA{3, 2, 1, 0xff}) {
		t.Fatalf("XRGB pixels %v %v", a, b)
	}
	f.Format, f.YInvert = wayland.FormatXBGR8888, false
	px, _ = framePixels(f)
	if a, b := pixelAt(px, 0, 0), pixelAt(px, 0, 1); a != (color.RGBA{1, 2, 3, 0xff}) || b != (color.RGBA{4, 5, 6, 0xff}) {
		t.Fatalf("XBGR pixels %v %v", a, b)
	}
	if _, err := framePixels(&wayland.Frame{Format: 0x12345678}); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestDownscale(t *testing.T) {
	// 4×2 XRGB, bottom-up: the first stored row is the picture's bottom.
	px := jpegenc.Pixels{Pix: bytes.Repeat([]byte{0xff}, 32), Width: 4, Height: 2, Stride: 16, R: 2, G: 1, B: 0, BottomUp: true}
	px.Pix[16], px.Pix[17], px.Pix[18] = 0, 0, 0 // one black pixel in the top-left 2×2 box
	got := downscale(px, 0.5)
	if got.Width != 2 || got.Height != 1 {
		t.Fatalf("size %dx%d", got.Width, got.Height)
	}
	if p := pixelAt(got, 0, 0); p != (color.RGBA{191, 191, 191, 0xff}) { // (0+255*3)/4 rounded
		t.Fatalf("first pixel %v, want the box mean 191", p)
	}
	if p := pixelAt(got, 1, 0); p != (color.RGBA{255, 255, 255, 0xff}) {
		t.Fatalf("second pixel %v, want white", p)
	}
	big := jpegenc.Pixels{Pix: make([]byte, 4*1280*720), Width: 1280, Height: 720, Stride: 4 * 1280, G: 1, B: 2}
	if got := downscale(big, 0.05); got.Width != 64 || got.Height != 36 {
		t.Fatalf("0.05 of 1280x720 is %dx%d", got.Width, got.Height)
	}
}

func TestSubBytes(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			// The pair in every byte position, beside bytes that would
			// catch a borrow or a carry crossing over.
			for shift := 0; shift < 32; shift += 8 {
				x := uint32(a)<<shift | 0x00ff00ff&^(0xff<<shift)
				y := uint32(b)<<shift | 0xff00ff00&^(0xff<<shift)
				got := subBytes(x, y)
				for k := 0; k < 32; k += 8 {
					if want := byte(x>>k) - byte(y>>k); byte(got>>k) != want {
						t.Fatalf("subBytes(%#x, %#x) = %#x: byte %d is %#x, want %#x", x, y, got, k/8, byte(got>>k), want)
					}
				}
			}
		}
	}
}
