package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"runtime/debug"
	"time"

	"atelier/internal/agent/jpegenc"
	"atelier/internal/agentapi"
	"atelier/internal/wayland"
)

// DefaultJPEGQuality is the quality of a JPEG screenshot that names none.
const DefaultJPEGQuality = 80

// shotCache holds the screenshots taken of one display since its damage
// counter last moved, one per set of parameters (a few at most: callers
// ask for one or two kinds).
type shotCache struct {
	d    *wayland.Display
	seq  uint64 // the display's damage counter, read before the captures were asked for
	imgs map[shotKey]*agentapi.Image
	// encs holds the last image encoded from the display's current copy,
	// per parameters, for the next to encode again only what changed.
	encs map[shotKey]lastEnc
}

// lastEnc is an image encoded from the display's current copy, and the
// number of that copy.
type lastEnc struct {
	copy uint64
	jpeg *jpegenc.Encoded
	png  *pngEncoded
}

// maxShots bounds the cache; past it, it starts over.
const maxShots = 4

// shotKey is what a screenshot request asks for, defaults applied.
type shotKey struct {
	format  string
	quality int
	scale   float64
	region  agentapi.Region
}

// screenshot returns the output or a region, scaled and encoded. While the
// display reports no change since the previous screenshot with the same
// parameters, that one is returned again: no capture, no encoding.
// Otherwise the encoders read the frame in the capture buffer, in the
// compositor's pixel layout, so the pixels are never converted or copied
// first.
func (s *Server) screenshot(ctx context.Context, d *wayland.Display, req *agentapi.Request) (*agentapi.Image, error) {
	var r image.Rectangle
	key := shotKey{format: req.Format, scale: req.Scale}
	if g := req.Region; g != nil {
		r = image.Rect(g.X, g.Y, g.X+g.Width, g.Y+g.Height)
		key.region = *g
	}
	if key.scale == 0 {
		key.scale = 1
	}
	if key.format == "" {
		key.format = agentapi.FormatPNG
	}
	if key.format == agentapi.FormatJPEG {
		key.quality = cmp.Or(req.Quality, DefaultJPEGQuality)
	}
	// Screenshots are being asked: keep a current copy of the screen (or
	// start making one) while they are.
	d.WarmMirror()
	seq, armed, err := d.DamageSeq(ctx)
	if err != nil && !errors.Is(err, wayland.ErrNoDamage) {
		return nil, err
	}
	if wait := s.inputFrameWait(d, seq); armed && wait > 0 {
		// The last input has not changed the screen yet: wait for the
		// frame it causes rather than answer with the screen before it.
		if _, err := d.WaitDamage(ctx, seq, wait); err != nil {
			return nil, err
		}
		if seq, armed, err = d.DamageSeq(ctx); err != nil {
			return nil, err
		}
	}
	if armed {
		s.shotMu.Lock()
		c := &s.shots
		if c.d != d || c.seq != seq || len(c.imgs) >= maxShots {
			encs := c.encs
			if c.d != d || encs == nil || len(encs) >= maxShots {
				encs = map[shotKey]lastEnc{}
			}
			*c = shotCache{d: d, seq: seq, imgs: map[shotKey]*agentapi.Image{}, encs: encs}
		}
		img := c.imgs[key]
		s.shotMu.Unlock()
		if img != nil {
			cp := *img
			return &cp, nil
		}
	}
	img, err := s.capture(ctx, d, r, key)
	if err != nil {
		return nil, err
	}
	s.captures.Add(1)
	s.trimLater()
	img.Region = req.Region
	if armed {
		s.shotMu.Lock()
		if c := &s.shots; c.d == d && c.seq == seq {
			c.imgs[key] = img
		}
		s.shotMu.Unlock()
	}
	cp := *img
	return &cp, nil
}

// lastInput is the damage counter of a display when an input action
// ended, and when that was.
type lastInput struct {
	d   *wayland.Display
	seq uint64
	at  time.Time
}

// inputFrameWait bounds how long a screenshot after an input waits for the
// input's frame: a program answers a key or a click within a few frames;
// an input that changes nothing costs a later screenshot this much once.
const inputFrameWait = 100 * time.Millisecond

// noteInput records the damage counter once an input action has reached
// the compositor (its round trip made).
func (s *Server) noteInput(d *wayland.Display) {
	seq, armed := d.DamageSeqNow()
	if !armed {
		return
	}
	s.shotMu.Lock()
	s.input = lastInput{d: d, seq: seq, at: time.Now()}
	s.shotMu.Unlock()
}

// inputFrameWait returns how long a screenshot should wait for the last
// input's frame: while the screen has not changed since the input, up to
// inputFrameWait after it.
func (s *Server) inputFrameWait(d *wayland.Display, seq uint64) time.Duration {
	s.shotMu.Lock()
	defer s.shotMu.Unlock()
	in := s.input
	if in.d != d || in.seq != seq {
		return 0
	}
	return inputFrameWait - time.Since(in.at)
}

// trimAfter is how long after the last capture the agent returns the
// encoders' scratch memory (pooled buffers and compressors, several MB)
// to the system: an idle desktop should hold none of it.
const trimAfter = 10 * time.Second

// trimLater frees the encoders' memory trimAfter from now, unless another
// capture comes first.
func (s *Server) trimLater() {
	s.shotMu.Lock()
	defer s.shotMu.Unlock()
	if s.trim != nil {
		s.trim.Reset(trimAfter)
		return
	}
	s.trim = time.AfterFunc(trimAfter, func() {
		s.shotMu.Lock()
		s.shots.encs = nil
		s.shotMu.Unlock()
		pngWorkers.Drain()
		jpegenc.Trim()
		debug.FreeOSMemory() // one collection, then all free memory back
	})
}

// capture takes the output or the region r of it from the display's
// current copy, or else captures it, then scales and encodes it.
func (s *Server) capture(ctx context.Context, d *wayland.Display, r image.Rectangle, key shotKey) (*agentapi.Image, error) {
	scale, format := key.scale, key.format
	var data []byte
	var w, h int
	enc := func(f *wayland.Frame) error {
		px, err := framePixels(f)
		if err != nil {
			return err
		}
		if scale < 1 {
			px = downscale(px, scale)
		}
		w, h = px.Width, px.Height
		if scale >= 1 && f.Copy != 0 {
			data, err = s.encodeChanged(d, f, px, r, key)
			return err
		}
		data, err = encode(px, format, key.quality)
		return err
	}
	ok, err := d.CaptureCurrent(ctx, r, enc)
	if err == nil && !ok {
		err = d.Capture(ctx, r, enc)
	}
	if err != nil {
		return nil, err
	}
	return &agentapi.Image{Format: format, Width: w, Height: h, Scale: scale, Data: data}, nil
}

// encodeChanged encodes a frame of the display's current copy, encoding
// again only the rows that changed since the previous image with the same
// parameters: JPEG rows of MCUs (typing a character changes one or two of
// 45), PNG strips. The copies' damage says what changed; r is the frame's
// region of the output, empty for all of it.
func (s *Server) encodeChanged(d *wayland.Display, f *wayland.Frame, px jpegenc.Pixels, r image.Rectangle, key shotKey) ([]byte, error) {
	s.shotMu.Lock()
	prev, ok := s.shots.encs[key]
	s.shotMu.Unlock()
	if r.Empty() {
		r = image.Rect(0, 0, f.Width, f.Height)
	}
	var changed func(y0, y1 int) bool
	if dmg, known := f.ChangedSince(prev.copy); ok && known {
		changed = func(y0, y1 int) bool {
			return dmg.Overlaps(image.Rect(r.Min.X, r.Min.Y+y0, r.Max.X, r.Min.Y+y1))
		}
	} else {
		prev = lastEnc{}
	}
	next := lastEnc{copy: f.Copy}
	var data []byte
	if key.format == agentapi.FormatJPEG {
		enc, err := jpegenc.EncodeChanged(px, key.quality, prev.jpeg, changed)
		if err != nil {
			return nil, fmt.Errorf("encode jpeg: %w", err)
		}
		next.jpeg, data = enc, enc.Data
	} else {
		next.png = encodePNGChanged(px, prev.png, changed)
		data = next.png.data
	}
	s.shotMu.Lock()
	if c := &s.shots; c.d == d && c.encs != nil {
		c.encs[key] = next
	}
	s.shotMu.Unlock()
	return data, nil
}

// framePixels describes a captured frame's pixels where they lie.
func framePixels(f *wayland.Frame) (jpegenc.Pixels, error) {
	p := jpegenc.Pixels{Pix: f.Pix, Width: f.Width, Height: f.Height, Stride: f.Stride, G: 1, BottomUp: f.YInvert}
	switch f.Format {
	case wayland.FormatARGB8888, wayland.FormatXRGB8888: // little-endian words: bytes B G R X
		p.R, p.B = 2, 0
	case wayland.FormatABGR8888, wayland.FormatXBGR8888:
		p.R, p.B = 0, 2
	default:
		return p, fmt.Errorf("unsupported pixel format %#x", f.Format)
	}
	return p, nil
}

// downscale shrinks src by scale (0 < scale < 1) with a box filter: each
// output pixel is the mean of the source pixels it covers. The result is
// upright RGBA.
func downscale(src jpegenc.Pixels, scale float64) jpegenc.Pixels {
	sw, sh := src.Width, src.Height
	dw, dh := scaled(sw, scale), scaled(sh, scale)
	dst := jpegenc.Pixels{Pix: make([]byte, 4*dw*dh), Width: dw, Height: dh, Stride: 4 * dw, R: 0, G: 1, B: 2}
	x0s := spans(sw, dw)
	y0s := spans(sh, dh)
	sums := make([]uint32, 3*dw)
	for dy := range dh {
		clear(sums)
		for sy := y0s[dy]; sy < y0s[dy+1]; sy++ {
			ry := sy
			if src.BottomUp {
				ry = sh - 1 - sy
			}
			row := src.Pix[ry*src.Stride:]
			for dx := range dw {
				s := sums[3*dx : 3*dx+3 : 3*dx+3]
				for sx := x0s[dx]; sx < x0s[dx+1]; sx++ {
					p := row[4*sx : 4*sx+4 : 4*sx+4]
					s[0] += uint32(p[src.R&3])
					s[1] += uint32(p[src.G&3])
					s[2] += uint32(p[src.B&3])
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

// encode writes px in format.
func encode(px jpegenc.Pixels, format string, quality int) ([]byte, error) {
	if format != agentapi.FormatJPEG {
		return encodePNG(px), nil
	}
	if quality == 0 {
		quality = DefaultJPEGQuality
	}
	data, err := jpegenc.Encode(nil, px, quality)
	if err != nil {
		return nil, fmt.Errorf("encode jpeg: %w", err)
	}
	return data, nil
}
