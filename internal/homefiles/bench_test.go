package homefiles

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkPutGet writes an 8 MiB file into a home (temporary name, fsync,
// rename) and reads it back (openat2); bytes counts both ways.
func BenchmarkPutGet(b *testing.B) {
	h, _, _ := home(b)
	data := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	b.SetBytes(int64(2 * len(data)))
	for b.Loop() {
		if _, err := h.Put("f", bytes.NewReader(data), 1<<30); err != nil {
			b.Fatal(err)
		}
		f, _, err := h.Get("f")
		if err != nil {
			b.Fatal(err)
		}
		if n, _ := io.Copy(io.Discard, f); n != int64(len(data)) {
			b.Fatalf("read %d bytes", n)
		}
		f.Close()
	}
}
