package agent

import (
	"bytes"
	"hash/adler32"
	"image"
	"image/png"
	"math/rand/v2"
	"testing"

	"atelier/internal/wayland"
)

func TestEncodePNG(t *testing.T) {
	for _, size := range []image.Point{{1, 1}, {3, 7}, {640, 360}} {
		img := image.NewRGBA(image.Rect(0, 0, size.X, size.Y))
		r := rand.New(rand.NewPCG(1, 2))
		for i := range img.Pix {
			img.Pix[i] = byte(r.IntN(4) * 60) // runs and noise
			if i%4 == 3 {
				img.Pix[i] = 0xff
			}
		}
		got, err := png.Decode(bytes.NewReader(encodePNG(img)))
		if err != nil {
			t.Fatalf("%v: decode: %v", size, err)
		}
		for y := range size.Y {
			for x := range size.X {
				if a, b := got.At(x, y), img.At(x, y); a != b {
					gr, gg, gb, _ := a.RGBA()
					wr, wg, wb, _ := b.RGBA()
					if gr != wr || gg != wg || gb != wb {
						t.Fatalf("%v: pixel (%d,%d) = %v, want %v", size, x, y, a, b)
					}
				}
			}
		}
	}
}

func TestAdler32Combine(t *testing.T) {
	a, b := bytes.Repeat([]byte("screen"), 30000), bytes.Repeat([]byte{0xff, 0, 7}, 50001)
	want := adler32.Checksum(append(append([]byte{}, a...), b...))
	if got := adler32Combine(adler32.Checksum(a), adler32.Checksum(b), len(b)); got != want {
		t.Fatalf("combined %#x, want %#x", got, want)
	}
}

func TestToRGBA(t *testing.T) {
	// Two rows of one pixel, XRGB8888 (bytes B G R X), stored bottom-up.
	f := &wayland.Frame{Width: 1, Height: 2, Stride: 4, Format: wayland.FormatXRGB8888, YInvert: true,
		Pix: []byte{1, 2, 3, 0, 4, 5, 6, 0}}
	img, err := toRGBA(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{6, 5, 4, 0xff, 3, 2, 1, 0xff}; !bytes.Equal(img.Pix, want) {
		t.Fatalf("pixels %v, want %v", img.Pix, want)
	}
	f.Format, f.YInvert = wayland.FormatXBGR8888, false
	img, _ = toRGBA(f)
	if want := []byte{1, 2, 3, 0xff, 4, 5, 6, 0xff}; !bytes.Equal(img.Pix, want) {
		t.Fatalf("XBGR pixels %v, want %v", img.Pix, want)
	}
	if _, err := toRGBA(&wayland.Frame{Format: 0x12345678}); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestDownscale(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 4, 2))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	img.Pix[0], img.Pix[1], img.Pix[2] = 0, 0, 0 // one black pixel in the first 2×2 box
	got := downscale(img, 0.5)
	if b := got.Bounds(); b.Dx() != 2 || b.Dy() != 1 {
		t.Fatalf("size %v", b)
	}
	if p := got.Pix[:4]; p[0] != 191 || p[3] != 0xff { // (0+255*3)/4 rounded
		t.Fatalf("first pixel %v, want the box mean 191", p)
	}
	if got := downscale(image.NewRGBA(image.Rect(0, 0, 1280, 720)), 0.05).Bounds(); got.Dx() != 64 || got.Dy() != 36 {
		t.Fatalf("0.05 of 1280x720 is %v", got)
	}
}
