package jpegenc

import "math"

// Annex K.1: the example quantisation tables, in natural (row-major) order.
var (
	baseLuma = [64]uint8{
		16, 11, 10, 16, 24, 40, 51, 61,
		12, 12, 14, 19, 26, 58, 60, 55,
		14, 13, 16, 24, 40, 57, 69, 56,
		14, 17, 22, 29, 51, 87, 80, 62,
		18, 22, 37, 56, 68, 109, 103, 77,
		24, 35, 55, 64, 81, 104, 113, 92,
		49, 64, 78, 87, 103, 121, 120, 101,
		72, 92, 95, 98, 112, 100, 103, 99,
	}
	baseChroma = [64]uint8{
		17, 18, 24, 47, 99, 99, 99, 99,
		18, 21, 26, 66, 99, 99, 99, 99,
		24, 26, 56, 99, 99, 99, 99, 99,
		47, 66, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
	}
)

// zigzag[k] is the natural index of the k-th coefficient in zigzag order.
var zigzag = func() (z [64]uint8) {
	k := 0
	for s := 0; s < 15; s++ { // anti-diagonals u+v = s
		for i := 0; i <= s; i++ {
			// Odd diagonals run down-left, even ones up-right.
			row := i
			if s%2 == 0 {
				row = s - i
			}
			col := s - row
			if row < 8 && col < 8 {
				z[k] = uint8(row*8 + col)
				k++
			}
		}
	}
	return z
}()

// quantTable is one component's quantisation: the table as written in DQT
// (zigzag order) and the reciprocal divisors folded with the AAN DCT's
// output scaling (zigzag order too, so quantising walks them in step).
type quantTable struct {
	dqt   [64]uint8
	recip [64]float32
}

// aanScale[k] is cos(kπ/16)·√2 (1 for k = 0): the factor by which the
// scaled DCT's output k differs from the true DCT's.
var aanScale = func() (s [8]float64) {
	s[0] = 1
	for k := 1; k < 8; k++ {
		s[k] = math.Cos(float64(k)*math.Pi/16) * math.Sqrt2
	}
	return s
}()

// makeQuant scales base by quality the way libjpeg does: 5000/q percent
// below 50, 200-2q percent from 50 up, each entry clamped to 1..255.
func makeQuant(base *[64]uint8, quality int) quantTable {
	scale := 200 - 2*quality
	if quality < 50 {
		scale = 5000 / quality
	}
	var t quantTable
	for k, n := range zigzag {
		q := (int(base[n])*scale + 50) / 100
		q = min(max(q, 1), 255)
		t.dqt[k] = uint8(q)
		t.recip[k] = float32(1 / (float64(q) * aanScale[n/8] * aanScale[n%8] * 8))
	}
	return t
}

// huffSpec is a Huffman table as DHT writes it: the number of codes of
// each length 1..16, then the symbols in code order.
type huffSpec struct {
	counts  [16]uint8
	symbols []uint8
}

// Annex K.3. The AC symbol lists begin with a table-specific order; past
// that prefix every remaining run/size symbol follows in increasing order,
// which acSymbols fills in.
var (
	specLumaDC = huffSpec{
		[16]uint8{0, 1, 5, 1, 1, 1, 1, 1, 1},
		[]uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
	}
	specChromaDC = huffSpec{
		[16]uint8{0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
		[]uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
	}
	specLumaAC = huffSpec{
		[16]uint8{0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125},
		acSymbols(0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13,
			0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1,
			0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a),
	}
	specChromaAC = huffSpec{
		[16]uint8{0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119},
		acSymbols(0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51,
			0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1,
			0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1,
			0x25, 0xf1),
	}
)

// acSymbols returns prefix followed by the other 162-len(prefix) AC
// symbols (EOB, ZRL, and run 0..15 with size 1..10) in increasing order.
func acSymbols(prefix ...uint8) []uint8 {
	used := make(map[uint8]bool, len(prefix))
	for _, s := range prefix {
		used[s] = true
	}
	out := append([]uint8(nil), prefix...)
	for s := 0; s < 256; s++ {
		run, size := s>>4, s&15
		valid := s == 0x00 || s == 0xf0 || (size >= 1 && size <= 10 && run <= 15)
		if valid && !used[uint8(s)] {
			out = append(out, uint8(s))
		}
	}
	return out
}

// huffCode packs a symbol's code (high bits) and its length (low byte).
type huffCode uint32

// huffTable maps each symbol to its code.
type huffTable [256]huffCode

// build assigns canonical codes (Annex C): codes of each length are
// consecutive, and moving to the next length doubles the next code.
func (s *huffSpec) build() *huffTable {
	var t huffTable
	code, k := uint32(0), 0
	for n := 1; n <= 16; n++ {
		for range s.counts[n-1] {
			t[s.symbols[k]] = huffCode(code<<8 | uint32(n))
			code++
			k++
		}
		code <<= 1
	}
	return &t
}

var (
	lumaDC   = specLumaDC.build()
	lumaAC   = specLumaAC.build()
	chromaDC = specChromaDC.build()
	chromaAC = specChromaAC.build()
)
