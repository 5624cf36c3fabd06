package agent_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/internal/agent"
)

// The bridge joins each proxy connection to its own gateway connection,
// byte for byte both ways; a missing gateway gets the client a clear 502;
// cancelling closes everything.
func TestBridgeEgress(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "egress.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { agent.BridgeEgress(ctx, ln, gate, slog.New(slog.DiscardHandler)) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	ask := func() string {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "CONNECT example.org:443 HTTP/1.1\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(b)
	}
	if got := ask(); !strings.HasPrefix(got, "502") || !strings.Contains(got, "atelier egress: the fleet's gateway does not answer") {
		t.Errorf("without a gateway: %q", got)
	}

	gl, err := net.Listen("unix", gate)
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	go func() {
		for {
			c, err := gl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\n\r\nsaw "+line[:8])
			}()
		}
	}()
	if got := ask(); got != "403 Forbidden saw CONNECT " {
		t.Errorf("through the gateway: %q", got)
	}
	cancel()
	wg.Wait()
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the proxy port still answers after cancel")
	}
}
