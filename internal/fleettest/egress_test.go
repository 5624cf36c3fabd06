package fleettest_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/egress"
	"atelier/internal/fleettest"
)

// internet stands in for the internet: an HTTP server in a network
// namespace the test makes, joined to the host by a veth pair on a
// benchmarking range (198.18.0.0/15), which the gateway forbids unless
// told otherwise.
type internet struct {
	addr   netip.Addr
	prefix netip.Prefix
	port   int
	agents chan string // the User-Agent of each request served
}

func newInternet(t *testing.T) internet {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: no ip command (iproute2): cannot make the stand-in internet")
	}
	n := os.Getpid() % 100000
	ns, host, peer := fmt.Sprintf("atl-eg-%d", n), fmt.Sprintf("atlh%d", n), fmt.Sprintf("atln%d", n)
	octet := n%250 + 1
	prefix := netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/30", octet))
	hostIP, nsIP := fmt.Sprintf("198.18.%d.1/30", octet), fmt.Sprintf("198.18.%d.2/30", octet)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	exec.Command("ip", "netns", "del", ns).Run() // left by a killed run
	exec.Command("ip", "link", "del", host).Run()
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip("link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	ip("link", "set", peer, "netns", ns)
	ip("addr", "add", hostIP, "dev", host)
	ip("link", "set", host, "up")
	ip("-n", ns, "addr", "add", nsIP, "dev", peer)
	ip("-n", ns, "link", "set", peer, "up")
	ip("-n", ns, "link", "set", "lo", "up")

	addr := netip.MustParseAddr(strings.TrimSuffix(nsIP, "/30"))
	ln := listenIn(t, "/run/netns/"+ns, netip.AddrPortFrom(addr, 0).String())
	agents := make(chan string, 64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case agents <- r.UserAgent():
		default:
		}
		fmt.Fprintf(w, "hello from the internet\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return internet{addr: addr, prefix: prefix, port: ln.Addr().(*net.TCPAddr).Port, agents: agents}
}

// listenIn opens a TCP listener inside the network namespace at nsPath: a
// socket stays in the namespace it was made in, whichever thread serves it.
func listenIn(t *testing.T, nsPath, addr string) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns: %v", err)
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so it dies with this goroutine rather
		// than serve others from the wrong namespace.
		t.Fatalf("setns back: %v", err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		t.Fatal(lerr)
	}
	return ln
}

// countingListener accepts on ln and counts the connections.
func countingListener(t *testing.T, network, addr string) (net.Listener, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln, &n
}

// egressEntries reads the egress entries of a session's audit file.
func egressEntries(t *testing.T, dataDir, id string) []audit.Egress {
	t.Helper()
	f, err := os.Open(filepath.Join(dataDir, "audit", id+".jsonl"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []audit.Egress
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if e.Kind == audit.KindEgress {
			if e.Actor != audit.ActorDesktop {
				t.Errorf("egress entry with actor %q", e.Actor)
			}
			out = append(out, *e.Egress)
		}
	}
	return out
}

// TestDesktopNetwork attacks the network from inside a desktop, typing
// into its terminal: the fleet's API, a host loopback service, another
// desktop's listener, the metadata address, a private address, the stand-in
// internet directly and an abstract unix socket of the host are all out of
// reach; binding the fleet's port binds the desktop's own; egress to an
// allowed host works through the gateway, and to another one gets a clear
// refusal; the session's audit shows both.
func TestDesktopNetwork(t *testing.T) { fleettest.EachRuntime(t, testDesktopNetwork) }

func testDesktopNetwork(t *testing.T, runtime string) {
	if testing.Short() {
		t.Skip("SKIP: desktops under -short")
	}
	fleettest.RequireDesktops(t)
	fleettest.Requires(t, runtime, fleettest.EgressGateway)
	inet := newInternet(t)
	policy, err := egress.ParsePolicy("allowlist", "allowed.test")
	if err != nil {
		t.Fatal(err)
	}
	f := fleettest.New(t, fleettest.Options{Runtime: runtime, Egress: policy, Gateway: egress.Options{
		Resolver: egress.Hosts{"allowed.test": {inet.addr}, "refused.test": {inet.addr}},
		Exempt:   []netip.Prefix{inet.prefix},
	}})
	ctx := t.Context()
	hostSvc, hostHits := countingListener(t, "tcp", "127.0.0.1:0")
	abstract := fmt.Sprintf("@atelier-egress-test-%d", os.Getpid())
	_, abstractHits := countingListener(t, "unix", abstract)
	u, err := url.Parse(f.URL)
	if err != nil {
		t.Fatal(err)
	}
	fleetPort := u.Port()

	a, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "attacker"}, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.Egress.Mode != "allowlist" || a.Egress.Source != "fleet" {
		t.Errorf("session egress %+v, want the fleet's allowlist", a.Egress)
	}
	b, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "victim"}, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// b listens on its own loopback; a must not reach it.
	homeA, homeB := f.Home(a.ID), f.Home(b.ID)
	typeCommand(t, f.Client, homeB, b.ID, "", `perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1:4444",Listen=>5,ReuseAddr=>1) or die; open F,">$ENV{HOME}/up"; close F; while($c=$s->accept){open F,">>$ENV{HOME}/hits"; print F "x\n"; close F}' &`)
	homeB.WaitFile(t, "up", "")

	probe := `p() { timeout 5 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && echo "$1:$2 open" || echo "$1:$2 closed"; }; `
	targets := [][2]string{
		{"127.0.0.1", fleetPort},
		{"127.0.0.1", fmt.Sprint(hostSvc.Addr().(*net.TCPAddr).Port)},
		{"127.0.0.1", "4444"},
		{"169.254.169.254", "80"},
		{"10.0.0.1", "80"},
		{"192.168.1.1", "80"},
		{inet.addr.String(), fmt.Sprint(inet.port)},
	}
	var want strings.Builder
	script := probe + "{ "
	for _, tg := range targets {
		script += fmt.Sprintf("p %s %s; ", tg[0], tg[1])
		fmt.Fprintf(&want, "%s:%s closed\n", tg[0], tg[1])
	}
	script += fmt.Sprintf(`perl -MIO::Socket::UNIX -e 'print IO::Socket::UNIX->new(Peer=>"\0%s") ? "abstract open\n" : "abstract closed\n"'; } > ~/reach.txt; `, abstract[1:])
	want.WriteString("abstract closed\n")
	script += fmt.Sprintf(`(perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1:%s",Listen=>1,ReuseAddr=>1); print $s ? "bound\n" : "not bound\n"; close STDOUT; sleep 60' > ~/bind.txt &); `, fleetPort)
	script += fmt.Sprintf(`curl -sS http://allowed.test:%d/ > ~/plain.txt 2>&1; `, inet.port)
	script += fmt.Sprintf(`curl -sS -p http://allowed.test:%d/ > ~/tunnel.txt 2>&1; `, inet.port)
	script += fmt.Sprintf(`curl -sS http://refused.test:%d/ > ~/refused.txt 2>&1; `, inet.port)
	script += fmt.Sprintf(`curl -sS -p http://refused.test:%d/ > ~/refused-tunnel.txt 2>&1; `, inet.port)
	script += `echo done > ~/done.txt`
	typeCommand(t, f.Client, homeA, a.ID, "", script)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if got, _ := homeA.ReadFile(t, "done.txt"); got == "done\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the attack script did not finish within 90s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	read := func(name string) string {
		got, err := homeA.ReadFile(t, name)
		if err != nil {
			t.Errorf("~/%s: %v", name, err)
		}
		return got
	}
	if got := read("reach.txt"); got != want.String() && fleettest.Offers(t, runtime, fleettest.IsolatedNetwork) {
		t.Errorf("from the desktop, reachability:\n%s\nwant:\n%s", got, want.String())
	}
	if hostHits.Load() != 0 || abstractHits.Load() != 0 {
		t.Errorf("host services were reached: loopback %d, abstract %d", hostHits.Load(), abstractHits.Load())
	}
	if got, _ := homeB.ReadFile(t, "hits"); got != "" {
		t.Errorf("desktop b's listener was reached: %q", got)
	}
	if got := read("bind.txt"); got != "bound\n" {
		t.Errorf("binding 127.0.0.1:%s in the desktop: %q, want bound (its own loopback)", fleetPort, got)
	}
	if _, err := f.Client.Health(ctx); err != nil {
		t.Errorf("the fleet's API with its port bound inside a desktop: %v", err)
	}
	for _, name := range []string{"plain.txt", "tunnel.txt"} {
		if got := read(name); got != "hello from the internet\n" {
			t.Errorf("egress to the allowed host (%s): %q", name, got)
		}
	}
	if got := read("refused.txt"); got != "atelier egress: refused.test refused: not in the allowlist\n" {
		t.Errorf("plain request to a refused host: %q", got)
	}
	if got := read("refused-tunnel.txt"); !strings.Contains(got, "403") {
		t.Errorf("CONNECT to a refused host: %q, want curl to report the 403", got)
	}

	// The audit holds every connection, each with its decision.
	var allowed, refused int
	for deadline := time.Now().Add(20 * time.Second); ; {
		allowed, refused = 0, 0
		for _, e := range egressEntries(t, f.DataDir, a.ID) {
			switch {
			case e.Host == "allowed.test" && e.Decision == "allowed" && e.BytesDown > 0 && e.Addr != "":
				allowed++
			case e.Host == "refused.test" && e.Decision == "refused" && e.Reason == "refused.test refused: not in the allowlist":
				refused++
			default:
				t.Errorf("unexpected egress entry %+v", e)
			}
		}
		if allowed == 2 && refused == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if allowed != 2 || refused != 2 {
		t.Errorf("audit of %s: %d allowed and %d refused egress entries, want 2 and 2", a.ID, allowed, refused)
	}
	// And the metrics count them by decision (this fleet has no token).
	fams := scrape(t, ctx, f)
	for decision, least := range map[string]float64{"allowed": 2, "refused": 2} {
		if n := counter(fams, "atelier_egress_connections_total", map[string]string{"decision": decision}); n < least {
			t.Errorf("atelier_egress_connections_total{%s} = %v, want %v or more", decision, n, least)
		}
	}
	if n := counter(fams, "atelier_egress_bytes_total", map[string]string{"direction": "down"}); n < float64(2*len("hello from the internet\n")) {
		t.Errorf("atelier_egress_bytes_total{down} = %v, want the two answers' bytes or more", n)
	}

	// The fleet's port on the host stays the fleet's: once it stops, the
	// port is free for the next fleet, whatever the desktop bound.
	f.Close()
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Errorf("the fleet's port after it stopped: %v", err)
	} else {
		ln.Close()
	}

	// The next fleet re-adopts the running desktop and opens its gate
	// again.
	f2 := fleettest.New(t, fleettest.Options{Runtime: runtime, DataDir: f.DataDir, Egress: policy, Gateway: egress.Options{
		Resolver: egress.Hosts{"allowed.test": {inet.addr}},
		Exempt:   []netip.Prefix{inet.prefix},
	}})
	typeCommand(t, f2.Client, homeA, a.ID, "", fmt.Sprintf(`curl -sS http://allowed.test:%d/ > ~/again.txt 2>&1`, inet.port))
	homeA.WaitFile(t, "again.txt", "hello from the internet\n")
}

// TestFirefoxUsesGateway opens a page in the desktop's Firefox, as a user
// would, with nothing set up: the page's request reaches the stand-in
// internet through the gateway (Firefox's default "system" proxy setting
// reads the desktop's proxy environment), and the audit shows it.
func TestFirefoxUsesGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: desktops under -short")
	}
	fleettest.RequireDesktops(t)
	inet := newInternet(t)
	f := fleettest.New(t, fleettest.Options{Gateway: egress.Options{
		Resolver: egress.Hosts{"page.test": {inet.addr}},
		Exempt:   []netip.Prefix{inet.prefix},
	}})
	s, err := f.Client.CreateSession(t.Context(), apitype.CreateSession{}, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	typeCommand(t, f.Client, f.Home(s.ID), s.ID, "", fmt.Sprintf("firefox-esr http://page.test:%d/ &", inet.port))
	deadline := time.After(120 * time.Second)
	for {
		select {
		case ua := <-inet.agents:
			if !strings.Contains(ua, "Firefox") {
				continue // another client (none is expected)
			}
			for wait := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				for _, e := range egressEntries(t, f.DataDir, s.ID) {
					if e.Host == "page.test" && e.Decision == "allowed" {
						return
					}
				}
				if time.Now().After(wait) {
					t.Fatal("Firefox's page load is not in the session's audit")
				}
			}
		case <-deadline:
			t.Fatalf("no request from Firefox reached the stand-in internet within 120s; audit: %+v", egressEntries(t, f.DataDir, s.ID))
		}
	}
}
