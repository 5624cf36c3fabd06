package egress

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
)

// discard takes records without keeping them.
type discard struct{}

func (discard) RecordEgress(string, Record) {}

// roundTrip sends one small GET on c (direct or through a tunnel) and reads
// the answer.
func roundTrip(b *testing.B, c net.Conn, br *bufio.Reader, path string) int64 {
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	return n
}

// BenchmarkGateway compares a new connection and one small request
// through the gateway (the agent's side: unix socket, CONNECT, tunnel)
// with the same made directly; and the bytes per second of a 1 MiB body.
func BenchmarkGateway(b *testing.B) {
	f := newFixture(b, Default)
	f.gw.opts.Recorder = discard{}
	direct := fmt.Sprintf("%v:%d", internet, f.port)
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			c, err := net.Dial("tcp", direct)
			if err != nil {
				b.Fatal(err)
			}
			roundTrip(b, c, bufio.NewReader(c), "/")
			c.Close()
		}
	})
	tunnel := func(b *testing.B, path string) int64 {
		c, err := net.Dial("unix", f.sock)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT public.test:%d HTTP/1.1\r\n\r\n", f.port)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(resp, err)
		}
		return roundTrip(b, c, br, path)
	}
	b.Run("gateway", func(b *testing.B) {
		for b.Loop() {
			tunnel(b, "/")
		}
	})
	b.Run("throughput", func(b *testing.B) {
		var n int64
		for b.Loop() {
			n += tunnel(b, "/big")
		}
		b.SetBytes(n / int64(b.N))
	})
}
