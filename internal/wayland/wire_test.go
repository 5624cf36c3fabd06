package wayland

import (
	"bytes"
	"testing"
)

// TestMessageRoundTrip encodes a request with every argument type and reads
// it back as an event would be read.
func TestMessageRoundTrip(t *testing.T) {
	m := NewMessage(7, 3).Uint(0xdeadbeef).Int(-5).Int(Fixed(-12.5)).String("wl_seat").String("").Array([]byte{1, 2, 3, 4, 5}).FD(9)
	b, err := m.bytes()
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%4 != 0 || len(m.fds) != 1 {
		t.Fatalf("message of %d bytes with fds %v", len(b), m.fds)
	}
	sender, opcode, size, ok, err := parseHeader(b)
	if err != nil || !ok || sender != 7 || opcode != 3 || size != len(b) {
		t.Fatalf("header: %d %d %d %v %v", sender, opcode, size, ok, err)
	}
	fds := []int{9}
	e := &Event{Sender: sender, Opcode: opcode, body: b[headerSize:size], fds: &fds}
	if v := e.Uint(); v != 0xdeadbeef {
		t.Errorf("uint %#x", v)
	}
	if v := e.Int(); v != -5 {
		t.Errorf("int %d", v)
	}
	if v := FixedFloat(e.Int()); v != -12.5 {
		t.Errorf("fixed %v", v)
	}
	if s := e.String(); s != "wl_seat" {
		t.Errorf("string %q", s)
	}
	if s := e.String(); s != "" {
		t.Errorf("empty string %q", s)
	}
	if a := e.Array(); !bytes.Equal(a, []byte{1, 2, 3, 4, 5}) {
		t.Errorf("array %v", a)
	}
	if fd := e.FD(); fd != 9 {
		t.Errorf("fd %d", fd)
	}
	if e.Err != nil || len(e.body) != 0 {
		t.Errorf("err %v, %d bytes left", e.Err, len(e.body))
	}
	// Reading past the end is an error, not a panic.
	if e.Uint(); e.Err == nil {
		t.Error("reading past the body gave no error")
	}
}

func TestParseHeader(t *testing.T) {
	b, _ := NewMessage(1, 0).Uint(5).bytes()
	if _, _, _, ok, err := parseHeader(b[:6]); ok || err != nil {
		t.Errorf("short header: ok %v err %v", ok, err)
	}
	if _, _, _, ok, err := parseHeader(b[:10]); ok || err != nil {
		t.Errorf("partial body: ok %v err %v", ok, err)
	}
	bad := append([]byte(nil), b...)
	bad[6], bad[7] = 6, 0 // size 6: below the header size
	if _, _, _, _, err := parseHeader(bad); err == nil {
		t.Error("bad size accepted")
	}
	if _, err := NewMessage(1, 0).Array(make([]byte, maxMessageSize)).bytes(); err == nil {
		t.Error("oversized message accepted")
	}
}

func TestStringWithoutNUL(t *testing.T) {
	e := &Event{body: []byte{2, 0, 0, 0, 'a', 'b', 0, 0}}
	if _ = e.String(); e.Err == nil {
		t.Error("string without NUL accepted")
	}
}

func FuzzEvent(f *testing.F) {
	b, _ := NewMessage(2, 0).Uint(1).String("wl_output").Uint(4).bytes()
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 8, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, size, ok, err := parseHeader(b)
		if err != nil || !ok {
			return
		}
		e := &Event{body: b[headerSize:size]}
		for e.Err == nil && len(e.body) > 0 {
			_ = e.String()
		}
	})
}
