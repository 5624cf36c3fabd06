// Package jpegenc is a fast baseline JPEG encoder for screen captures. It
// reads 4-byte pixels in place (XRGB8888 from a compositor, or RGBA),
// subsamples chroma 4:2:0, and encodes rows of 16-pixel MCUs on every CPU
// at once; each MCU row ends with a restart marker, so the rows encode
// independently and join into one ordinary JPEG.
package jpegenc

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"atelier/internal/agent/scratch"
)

// Pixels is an image of 4-byte pixels in memory, such as a Wayland
// XRGB8888 frame (B, G, R at offsets 0, 1, 2) or an image.RGBA's Pix
// (R, G, B at 0, 1, 2). The fourth byte is ignored.
type Pixels struct {
	Pix           []byte
	Width, Height int
	Stride        int  // bytes from the start of one row to the next
	R, G, B       int  // byte offset of each channel in a pixel, 0..3
	BottomUp      bool // the first row in Pix is the image's last
}

// MaxSize is the largest width or height a JPEG can hold.
const MaxSize = 65535

// check reports why p cannot be encoded, if it cannot.
func (p *Pixels) check() error {
	if p.Width < 1 || p.Height < 1 || p.Width > MaxSize || p.Height > MaxSize {
		return fmt.Errorf("size %dx%d outside 1..%d", p.Width, p.Height, MaxSize)
	}
	for _, o := range []int{p.R, p.G, p.B} {
		if o < 0 || o > 3 {
			return fmt.Errorf("channel offset %d outside 0..3", o)
		}
	}
	if p.Stride < 4*p.Width {
		return fmt.Errorf("stride %d below 4×width %d", p.Stride, 4*p.Width)
	}
	if need := p.Stride*(p.Height-1) + 4*p.Width; len(p.Pix) < need {
		return fmt.Errorf("%d bytes of pixels, need %d for %dx%d at stride %d", len(p.Pix), need, p.Width, p.Height, p.Stride)
	}
	return nil
}

// Encode appends the JPEG encoding of p at quality (1..100, as libjpeg's
// scale) to dst and returns the extended slice.
func Encode(dst []byte, p Pixels, quality int) ([]byte, error) {
	e, err := newEncoder(&p, quality)
	if err != nil {
		return dst, err
	}
	return e.encode(dst), nil
}

// Encoded is a JPEG and where each row of MCUs lies in it, for
// EncodeChanged.
type Encoded struct {
	Data          []byte
	width, height int
	quality       int
	rows          []int // Data[rows[i]:rows[i+1]] is MCU row i's bytes, restart marker included
}

// EncodeChanged is Encode into a new slice, taking each row of MCUs whose
// 16 pixel rows [y0, y1) did not change from prev, an encoding of the
// previous image at the same size and quality: a row's bytes depend only
// on its pixels and its index (DC prediction restarts with every row, and
// the restart marker after it is numbered by its index). prev may be nil,
// or of another size or quality: then every row is encoded.
func EncodeChanged(p Pixels, quality int, prev *Encoded, changed func(y0, y1 int) bool) (*Encoded, error) {
	e, err := newEncoder(&p, quality)
	if err != nil {
		return nil, err
	}
	if prev != nil && prev.width == p.Width && prev.height == p.Height && prev.quality == quality {
		e.prev = prev
		e.reuse = make([]bool, e.mcusY)
		for my := range e.reuse {
			e.reuse[my] = !changed(16*my, min(16*my+16, p.Height))
		}
	}
	data := e.encode(nil)
	return &Encoded{Data: data, width: p.Width, height: p.Height, quality: quality, rows: e.rows}, nil
}

// newEncoder checks p and quality and returns an encoder for them.
func newEncoder(p *Pixels, quality int) (*encoder, error) {
	if quality < 1 || quality > 100 {
		return nil, fmt.Errorf("jpeg quality %d outside 1..100", quality)
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("jpeg: %w", err)
	}
	e := &encoder{
		p:      p,
		luma:   makeQuant(&baseLuma, quality),
		chroma: makeQuant(&baseChroma, quality),
		mcusX:  (p.Width + 15) / 16,
		mcusY:  (p.Height + 15) / 16,
		rs:     uint(8 * p.R), gs: uint(8 * p.G), bs: uint(8 * p.B),
	}
	e.mask = 0xff<<e.rs | 0xff<<e.gs | 0xff<<e.bs
	return e, nil
}

// encoder is the state of one Encode call, shared read-only by its workers.
type encoder struct {
	p            *Pixels
	luma, chroma quantTable
	mcusX, mcusY int
	rs, gs, bs   uint   // shifts of the channels in a little-endian pixel
	mask         uint32 // the channels' bits in a little-endian pixel
	next         atomic.Int32
	segs         []segment // per MCU row
	workers      []*worker
	prev         *Encoded // where rows marked in reuse come from
	reuse        []bool
	rows         []int // where each row landed in the output
}

// segment locates one MCU row's entropy-coded bytes in a worker's output.
type segment struct {
	w          int
	start, end int
}

func (e *encoder) encode(dst []byte) []byte {
	todo := e.mcusY
	for _, r := range e.reuse {
		if r {
			todo--
		}
	}
	n := max(1, min(runtime.GOMAXPROCS(0), todo))
	e.segs = make([]segment, e.mcusY)
	e.workers = make([]*worker, n)
	for i := range e.workers {
		w := workers.Get()
		w.out = w.out[:0]
		e.workers[i] = w
	}
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.work(i)
		}()
	}
	e.work(0)
	wg.Wait()

	size := 0
	for my, s := range e.segs {
		if e.reuse != nil && e.reuse[my] {
			size += e.prev.rows[my+1] - e.prev.rows[my]
		}
		size += s.end - s.start
	}
	dst = e.header(growCap(dst, size+1024))
	e.rows = make([]int, e.mcusY+1)
	for my, s := range e.segs {
		e.rows[my] = len(dst)
		if e.reuse != nil && e.reuse[my] {
			dst = append(dst, e.prev.Data[e.prev.rows[my]:e.prev.rows[my+1]]...)
			continue
		}
		dst = append(dst, e.workers[s.w].out[s.start:s.end]...)
	}
	e.rows[e.mcusY] = len(dst)
	dst = append(dst, 0xff, 0xd9) // EOI
	for _, w := range e.workers {
		workers.Put(w)
	}
	return dst
}

// growCap returns b with room for at least n more bytes.
func growCap(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// work encodes MCU rows, taking the next unclaimed one each time, so a
// worker that drew flat rows takes more of them.
func (e *encoder) work(wi int) {
	w := e.workers[wi]
	for {
		my := int(e.next.Add(1)) - 1
		if my >= e.mcusY {
			return
		}
		if e.reuse != nil && e.reuse[my] {
			continue
		}
		start := len(w.out)
		e.row(w, my)
		e.segs[my] = segment{wi, start, len(w.out)}
	}
}

// header appends the markers from SOI to SOS.
func (e *encoder) header(b []byte) []byte {
	b = append(b, 0xff, 0xd8) // SOI
	// APP0 JFIF 1.01, no density, no thumbnail: tells readers it is YCbCr.
	b = append(b, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0)
	b = append(b, 0xff, 0xdb, 0, 2+2*65, 0x00)
	b = append(b, e.luma.dqt[:]...)
	b = append(b, 0x01)
	b = append(b, e.chroma.dqt[:]...)
	// SOF0: 8-bit, three components; Y is sampled 2×2, Cb and Cr 1×1.
	b = append(b, 0xff, 0xc0, 0, 17, 8)
	b = binary.BigEndian.AppendUint16(b, uint16(e.p.Height))
	b = binary.BigEndian.AppendUint16(b, uint16(e.p.Width))
	b = append(b, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1)
	specs := []struct {
		class byte
		s     *huffSpec
	}{{0x00, &specLumaDC}, {0x10, &specLumaAC}, {0x01, &specChromaDC}, {0x11, &specChromaAC}}
	n := 2
	for _, t := range specs {
		n += 17 + len(t.s.symbols)
	}
	b = append(b, 0xff, 0xc4)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, t := range specs {
		b = append(b, t.class)
		b = append(b, t.s.counts[:]...)
		b = append(b, t.s.symbols...)
	}
	// DRI: a restart marker after every row of MCUs.
	b = append(b, 0xff, 0xdd, 0, 4)
	b = binary.BigEndian.AppendUint16(b, uint16(e.mcusX))
	// SOS: all three components, full spectrum, sequential.
	return append(b, 0xff, 0xda, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0)
}

// worker holds one goroutine's scratch space and output; workers are
// kept between encodings (until Trim) so steady encoding makes no garbage.
type worker struct {
	out  []byte
	y    [4][64]float32 // the MCU's luma blocks: top-left, top-right, bottom-left, bottom-right
	cb   [64]float32
	cr   [64]float32
	coef [64]int32
	rows [16]int       // byte offset of each of the MCU row's source rows
	edge [16 * 64]byte // an MCU on the right or bottom edge, completed
}

var workers scratch.Pool[worker]

// Trim forgets the workers kept for the next encoding: their memory goes
// at the next garbage collection.
func Trim() { workers.Drain() }
