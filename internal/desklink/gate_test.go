package desklink_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"atelier/internal/desklink"
)

// gateway is a fleet's gateway on loopback: it answers each line with the
// desktop its verified certificate names, if that certificate is desk's.
func gateway(t *testing.T, fleet, desk desklink.Pair) string {
	t.Helper()
	cfg, err := desklink.GateServerConfig(fleet)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&desklink.Server{Log: slog.New(slog.DiscardHandler)}).ServeTLS(ctx, ln, cfg, func(_ context.Context, c *tls.Conn) {
			got, leaf, err := desklink.GateDesktop(c.ConnectionState())
			if err != nil || got != id || !desklink.SameCert(desk.Cert, leaf) {
				return
			}
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				io.WriteString(c, "gate of "+got+": "+sc.Text()+"\n")
			}
		})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// TestGateCarriesToFleet: a connection to the gate socket the link server
// serves reaches the fleet's gateway as this desktop's.
func TestGateCarriesToFleet(t *testing.T) {
	l := serve(t)
	addr := gateway(t, l.fleet, l.desk)
	cfg, err := desklink.GateClientConfig(l.desk, l.fleet.Cert)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "egress.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&desklink.Server{Log: slog.New(slog.DiscardHandler)}).ServeGate(ctx, ln, addr, cfg)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := ask(c); got != "gate of "+id+": status\n" {
		t.Errorf("through the gate socket: %q, want the fleet's answer for %s", got, id)
	}
}

// TestGateRefuses: the fleet's gateway answers nothing without the
// desktop's certificate and key (none, another desktop's key under the
// same name, the fleet's own), and the link server carries nothing to a
// gateway that is not its fleet's.
func TestGateRefuses(t *testing.T) {
	l := serve(t)
	addr := gateway(t, l.fleet, l.desk)
	forged, err := desklink.NewServerPair(id)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*desklink.Pair{"no certificate": nil, "forged certificate": &forged, "the fleet's": &l.fleet} {
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{desklink.ProtoGate}}
		if p != nil {
			cert, err := tls.X509KeyPair(p.Cert, p.Key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			continue // refused at the handshake
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "hello\n")
		if b, _ := io.ReadAll(c); len(b) > 0 {
			t.Errorf("%s: the gateway answered %q", name, b)
		}
		c.Close()
	}

	// A link server whose fleet is another refuses this gateway.
	other, err := desklink.NewClientPair()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := desklink.GateClientConfig(l.desk, other.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := desklink.Dial(t.Context(), addr, cfg); err == nil {
		c.Close()
		t.Error("the link dialed a gateway that presents another fleet's certificate")
	}
}
