package agent

import (
	"bytes"
	"encoding/binary"
	"hash/adler32"
	"hash/crc32"
	"runtime"
	"sync"
	"sync/atomic"

	// At its fastest level this deflate is about 2.5 times as fast as
	// compress/flate's on screen contents, for the same size.
	"github.com/klauspost/compress/flate"

	"atelier/internal/agent/jpegenc"
	"atelier/internal/agent/scratch"
)

// encodePNG writes px as an 8-bit RGB PNG, fast: every row uses the Sub
// filter (flat screen areas become runs of zeros), and the rows are
// deflated in parallel strips that join into one zlib stream — a strip
// ends with a sync flush, so the next strip's independent deflate stream
// continues it on a byte boundary. There are more strips than CPUs, so a
// CPU that finishes early takes another.
func encodePNG(px jpegenc.Pixels) []byte {
	return encodePNGChanged(px, nil, nil).data
}

// pngStripCount is how many strips an image of h rows is cut into: a strip's
// deflated bytes depend only on its rows, so a screen that changed in a
// few rows deflates only their strips again (encodePNGChanged).
func pngStripCount(h int) int { return min(max(2*runtime.GOMAXPROCS(0), 8), h) }

// pngEncoded is a PNG and where each strip's deflated bytes lie in it.
type pngEncoded struct {
	data   []byte
	w, h   int
	strips []pngDone
}

// pngDone is one strip's place in a PNG: its deflated bytes, and the
// Adler-32 and length of its filtered rows.
type pngDone struct {
	off, len int
	adler    uint32
	n        int
}

// encodePNGChanged is encodePNG taking the strips whose rows did not
// change from prev, a PNG of the previous image at the same size (the
// strips, cut the same way, depend only on their rows; the last ends the
// stream in both). prev may be nil, or of another size: then every strip
// is encoded.
func encodePNGChanged(px jpegenc.Pixels, prev *pngEncoded, changed func(y0, y1 int) bool) *pngEncoded {
	w, h := px.Width, px.Height
	n := pngStripCount(h)
	if prev != nil && (prev.w != w || prev.h != h || len(prev.strips) != n) {
		prev = nil
	}
	// Each CPU's worker takes the next strip to encode: one compressor and
	// one buffer of filtered rows per CPU, not per strip (a compressor is
	// about a third of a MB), so encoding holds and later frees little.
	var todo []int
	for i := range n {
		if prev == nil || changed(i*h/n, (i+1)*h/n) {
			todo = append(todo, i)
		}
	}
	deflated := make([][]byte, n)
	done := make([]pngDone, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(todo)) {
		wg.Go(func() {
			wk := pngWorkers.Get()
			defer pngWorkers.Put(wk)
			for {
				k := int(next.Add(1) - 1)
				if k >= len(todo) {
					return
				}
				i := todo[k]
				deflated[i], done[i] = wk.encode(&px, i*h/n, (i+1)*h/n, i == n-1)
			}
		})
	}
	wg.Wait()
	size := 0
	for i := range done {
		if deflated[i] == nil {
			done[i] = prev.strips[i]
			deflated[i] = prev.data[done[i].off:][:done[i].len]
		}
		size += done[i].len
	}
	const zlibHeader = "\x78\x01" // deflate, 32K window, fastest
	out := make([]byte, 0, 8+25+12+len(zlibHeader)+size+4+12)
	out = append(out, "\x89PNG\r\n\x1a\n"...)
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, 2 // 8 bits per sample, truecolour
	out = appendChunk(out, "IHDR", ihdr)

	// IDAT: the zlib stream, written in place from the strips.
	start := len(out)
	out = binary.BigEndian.AppendUint32(out, uint32(len(zlibHeader)+size+4))
	out = append(out, "IDAT"+zlibHeader...)
	sum := done[0].adler
	for i, d := range deflated {
		done[i].off = len(out)
		out = append(out, d...)
		if i > 0 {
			sum = adler32Combine(sum, done[i].adler, done[i].n)
		}
	}
	out = binary.BigEndian.AppendUint32(out, sum)
	out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[start+4:]))
	return &pngEncoded{data: appendChunk(out, "IEND", nil), w: w, h: h, strips: done}
}

// pngWorker is one CPU's scratch space for encoding strips: the filtered
// rows, the compressor and its output. Workers are pooled.
type pngWorker struct {
	raw []byte
	z   bytes.Buffer
	fw  *flate.Writer
}

var pngWorkers scratch.Pool[pngWorker]

// encode filters rows y0 to y1 of px and deflates them, ending the stream
// if last; it returns the deflated bytes (the caller's) and the strip's
// Adler-32 and length.
func (s *pngWorker) encode(px *jpegenc.Pixels, y0, y1 int, last bool) ([]byte, pngDone) {
	w := px.Width
	rs, gs, bs := uint(8*px.R)&31, uint(8*px.G)&31, uint(8*px.B)&31
	stride := 1 + 3*w
	n := (y1 - y0) * stride
	if cap(s.raw) < n {
		s.raw = make([]byte, n)
	}
	raw := s.raw[:n]
	for y := y0; y < y1; y++ {
		row := raw[(y-y0)*stride:][:stride]
		row[0] = 1 // Sub
		sy := y
		if px.BottomUp {
			sy = px.Height - 1 - y
		}
		src := px.Pix[sy*px.Stride:][:4*w]
		// Each pixel becomes the word R|G<<8|B<<16 and is subtracted from
		// the previous one byte by byte: four bytes are stored, the fourth
		// to be overwritten by the next pixel, except for the last pixel.
		var prev uint32
		for x := range w {
			v := binary.LittleEndian.Uint32(src[4*x:])
			p := v>>rs&0xff | (v>>gs&0xff)<<8 | (v>>bs&0xff)<<16
			d := subBytes(p, prev)
			prev = p
			if x < w-1 {
				binary.LittleEndian.PutUint32(row[1+3*x:], d)
			} else {
				row[1+3*x], row[2+3*x], row[3+3*x] = byte(d), byte(d>>8), byte(d>>16)
			}
		}
	}
	s.z.Reset()
	if s.fw == nil {
		s.fw, _ = flate.NewWriter(&s.z, flate.BestSpeed) // BestSpeed is a valid level: no error
	} else {
		s.fw.Reset(&s.z)
	}
	s.fw.Write(raw) // writes to a bytes.Buffer do not fail
	if last {
		s.fw.Close()
	} else {
		s.fw.Flush()
	}
	return bytes.Clone(s.z.Bytes()), pngDone{len: s.z.Len(), adler: adler32.Checksum(raw), n: n}
}

// subBytes subtracts each byte of b from the same byte of a, modulo 256,
// without borrowing from the next byte: the top bit of each byte is set
// in a and cleared in b so no byte's difference can borrow, and then put
// right.
func subBytes(a, b uint32) uint32 {
	const top = 0x80808080
	return ((a | top) - (b &^ top)) ^ ((a ^ ^b) & top)
}

// appendChunk appends a PNG chunk: length, kind, data, CRC.
func appendChunk(b []byte, kind string, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	start := len(b)
	b = append(b, kind...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// adler32Combine returns the Adler-32 of A followed by B from the sums a of
// A and b of B and the length n of B. With s1, s2 the two halves of a sum:
// s1(AB) = s1(A) + s1(B) - 1 and s2(AB) = s2(A) + s2(B) + n·(s1(A) - 1).
func adler32Combine(a, b uint32, n int) uint32 {
	const mod = 65521
	a1, a2 := uint64(a&0xffff), uint64(a>>16)
	b1, b2 := uint64(b&0xffff), uint64(b>>16)
	k := uint64(n % mod)
	s1 := (a1 + b1 + mod - 1) % mod
	s2 := (a2 + b2 + k*((a1+mod-1)%mod)) % mod
	return uint32(s2<<16 | s1)
}
