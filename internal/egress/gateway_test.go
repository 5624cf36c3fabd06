package egress

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// records collects what the gateway records.
type records struct{ ch chan Record }

func (r *records) RecordEgress(session string, rec Record) {
	if session != "sess_t" {
		panic("record for " + session)
	}
	r.ch <- rec
}

func (r *records) next(t *testing.T) Record {
	t.Helper()
	select {
	case rec := <-r.ch:
		return rec
	case <-time.After(10 * time.Second):
		t.Fatal("no egress record")
		return Record{}
	}
}

// stand-in internet: a server on 127.0.0.2, which the gateway is told to
// treat as public; all the rest of loopback stays forbidden.
var internet = netip.MustParseAddr("127.0.0.2")

type fixture struct {
	sock    string
	port    int
	accepts atomic.Int64 // connections the stand-in server accepted
	rec     *records
	gw      *Gateway
}

func newFixture(t testing.TB, p Policy) *fixture {
	f := &fixture{rec: &records{ch: make(chan Record, 16)}}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(internet, 0).String())
	if err != nil {
		t.Skipf("SKIP: cannot listen on %v: %v", internet, err)
	}
	f.port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(make([]byte, 1<<20))
			return
		}
		fmt.Fprintf(w, "hello %s %s", r.Method, r.URL.Path)
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.accepts.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.gw = New(Options{
		Resolver: Hosts{
			"public.test":  {internet},
			"loop.test":    {netip.MustParseAddr("127.0.0.1")},
			"mixed.test":   {internet, netip.MustParseAddr("10.0.0.1")},
			"meta.test":    {netip.MustParseAddr("::ffff:169.254.169.254")},
			"private.test": {netip.MustParseAddr("fd00::1")},
		},
		Recorder: f.rec,
		Exempt:   []netip.Prefix{netip.PrefixFrom(internet, 32)},
	})
	t.Cleanup(f.gw.Shutdown)
	f.sock = filepath.Join(t.TempDir(), "egress.sock")
	if err := f.gw.Open("sess_t", f.sock, p); err != nil {
		t.Fatal(err)
	}
	return f
}

// get sends a plain proxy request and returns the status and body.
func (f *fixture) get(t testing.TB, url string) (int, string) {
	t.Helper()
	c, err := net.Dial("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n", url)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// connect opens a tunnel; on 200 it sends one GET through it.
func (f *fixture) connect(t testing.TB, authority string) (int, string) {
	t.Helper()
	c, err := net.Dial("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	fmt.Fprintf(c, "GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	inner, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(inner.Body)
	return inner.StatusCode, string(b)
}

func TestGatewayAllows(t *testing.T) {
	f := newFixture(t, Default)
	code, body := f.connect(t, fmt.Sprintf("public.test:%d", f.port))
	if code != 200 || body != "hello GET /tunnel" {
		t.Fatalf("CONNECT: %d %q", code, body)
	}
	rec := f.rec.next(t)
	if rec.Decision != Allowed || rec.Host != "public.test" || rec.Port != f.port || rec.Method != "CONNECT" ||
		rec.Addr != fmt.Sprintf("%v:%d", internet, f.port) || rec.BytesUp == 0 || rec.BytesDown == 0 || rec.Duration <= 0 {
		t.Errorf("record %+v", rec)
	}
	code, body = f.get(t, fmt.Sprintf("http://PUBLIC.test:%d/plain?x=1", f.port))
	if code != 200 || body != "hello GET /plain" {
		t.Fatalf("GET: %d %q", code, body)
	}
	if rec := f.rec.next(t); rec.Decision != Allowed || rec.Method != "GET" || rec.BytesDown == 0 {
		t.Errorf("record %+v", rec)
	}
}

func TestGatewayRefuses(t *testing.T) {
	f := newFixture(t, Default)
	for _, tc := range []struct{ authority, reason string }{
		{fmt.Sprintf("loop.test:%d", f.port), "loop.test refused: resolves to 127.0.0.1, in the forbidden range 127.0.0.0/8"},
		{fmt.Sprintf("mixed.test:%d", f.port), "mixed.test refused: resolves to 10.0.0.1, in the forbidden range 10.0.0.0/8"},
		{"meta.test:80", "169.254.169.254, in the forbidden range 169.254.0.0/16"},
		{"private.test:443", "fd00::1, in the forbidden range fc00::/7"},
		{"169.254.169.254:80", "169.254.169.254 refused: 169.254.169.254 is in the forbidden range 169.254.0.0/16"},
		{fmt.Sprintf("127.0.0.1:%d", f.port), "127.0.0.0/8"},
		{fmt.Sprintf("[::ffff:127.0.0.1]:%d", f.port), "127.0.0.0/8"},
		{"localhost.:80", "localhost refused: does not resolve"},
		{"127.1:80", "bad target"},
	} {
		code, body := f.connect(t, tc.authority)
		if code != http.StatusForbidden && code != http.StatusBadRequest && code != http.StatusBadGateway {
			t.Errorf("CONNECT %s: %d %q, want a refusal", tc.authority, code, body)
		}
		if !strings.HasPrefix(body, "atelier egress: ") || !strings.Contains(body, tc.reason) {
			t.Errorf("CONNECT %s: body %q, want it to say %q", tc.authority, body, tc.reason)
		}
		if rec := f.rec.next(t); rec.Decision == Allowed || rec.Reason == "" || rec.BytesUp != 0 {
			t.Errorf("CONNECT %s: record %+v", tc.authority, rec)
		}
	}
	code, body := f.get(t, fmt.Sprintf("http://loop.test:%d/", f.port))
	if code != http.StatusForbidden || !strings.Contains(body, "forbidden range 127.0.0.0/8") {
		t.Errorf("GET loop.test: %d %q", code, body)
	}
	if n := f.accepts.Load(); n != 0 {
		t.Errorf("the server behind the forbidden names got %d connections", n)
	}
}

func TestGatewayPolicies(t *testing.T) {
	p, err := ParsePolicy("allowlist", "*.example.org")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, p)
	code, body := f.connect(t, fmt.Sprintf("public.test:%d", f.port))
	if code != http.StatusForbidden || body != "atelier egress: public.test refused: not in the allowlist\n" {
		t.Errorf("allowlist: %d %q", code, body)
	}
	if rec := f.rec.next(t); rec.Decision != Refused || rec.Reason != "public.test refused: not in the allowlist" {
		t.Errorf("record %+v", rec)
	}
	// A new policy for the same socket applies to the next connection.
	p, _ = ParsePolicy("allowlist", "public.test")
	if err := f.gw.Open("sess_t", f.sock, p); err != nil {
		t.Fatal(err)
	}
	if code, body := f.connect(t, fmt.Sprintf("public.test:%d", f.port)); code != 200 {
		t.Errorf("allowlisted: %d %q", code, body)
	}
	f.rec.next(t)
	if err := f.gw.Open("sess_t", f.sock, Policy{Mode: ModeNone}); err != nil {
		t.Fatal(err)
	}
	if code, body := f.connect(t, fmt.Sprintf("public.test:%d", f.port)); code != http.StatusForbidden || !strings.Contains(body, "policy none") {
		t.Errorf("none: %d %q", code, body)
	}
	f.rec.next(t)
	if err := f.gw.Open("sess_t", f.sock, Policy{Mode: "sideways"}); err == nil {
		t.Error("a bad policy was taken")
	}
}

func TestGatewayBadRequests(t *testing.T) {
	f := newFixture(t, Default)
	for _, raw := range []string{
		"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET https://public.test/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"garbage\r\n\r\n",
		"GET http://x/ HTTP/1.1\r\nX: " + strings.Repeat("a", maxHead) + "\r\n\r\n",
	} {
		c, err := net.Dial("unix", f.sock)
		if err != nil {
			t.Fatal(err)
		}
		go io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%.40q: %v", raw, err)
		}
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(string(b), "atelier egress: ") {
			t.Errorf("%.40q: %d %q", raw, resp.StatusCode, b)
		}
		if rec := f.rec.next(t); rec.Decision != Refused {
			t.Errorf("%.40q: record %+v", raw, rec)
		}
	}
}

func TestGatewayLifecycle(t *testing.T) {
	f := newFixture(t, Default)
	// An open tunnel is closed with its gate, and the socket goes.
	c, err := net.Dial("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT public.test:%d HTTP/1.1\r\n\r\n", f.port)
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	f.gw.Close("sess_t")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("tunnel after Close: %v, want EOF", err)
	}
	f.rec.next(t)
	if _, err := os.Lstat(f.sock); !os.IsNotExist(err) {
		t.Errorf("socket after Close: %v", err)
	}
	// A stale socket (a fleet that died) is replaced; a file is not.
	stale, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	if err := f.gw.Open("sess_t", f.sock, Default); err != nil {
		t.Fatalf("Open over a stale socket: %v", err)
	}
	fi, err := os.Stat(f.sock)
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode: %v %v", fi, err)
	}
	f.gw.Close("sess_t")
	os.WriteFile(f.sock, []byte("x"), 0o600)
	if err := f.gw.Open("sess_t", f.sock, Default); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Open over a file: %v", err)
	}
	f.gw.Shutdown()
	if err := f.gw.Open("sess_u", filepath.Join(t.TempDir(), "s"), Default); err == nil {
		t.Error("Open after Shutdown works")
	}
}
