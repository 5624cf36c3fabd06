package jpegenc

import (
	"encoding/binary"
	"math/bits"
)

// row entropy-codes MCU row my into w.out, followed by its restart marker
// unless it is the last row. DC prediction restarts with every row.
func (e *encoder) row(w *worker, my int) {
	p := e.p
	for j := range w.rows {
		y := min(16*my+j, p.Height-1) // rows past the edge repeat the last one
		if p.BottomUp {
			y = p.Height - 1 - y
		}
		w.rows[j] = y * p.Stride
	}
	bw := bitWriter{buf: w.out}
	var dcY, dcCb, dcCr int32
	var src [16][]byte
	for mx := range e.mcusX {
		x0 := 16 * mx
		if x0+16 <= p.Width && 16*my+16 <= p.Height {
			for j, o := range w.rows {
				src[j] = p.Pix[o+4*x0:][:64]
			}
		} else {
			// Copy the MCU, repeating the last column and row past the edges.
			for j, o := range w.rows {
				row := w.edge[64*j:][:64]
				for i := range 16 {
					copy(row[4*i:4*i+4], p.Pix[o+4*min(x0+i, p.Width-1):])
				}
				src[j] = row
			}
		}
		if v, ok := e.flatMCU(&src); ok {
			// One colour: no conversion per pixel, no transforms.
			r, g, b := int32(v>>(e.rs&31)&0xff), int32(v>>(e.gs&31)&0xff), int32(v>>(e.bs&31)&0xff)
			y := luma(r, g, b)
			cb, cr := chroma(4*r, 4*g, 4*b)
			for range 4 {
				dcY = bw.flatBlock(y, &e.luma, dcY, lumaDC, lumaAC)
			}
			dcCb = bw.flatBlock(cb, &e.chroma, dcCb, chromaDC, chromaAC)
			dcCr = bw.flatBlock(cr, &e.chroma, dcCr, chromaDC, chromaAC)
			continue
		}
		flatY := e.load(w, &src)
		for b := range w.y {
			dcY = bw.block(&w.y[b], flatY&(1<<b) != 0, &e.luma, dcY, lumaDC, lumaAC, &w.coef)
		}
		dcCb = bw.block(&w.cb, flat(&w.cb), &e.chroma, dcCb, chromaDC, chromaAC, &w.coef)
		dcCr = bw.block(&w.cr, flat(&w.cr), &e.chroma, dcCr, chromaDC, chromaAC, &w.coef)
	}
	bw.pad()
	if my < e.mcusY-1 {
		bw.buf = append(bw.buf, 0xff, 0xd0+byte(my&7)) // RST0..RST7 in turn
	}
	w.out = bw.buf
}

// load converts the 16×16 pixels of src (16 rows of 64 bytes) to
// level-shifted Y, Cb and Cr (BT.601 full range, as JFIF), averaging each
// 2×2 square for the chroma. Bit b of the result is set when luma block b
// is one colour.
func (e *encoder) load(w *worker, src *[16][]byte) (flatY uint8) {
	rs, gs, bs := e.rs&31, e.gs&31, e.bs&31
	var first, diff [4]uint32 // per luma block: its first pixel, and the bits any pixel differs in
	for b := range 4 {
		first[b] = binary.LittleEndian.Uint32(src[(b>>1)*8][(b&1)*32:])
	}
	for j := 0; j < 16; j += 2 {
		top, bot := src[j][:64], src[j+1][:64]
		yp := (j & 7) * 8  // position of the row in its block
		cp := (j >> 1) * 8 // position of the chroma row
		for i := range 8 { // column pair 2i, 2i+1
			t, u := top[8*i:8*i+8:8*i+8], bot[8*i:8*i+8:8*i+8]
			p0, p1 := binary.LittleEndian.Uint32(t), binary.LittleEndian.Uint32(t[4:])
			p2, p3 := binary.LittleEndian.Uint32(u), binary.LittleEndian.Uint32(u[4:])
			b := (j>>3)*2 + i>>2
			f := first[b&3]
			diff[b&3] |= p0 ^ f | p1 ^ f | p2 ^ f | p3 ^ f
			r0, g0, b0 := int32(p0>>rs&0xff), int32(p0>>gs&0xff), int32(p0>>bs&0xff)
			r1, g1, b1 := int32(p1>>rs&0xff), int32(p1>>gs&0xff), int32(p1>>bs&0xff)
			r2, g2, b2 := int32(p2>>rs&0xff), int32(p2>>gs&0xff), int32(p2>>bs&0xff)
			r3, g3, b3 := int32(p3>>rs&0xff), int32(p3>>gs&0xff), int32(p3>>bs&0xff)
			blk := &w.y[b&3]
			x := (yp + 2*i&7) & 63
			blk[x] = luma(r0, g0, b0)
			blk[(x+1)&63] = luma(r1, g1, b1)
			blk[(x+8)&63] = luma(r2, g2, b2)
			blk[(x+9)&63] = luma(r3, g3, b3)
			c := (cp + i) & 63
			w.cb[c], w.cr[c] = chroma(r0+r1+r2+r3, g0+g1+g2+g3, b0+b1+b2+b3)
		}
	}
	for b, d := range diff {
		if d&e.mask == 0 {
			flatY |= 1 << b
		}
	}
	return flatY
}

// flatMCU reports whether the 16×16 pixels of src are all one colour, and
// the first pixel.
func (e *encoder) flatMCU(src *[16][]byte) (uint32, bool) {
	first := binary.LittleEndian.Uint32(src[0])
	m := uint64(e.mask)<<32 | uint64(e.mask)
	f := (uint64(first)<<32 | uint64(first)) & m
	for _, row := range src {
		row := row[:64]
		for i := 0; i < 64; i += 8 {
			if binary.LittleEndian.Uint64(row[i:i+8])&m != f {
				return 0, false
			}
		}
	}
	return first, true
}

// chroma is Cb − 128 and Cr − 128 from the sums of four pixels' channels:
// BT.601's coefficients in 16-bit fixed point, shifted two more bits to
// average.
func chroma(r, g, b int32) (cb, cr float32) {
	return float32((-11059*r - 21709*g + 32768*b + 1<<17) >> 18), float32((32768*r - 27439*g - 5329*b + 1<<17) >> 18)
}

// luma is Y − 128; the coefficients are BT.601's in 16-bit fixed point.
func luma(r, g, b int32) float32 {
	return float32((19595*r+38470*g+7471*b+1<<15)>>16 - 128)
}

// block transforms, quantises and entropy-codes one 8×8 block, given the
// previous DC value of its component, and returns its own DC value.
// A flat block (all values equal) skips the transform.
func (w *bitWriter) block(blk *[64]float32, flat bool, q *quantTable, prevDC int32, dc, ac *huffTable, coef *[64]int32) int32 {
	if flat {
		return w.flatBlock(blk[0], q, prevDC, dc, ac)
	}
	var nz uint64 // bit k set: zigzag coefficient k is not zero
	fdct(blk)
	for k, n := range zigzag {
		c := quantize(blk[n&63] * q.recip[k])
		coef[k] = c
		nz |= uint64(uint32(c|-c)>>31) << k
	}

	w.emit(dc, 0, coef[0]-prevDC)
	nz &^= 1
	last := 0
	for nz != 0 {
		k := bits.TrailingZeros64(nz)
		run := k - last - 1
		for ; run >= 16; run -= 16 {
			w.put(ac[0xf0]) // ZRL: sixteen zeros
		}
		w.emit(ac, run, coef[k&63])
		last = k
		nz &= nz - 1
	}
	if last < 63 {
		w.put(ac[0x00]) // EOB
	}
	return coef[0]
}

// flatBlock codes a block whose values are all v. Screens are mostly
// flat areas: such a block has only a DC term, 64·v in the scaled DCT's
// output.
func (w *bitWriter) flatBlock(v float32, q *quantTable, prevDC int32, dc, ac *huffTable) int32 {
	c := quantize(64 * v * q.recip[0])
	w.emit(dc, 0, c-prevDC)
	w.put(ac[0x00]) // EOB
	return c
}

// flat reports whether every value of blk is the same.
func flat(blk *[64]float32) bool {
	v := blk[0]
	for _, x := range blk[1:] {
		if x != v {
			return false
		}
	}
	return true
}

// quantize rounds v to the nearest integer (halves up) and clamps it to
// the ±1023 a baseline AC coefficient can hold (a DC value reaches −1024
// only for black at quality 100, where one step less cannot be seen).
func quantize(v float32) int32 {
	c := int32(v+16384.5) - 16384 // the conversion truncates; shifted positive it floors
	return min(max(c, -1023), 1023)
}

// fdct is the scaled forward DCT of Arai, Agui and Nakajima on rows then
// columns: output (u, v) is the true DCT's times 8·aanScale[u]·aanScale[v],
// a factor that makeQuant folds into the quantisation divisors.
func fdct(b *[64]float32) {
	for i := 0; i < 64; i += 8 {
		s := b[i : i+8 : i+8]
		fdct8(&s[0], &s[1], &s[2], &s[3], &s[4], &s[5], &s[6], &s[7])
	}
	for i := range 8 {
		fdct8(&b[i], &b[i+8], &b[i+16], &b[i+24], &b[i+32], &b[i+40], &b[i+48], &b[i+56])
	}
}

// fdct8 transforms eight values in place.
func fdct8(d0, d1, d2, d3, d4, d5, d6, d7 *float32) {
	const (
		c4    = 0.707106781 // cos(4π/16)
		c6    = 0.382683433 // cos(6π/16)
		c2mc6 = 0.541196100 // cos(2π/16) − cos(6π/16)
		c2pc6 = 1.306562965 // cos(2π/16) + cos(6π/16)
	)
	t0, t7 := *d0+*d7, *d0-*d7
	t1, t6 := *d1+*d6, *d1-*d6
	t2, t5 := *d2+*d5, *d2-*d5
	t3, t4 := *d3+*d4, *d3-*d4

	// Even part.
	t10, t13 := t0+t3, t0-t3
	t11, t12 := t1+t2, t1-t2
	*d0, *d4 = t10+t11, t10-t11
	z1 := (t12 + t13) * c4
	*d2, *d6 = t13+z1, t13-z1

	// Odd part.
	t10, t11, t12 = t4+t5, t5+t6, t6+t7
	z5 := (t10 - t12) * c6
	z2 := c2mc6*t10 + z5
	z4 := c2pc6*t12 + z5
	z3 := t11 * c4
	z11, z13 := t7+z3, t7-z3
	*d5, *d3 = z13+z2, z13-z2
	*d1, *d7 = z11+z4, z11-z4
}

// bitWriter packs Huffman codes into bytes, stuffing a zero after each
// 0xFF so no marker appears in the data.
type bitWriter struct {
	buf []byte
	acc uint64 // pending bits, the newest lowest
	n   uint   // how many bits of acc are pending, < 32 between calls
}

// put writes a packed code: its bits above the low byte, its length in it.
func (w *bitWriter) put(c huffCode) { w.write(uint32(c>>8), uint(c&0xff)) }

// emit writes the code of symbol run<<4|size for v, then v's size low
// bits (negative values as v−1, the JPEG convention).
func (w *bitWriter) emit(t *huffTable, run int, v int32) {
	s := v >> 31
	size := uint(bits.Len32(uint32((v ^ s) - s)))
	v += s
	c := t[(run<<4|int(size))&0xff]
	w.write(uint32(c>>8)<<size|uint32(v)&(1<<size-1), uint(c&0xff)+size)
}

// write appends the n (≤ 32) low bits of v.
func (w *bitWriter) write(v uint32, n uint) {
	w.acc = w.acc<<n | uint64(v)
	w.n += n
	if w.n >= 32 {
		w.n -= 32
		w.word(uint32(w.acc >> w.n))
	}
}

// word appends four bytes, stuffing any 0xFF.
func (w *bitWriter) word(v uint32) {
	if x := ^v; (x-0x01010101)&^x&0x80808080 == 0 { // no zero byte in ^v: no 0xFF in v
		w.buf = binary.BigEndian.AppendUint32(w.buf, v)
		return
	}
	for s := 24; s >= 0; s -= 8 {
		w.byte(byte(v >> s))
	}
}

func (w *bitWriter) byte(c byte) {
	w.buf = append(w.buf, c)
	if c == 0xff {
		w.buf = append(w.buf, 0)
	}
}

// pad fills the last byte with one bits and writes out what is pending.
func (w *bitWriter) pad() {
	if r := w.n % 8; r != 0 {
		w.write(1<<(8-r)-1, 8-r)
	}
	for w.n >= 8 {
		w.n -= 8
		w.byte(byte(w.acc >> w.n))
	}
}
