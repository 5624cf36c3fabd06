//go:build turbojpeg

package turbo_test

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"atelier/internal/agent/jpegenc"
	"atelier/internal/agent/jpegenc/turbo"
)

// BenchmarkCompare encodes the agent's real 1280×720 test screens (a
// terminal of text, a web page; BGRX as a capture holds them) with the
// hand-written encoder and with libjpeg-turbo, at quality 80, 4:2:0, and
// reports wall p50/p99, CPU per encode, size and PSNR against the source.
func BenchmarkCompare(b *testing.B) {
	for _, screen := range []string{"text", "page"} {
		px, src := load(b, "../../testdata/screen-"+screen+".png")
		te, err := turbo.New()
		if err != nil {
			b.Fatal(err)
		}
		defer te.Close()
		for _, bc := range []struct {
			name string
			enc  func() []byte
		}{
			{"jpegenc", func() []byte {
				out, err := jpegenc.Encode(nil, px, 80)
				if err != nil {
					b.Fatal(err)
				}
				return out
			}},
			{"turbojpeg", func() []byte {
				out, err := te.Encode(px, 80)
				if err != nil {
					b.Fatal(err)
				}
				return out
			}},
		} {
			b.Run(screen+"/"+bc.name, func(b *testing.B) {
				var times []time.Duration
				var out []byte
				cpu0 := cpuTime()
				for b.Loop() {
					t0 := time.Now()
					out = bc.enc()
					times = append(times, time.Since(t0))
				}
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(times)), "cpu-ms/op")
				slices.Sort(times)
				for _, q := range []int{50, 99} {
					b.ReportMetric(float64(times[q*(len(times)-1)/100].Microseconds())/1000, fmt.Sprintf("p%d-ms", q))
				}
				b.ReportMetric(float64(len(out)), "bytes")
				dec, err := jpeg.Decode(bytes.NewReader(out))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(psnr(src, dec), "PSNR-dB")
			})
		}
	}
}

func load(b *testing.B, name string) (jpegenc.Pixels, *image.RGBA) {
	f, err := os.ReadFile(name)
	if err != nil {
		b.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		b.Fatal(err)
	}
	rgba := image.NewRGBA(img.Bounds())
	draw.Draw(rgba, rgba.Rect, img, img.Bounds().Min, draw.Src)
	px := jpegenc.Pixels{Pix: make([]byte, len(rgba.Pix)), Width: rgba.Rect.Dx(), Height: rgba.Rect.Dy(), Stride: rgba.Stride, R: 2, G: 1, B: 0}
	for i := 0; i < len(px.Pix); i += 4 {
		px.Pix[i], px.Pix[i+1], px.Pix[i+2] = rgba.Pix[i+2], rgba.Pix[i+1], rgba.Pix[i]
	}
	return px, rgba
}

func psnr(a *image.RGBA, b image.Image) float64 {
	var se float64
	for y := range a.Rect.Dy() {
		for x := range a.Rect.Dx() {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			for _, d := range []float64{float64(r1>>8) - float64(r2>>8), float64(g1>>8) - float64(g2>>8), float64(b1>>8) - float64(b2>>8)} {
				se += d * d
			}
		}
	}
	mse := se / float64(3*a.Rect.Dx()*a.Rect.Dy())
	return 10 * math.Log10(255*255/mse)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
