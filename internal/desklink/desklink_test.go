package desklink_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/desklink"
)

const id = "sess_aaaaaaaaaaaaaaaaaaaaaaaaaa"

type link struct {
	addr, run, home string
	fleet, desk     desklink.Pair
}

// serve starts a link server on loopback over a run dir whose agent.sock
// answers every line with "agent:" and the line.
func serve(t testing.TB) *link {
	t.Helper()
	l := &link{run: t.TempDir(), home: t.TempDir()}
	var err error
	if l.fleet, err = desklink.NewClientPair(); err != nil {
		t.Fatal(err)
	}
	if l.desk, err = desklink.NewServerPair(id); err != nil {
		t.Fatal(err)
	}
	agent, err := net.Listen("unix", filepath.Join(l.run, desktop.AgentSocket))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	go func() {
		for {
			c, err := agent.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					io.WriteString(c, "agent:"+sc.Text()+"\n")
				}
			}()
		}
	}()
	cfg, err := desklink.ServerConfig(l.desk, l.fleet.Cert)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&desklink.Server{RunDir: l.run, Home: l.home, Config: cfg, Log: slog.New(slog.DiscardHandler)}).Serve(ctx, ln)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *link) dial(t testing.TB, p desklink.Pair, proto string) (*tls.Conn, error) {
	t.Helper()
	cfg, err := desklink.ClientConfig(p, id, l.desk.Cert, proto)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return desklink.Dial(ctx, l.addr, cfg)
}

// ask sends a line to the agent over c and returns the answer, or "".
func ask(c net.Conn) string {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(c, "status\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}

func TestAgentThroughLink(t *testing.T) {
	l := serve(t)
	c, err := l.dial(t, l.fleet, desklink.ProtoAgent)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := ask(c); got != "agent:status\n" {
		t.Errorf("agent through the link answered %q", got)
	}
}

// TestRefusesStrangers: no peer but the fleet gets an answer, whatever it
// presents; the fleet reaches no server but the desktop's.
func TestRefusesStrangers(t *testing.T) {
	l := serve(t)
	stranger, _ := desklink.NewClientPair()
	otherDesk, _ := desklink.NewServerPair("sess_bbbbbbbbbbbbbbbbbbbbbbbbbb")
	for name, p := range map[string]desklink.Pair{"another fleet": stranger, "a desktop's own pair": l.desk, "another desktop's pair": otherDesk} {
		c, err := l.dial(t, p, desklink.ProtoAgent)
		if err != nil {
			continue // refused in the handshake
		}
		if got := ask(c); got != "" {
			t.Errorf("%s: the agent answered %q", name, got)
		}
		c.Close()
	}
	// Without a certificate, and as plain TCP.
	raw, err := tls.Dial("tcp", l.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{desklink.ProtoAgent}})
	if err == nil {
		if got := ask(raw); got != "" {
			t.Errorf("no certificate: the agent answered %q", got)
		}
		raw.Close()
	}
	plain, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := ask(plain); strings.Contains(got, "agent:") {
		t.Errorf("plain TCP: the agent answered %q", got)
	}
	plain.Close()
	// The fleet checks the server: a desktop's name with another's cert fails.
	cfg, _ := desklink.ClientConfig(l.fleet, "sess_bbbbbbbbbbbbbbbbbbbbbbbbbb", l.desk.Cert, desklink.ProtoAgent)
	if c, err := desklink.Dial(t.Context(), l.addr, cfg); err == nil {
		c.Close()
		t.Error("the fleet accepted a desktop's certificate for another desktop")
	}
}

func TestRunFile(t *testing.T) {
	l := serve(t)
	write := func(name, data string) error {
		c, err := l.dial(t, l.fleet, desklink.ProtoRunFile)
		if err != nil {
			t.Fatal(err)
		}
		return desklink.WriteRunFile(c, name, []byte(data))
	}
	if err := write(desktop.BudgetFile, `{"spent_usd":1}`); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(l.run, desktop.BudgetFile)); string(b) != `{"spent_usd":1}` {
		t.Errorf("budget file %q", b)
	}
	if err := write("../escape", "x"); err == nil {
		t.Error("a run file named ../escape accepted")
	}
	// A raw request past the client's own check: the server refuses too.
	c, err := l.dial(t, l.fleet, desklink.ProtoRunFile)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, desktop.AgentSocket+"\nx")
	c.CloseWrite()
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "error:") {
		t.Errorf("server answered %q to a run file named agent.sock", b)
	}
	ents, _ := os.ReadDir(l.run)
	for _, e := range ents {
		if !slices.Contains([]string{desktop.AgentSocket, desktop.BudgetFile}, e.Name()) {
			t.Errorf("run dir holds %s", e.Name())
		}
	}
}

func TestHomeInOut(t *testing.T) {
	l := serve(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "notes/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "notes/a.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	c, err := l.dial(t, l.fleet, desklink.ProtoHomeImport)
	if err != nil {
		t.Fatal(err)
	}
	if err := desklink.ImportHome(c, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(l.home, "notes", "a.txt")); string(b) != "hi" {
		t.Errorf("imported file %q", b)
	}
	// A second import never merges into a home.
	c, _ = l.dial(t, l.fleet, desklink.ProtoHomeImport)
	if err := desklink.ImportHome(c, bytes.NewReader(buf.Bytes())); err == nil {
		t.Error("an import into a home that is not empty accepted")
	}
	c, err = l.dial(t, l.fleet, desklink.ProtoHomeExport)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(c)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	c.Close()
	if !slices.Equal(names, []string{"notes/", "notes/a.txt"}) {
		t.Errorf("exported %v", names)
	}
}

// FuzzRunFileRequest: whatever a run file request holds, the run dir gets
// no file but the budget and the theme.
func FuzzRunFileRequest(f *testing.F) {
	f.Add([]byte("budget\n{}"))
	f.Add([]byte("theme\ndark\n"))
	f.Add([]byte("../x\ny"))
	f.Add([]byte("agent.sock\n"))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, req []byte) {
		l := serve(t)
		c, err := l.dial(t, l.fleet, desklink.ProtoRunFile)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(req)
		c.CloseWrite()
		io.ReadAll(c)
		c.Close()
		ents, _ := os.ReadDir(l.run)
		for _, e := range ents {
			if !slices.Contains([]string{desktop.AgentSocket, desktop.BudgetFile, desktop.ThemeFile}, e.Name()) {
				t.Errorf("request %q left %s in the run dir", req, e.Name())
			}
		}
	})
}

// BenchmarkDialAndAsk: a new link connection (TCP, mutual TLS 1.3 with
// ECDSA P-256, ALPN) and one request through it, on loopback.
func BenchmarkDialAndAsk(b *testing.B) {
	l := serve(b)
	for b.Loop() {
		c, err := l.dial(b, l.fleet, desklink.ProtoAgent)
		if err != nil {
			b.Fatal(err)
		}
		if got := ask(c); got != "agent:status\n" {
			b.Fatalf("answer %q", got)
		}
		c.Close()
	}
}

// BenchmarkAsk: one request over a link connection already open.
func BenchmarkAsk(b *testing.B) {
	l := serve(b)
	c, err := l.dial(b, l.fleet, desklink.ProtoAgent)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for b.Loop() {
		io.WriteString(c, "status\n")
		if line, err := r.ReadString('\n'); err != nil || line != "agent:status\n" {
			b.Fatalf("answer %q %v", line, err)
		}
	}
}
