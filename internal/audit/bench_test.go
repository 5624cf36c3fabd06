package audit_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"atelier/internal/audit"
)

// BenchmarkAppend measures the audit cost of one action: with fsync on
// every entry (one writer, then 8 sharing fsyncs), on an interval, and
// never. The target for "always" is 0.3 ms per action on the fleet's disk.
func BenchmarkAppend(b *testing.B) {
	cases := []struct {
		name    string
		policy  audit.SyncPolicy
		writers int
	}{
		{"always", audit.SyncAlways, 1},
		{"always-8writers", audit.SyncAlways, 8},
		{"interval", audit.SyncInterval, 1},
		{"never", audit.SyncNever, 1},
		{"never-8writers", audit.SyncNever, 8},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			l := openLog(b, b.TempDir(), audit.Options{Sync: c.policy, Interval: 100 * time.Millisecond})
			e := actionEntry(sess, 640)
			mustAppend(b, l, e) // opens the file
			b.ReportAllocs()
			b.ResetTimer()
			if c.writers == 1 {
				for b.Loop() {
					if _, err := l.Append(b.Context(), e); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism((c.writers + 1) / 2) // GOMAXPROCS × parallelism goroutines
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(b.Context(), e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkFsyncBaseline is the disk's own price: append one line of the
// same size and fsync it, with no log around. Append "always" minus this
// is what the audit log itself costs.
func BenchmarkFsyncBaseline(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "baseline"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	line := make([]byte, 300)
	line[len(line)-1] = '\n'
	for b.Loop() {
		if _, err := f.Write(line); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
