package scratch

import "testing"

func TestPool(t *testing.T) {
	var p Pool[[4]byte]
	a := p.Get()
	a[0] = 7
	p.Put(a)
	if b := p.Get(); b != a {
		t.Fatalf("Get after Put returned a new object, want the one put back")
	}
	p.Put(a)
	p.Drain()
	if b := p.Get(); b == a || b[0] != 0 {
		t.Fatalf("Get after Drain returned %v (same object: %v), want a new zero object", *b, b == a)
	}
}
