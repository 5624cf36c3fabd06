package agent

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
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
)

// loadScreen reads a screenshot from testdata as a capture would hold it:
// XRGB8888, bytes B G R X.
func loadScreen(b *testing.B, name string) (jpegenc.Pixels, *image.RGBA) {
	f, err := os.ReadFile("testdata/" + name)
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
		px.Pix[i], px.Pix[i+1], px.Pix[i+2], px.Pix[i+3] = rgba.Pix[i+2], rgba.Pix[i+1], rgba.Pix[i], 0
	}
	return px, rgba
}

// moreEncoders are encoders to compare, added by files built with a tag
// (turbo_bench_test.go: libjpeg-turbo).
var moreEncoders []struct {
	name string
	enc  func(jpegenc.Pixels) ([]byte, error)
}

// BenchmarkEncode times the screenshot encoders alone on real 1280×720
// screens (testdata: a terminal full of text, a web page), beside the
// standard library's encoders, with p50/p95/p99 in milliseconds, CPU time
// per encode, size, and PSNR against the screen.
func BenchmarkEncode(b *testing.B) {
	for _, screen := range []string{"screen-text.png", "screen-page.png"} {
		px, rgba := loadScreen(b, screen)
		stdPNG := png.Encoder{CompressionLevel: png.BestSpeed}
		cases := []struct {
			name string
			enc  func() []byte
		}{
			{"png", func() []byte { return encodePNG(px) }},
			{"jpeg", func() []byte {
				data, err := encode(px, "jpeg", 0)
				if err != nil {
					b.Fatal(err)
				}
				return data
			}},
			{"stdlib_png", func() []byte {
				var buf bytes.Buffer
				stdPNG.Encode(&buf, rgba)
				return buf.Bytes()
			}},
			{"stdlib_jpeg", func() []byte {
				var buf bytes.Buffer
				jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: DefaultJPEGQuality})
				return buf.Bytes()
			}},
		}
		for _, m := range moreEncoders {
			cases = append(cases, struct {
				name string
				enc  func() []byte
			}{m.name, func() []byte {
				data, err := m.enc(px)
				if err != nil {
					b.Fatal(err)
				}
				return data
			}})
		}
		for _, bc := range cases {
			b.Run(screen[len("screen-"):len(screen)-len(".png")]+"/"+bc.name, func(b *testing.B) {
				var times []time.Duration
				var out []byte
				cpu0 := cpuTime()
				for b.Loop() {
					t0 := time.Now()
					out = bc.enc()
					times = append(times, time.Since(t0))
				}
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(times)), "cpu-ms/op")
				reportPercentiles(b, times)
				b.ReportMetric(float64(len(out)), "bytes")
				img, _, err := image.Decode(bytes.NewReader(out))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(psnr(rgba, img), "PSNR-dB")
			})
		}
	}
}

// psnr compares two images of the same size over R, G and B.
func psnr(a, b image.Image) float64 {
	var se float64
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			p := color.RGBAModel.Convert(a.At(x, y)).(color.RGBA)
			q := color.RGBAModel.Convert(b.At(x, y)).(color.RGBA)
			for _, d := range []int{int(p.R) - int(q.R), int(p.G) - int(q.G), int(p.B) - int(q.B)} {
				se += float64(d * d)
			}
		}
	}
	mse := se / float64(3*r.Dx()*r.Dy())
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

// reportPercentiles reports p50, p95 and p99 of times in milliseconds.
func reportPercentiles(b *testing.B, times []time.Duration) {
	slices.Sort(times)
	for _, q := range []int{50, 95, 99} {
		d := times[q*(len(times)-1)/100]
		b.ReportMetric(float64(d.Microseconds())/1000, fmt.Sprintf("p%d-ms", q))
	}
}

// cpuTime is the CPU time the process has used, on all threads: on a
// shared machine it shows the work an encoder does when the wall clock
// also shows waiting for a CPU.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportPercentiles is reportPercentiles for the external tests.
var ReportPercentiles = reportPercentiles

// CPUTime is cpuTime for the external tests.
var CPUTime = cpuTime
