package agent

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/adler32"
	"hash/crc32"
	"image"
	"runtime"
	"sync"
)

// encodePNG writes img (treated as opaque) as an 8-bit RGB PNG, fast: every
// row uses the Sub filter (flat screen areas become runs of zeros), and the
// rows are deflated in parallel strips that join into one zlib stream — a
// strip ends with a sync flush, so the next strip's independent deflate
// stream continues it on a byte boundary.
func encodePNG(img *image.RGBA) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	strips := min(runtime.GOMAXPROCS(0), 4, h)
	type strip struct {
		z     bytes.Buffer
		adler uint32
		n     int
	}
	out := make([]strip, strips)
	var wg sync.WaitGroup
	for i := range strips {
		wg.Add(1)
		go func() {
			defer wg.Done()
			y0, y1 := i*h/strips, (i+1)*h/strips
			raw := make([]byte, (y1-y0)*(1+3*w))
			for y := y0; y < y1; y++ {
				row := raw[(y-y0)*(1+3*w) : (y-y0+1)*(1+3*w)]
				row[0] = 1 // Sub
				src := img.Pix[y*img.Stride : y*img.Stride+4*w]
				var pr, pg, pb byte
				for x, j := 0, 1; x < 4*w; x, j = x+4, j+3 {
					r, g, b := src[x], src[x+1], src[x+2]
					row[j], row[j+1], row[j+2] = r-pr, g-pg, b-pb
					pr, pg, pb = r, g, b
				}
			}
			s := &out[i]
			s.z.Grow(len(raw) / 8)
			fw, _ := flate.NewWriter(&s.z, flate.BestSpeed) // BestSpeed is a valid level: no error
			fw.Write(raw)
			if i == strips-1 {
				fw.Close()
			} else {
				fw.Flush()
			}
			s.adler, s.n = adler32.Checksum(raw), len(raw)
		}()
	}
	wg.Wait()

	size := 0
	for i := range out {
		size += out[i].z.Len()
	}
	idat := make([]byte, 0, 2+size+4)
	idat = append(idat, 0x78, 0x01) // zlib header: deflate, 32K window, fastest
	sum := out[0].adler
	for i := range out {
		idat = append(idat, out[i].z.Bytes()...)
		if i > 0 {
			sum = adler32Combine(sum, out[i].adler, out[i].n)
		}
	}
	idat = binary.BigEndian.AppendUint32(idat, sum)

	var b bytes.Buffer
	b.Grow(len(idat) + 64)
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, 2 // 8 bits per sample, truecolour
	writeChunk(&b, "IHDR", ihdr)
	writeChunk(&b, "IDAT", idat)
	writeChunk(&b, "IEND", nil)
	return b.Bytes()
}

func writeChunk(b *bytes.Buffer, kind string, data []byte) {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)))
	copy(hdr[4:], kind)
	b.Write(hdr[:])
	b.Write(data)
	crc := crc32.NewIEEE()
	crc.Write(hdr[4:])
	crc.Write(data)
	b.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
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
