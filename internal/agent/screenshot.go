package agent

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/jpeg"
	"math"

	"atelier/internal/agentapi"
	"atelier/internal/wayland"
)

// DefaultJPEGQuality is the quality of a JPEG screenshot that names none.
const DefaultJPEGQuality = 80

// toRGBA copies a frame into an opaque RGBA image, turning it upright.
func toRGBA(f *wayland.Frame) (*image.RGBA, error) {
	var r, b int // byte offsets of red and blue in a pixel; green is 1
	switch f.Format {
	case wayland.FormatARGB8888, wayland.FormatXRGB8888:
		r, b = 2, 0
	case wayland.FormatABGR8888, wayland.FormatXBGR8888:
		r, b = 0, 2
	default:
		return nil, fmt.Errorf("unsupported pixel format %#x", f.Format)
	}
	img := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	rs, bs := uint(8*r), uint(8*b)
	for y := range f.Height {
		sy := y
		if f.YInvert {
			sy = f.Height - 1 - y
		}
		src := f.Pix[sy*f.Stride : sy*f.Stride+4*f.Width]
		dst := img.Pix[y*img.Stride : y*img.Stride+4*f.Width]
		for i := 0; i < len(src); i += 4 {
			v := binary.LittleEndian.Uint32(src[i:])
			binary.LittleEndian.PutUint32(dst[i:], 0xff000000|(v>>rs&0xff)|(v&0xff00)|(v>>bs&0xff)<<16)
		}
	}
	return img, nil
}

// downscale shrinks src by scale (0 < scale < 1) with a box filter: each
// output pixel is the mean of the source pixels it covers.
func downscale(src *image.RGBA, scale float64) *image.RGBA {
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := scaled(sw, scale), scaled(sh, scale)
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	x0s := spans(sw, dw)
	y0s := spans(sh, dh)
	sums := make([]uint32, 3*dw)
	for dy := range dh {
		clear(sums)
		for sy := y0s[dy]; sy < y0s[dy+1]; sy++ {
			row := src.Pix[sy*src.Stride:]
			for dx := range dw {
				s := sums[3*dx : 3*dx+3 : 3*dx+3]
				for sx := x0s[dx]; sx < x0s[dx+1]; sx++ {
					p := row[4*sx : 4*sx+3 : 4*sx+3]
					s[0] += uint32(p[0])
					s[1] += uint32(p[1])
					s[2] += uint32(p[2])
				}
			}
		}
		rows := uint32(y0s[dy+1] - y0s[dy])
		out := dst.Pix[dy*dst.Stride:]
		for dx := range dw {
			n := rows * uint32(x0s[dx+1]-x0s[dx])
			s := sums[3*dx:]
			out[4*dx] = uint8((s[0] + n/2) / n)
			out[4*dx+1] = uint8((s[1] + n/2) / n)
			out[4*dx+2] = uint8((s[2] + n/2) / n)
			out[4*dx+3] = 0xff
		}
	}
	return dst
}

// scaled is the size n becomes at scale, at least one pixel.
func scaled(n int, scale float64) int { return max(1, int(math.Round(float64(n)*scale))) }

// spans splits n source pixels into m runs, each at least one pixel long;
// run i is [s[i], s[i+1]).
func spans(n, m int) []int {
	s := make([]int, m+1)
	for i := range s {
		s[i] = i * n / m
	}
	return s
}

// encode writes img in format.
func encode(img *image.RGBA, format string, quality int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(img.Pix) / 8)
	var err error
	switch format {
	case agentapi.FormatJPEG:
		if quality == 0 {
			quality = DefaultJPEGQuality
		}
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality})
	default:
		return encodePNG(img), nil
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", format, err)
	}
	return buf.Bytes(), nil
}
