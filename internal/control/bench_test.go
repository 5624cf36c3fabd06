package control_test

import (
	"testing"
	"time"

	"atelier/internal/control"
)

// BenchmarkAct is the gate every input passes: one admission and its done,
// with a person holding the session (the busiest case: input is counted).
func BenchmarkAct(b *testing.B) {
	l := control.New(control.Options{IdleTimeout: time.Hour})
	defer l.Close()
	lease, err := l.TakeOver(b.Context(), "s1", "api", "")
	if err != nil {
		b.Fatal(err)
	}
	c := control.Claim{Lease: lease.ID}
	b.ReportAllocs()
	for b.Loop() {
		done, err := l.Act("s1", c)
		if err != nil {
			b.Fatal(err)
		}
		done()
	}
}

// BenchmarkActParallel is the gate with input from every core at once on
// one session, nobody holding it.
func BenchmarkActParallel(b *testing.B) {
	l := control.New(control.Options{IdleTimeout: time.Hour})
	defer l.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := l.Act("s1", control.Claim{})
			if err != nil {
				b.Fatal(err)
			}
			done()
		}
	})
}
