package kube_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"atelier/internal/desklink"
	"atelier/internal/egress"
	"atelier/internal/runtime"
	"atelier/internal/runtime/kube"
	"atelier/internal/runtime/kube/kubetest"
	"atelier/internal/runtime/runtimetest"
)

// audit keeps the egress records of each desktop.
type audit struct {
	mu   sync.Mutex
	recs map[string][]egress.Record
}

func (a *audit) RecordEgress(id string, r egress.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs[id] = append(a.recs[id], r)
}

func (a *audit) of(id string) []egress.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]egress.Record(nil), a.recs[id]...)
}

// TestEgressThroughGateway: from a desktop's terminal in its pod, an
// allowed host answers through the fleet's gateway and a refused one gets
// the reason, and the audit shows both as that desktop's; the gateway's
// port answers nothing without a desktop's certificate and key, and a
// desktop's certificate gets that desktop's policy, no other's. The pod's
// NetworkPolicy lets out the gateway alone (checked as an object: the test
// cluster's bridge CNI does not enforce it).
func TestEgressThroughGateway(t *testing.T) {
	env := kubetest.Cluster(t)
	rt := env.Runtime(t, kube.Options{Gateway: kubetest.FleetHost + ":0"})
	ctx := t.Context()

	// The internet: a server on this host's loopback, which the gateway
	// is told to let through its forbidden ranges.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello from the internet\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	lo := netip.MustParseAddr("127.0.0.1")
	rec := &audit{recs: map[string][]egress.Record{}}
	gw := egress.New(egress.Options{Recorder: rec, Exempt: []netip.Prefix{netip.PrefixFrom(lo, 32)},
		Resolver: egress.Hosts{"allowed.test": {lo}, "refused.test": {lo}}})
	t.Cleanup(gw.Shutdown)

	a, b := runtime.NewID(), runtime.NewID()
	allow, err := egress.ParsePolicy("allowlist", "allowed.test")
	if err != nil {
		t.Fatal(err)
	}
	for d, p := range map[string]egress.Policy{a: allow, b: {Mode: egress.ModeNone}} {
		if err := rt.Create(ctx, runtime.Spec{ID: d}); err != nil {
			t.Fatal(err)
		}
		sock, err := rt.GateSocket(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := gw.Open(d, sock, p); err != nil {
			t.Fatal(err)
		}
	}

	// The policy: out, the gateway's address and port alone.
	gwAddr := rt.GatewayAddr()
	np, err := env.Client.NetworkingV1().NetworkPolicies(env.Namespace).Get(ctx, "atelier-"+strings.ReplaceAll(a, "_", "-"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if eg := np.Spec.Egress; len(eg) != 1 || len(eg[0].To) != 1 || eg[0].To[0].IPBlock == nil ||
		eg[0].To[0].IPBlock.CIDR != kubetest.FleetHost+"/32" || len(eg[0].To[0].IPBlock.Except) != 0 ||
		len(eg[0].Ports) != 1 || eg[0].Ports[0].Port.String() != gwAddr[strings.LastIndex(gwAddr, ":")+1:] ||
		*eg[0].Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("egress of the desktop's policy: %+v, want %s/32 on the gateway's port (%s) alone", eg, kubetest.FleetHost, gwAddr)
	}

	if err := rt.Start(ctx, a); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitReady(t, rt, a)
	runtimetest.RunInTerminal(t, rt, a, fmt.Sprintf(
		`curl -sS http://allowed.test:%d/ > ~/plain.txt 2>&1; curl -sS -p http://allowed.test:%d/ > ~/tunnel.txt 2>&1; `+
			`curl -sS http://refused.test:%d/ > ~/refused.txt 2>&1; echo done > ~/done.txt`, port, port, port))
	runtimetest.WaitHomeFile(t, rt, a, "done.txt", "done\n")
	files := runtimetest.HomeFiles(t, rt, a)
	for _, name := range []string{"plain.txt", "tunnel.txt"} {
		if got := files[name]; got != "hello from the internet\n" {
			t.Errorf("from the pod, the allowed host (%s): %q", name, got)
		}
	}
	if got := files["refused.txt"]; got != "atelier egress: refused.test refused: not in the allowlist\n" {
		t.Errorf("from the pod, the refused host: %q", got)
	}
	var allowed, refused int
	for _, r := range rec.of(a) {
		switch {
		case r.Host == "allowed.test" && r.Decision == egress.Allowed && r.BytesDown > 0:
			allowed++
		case r.Host == "refused.test" && r.Decision == egress.Refused && r.Reason != "":
			refused++
		}
	}
	if allowed != 2 || refused != 1 {
		t.Errorf("audit of the desktop: %+v, want 2 allowed and 1 refused", rec.of(a))
	}

	// From this host, straight to the gateway's port.
	secret := func(d string) desklink.Pair {
		s, err := env.Client.CoreV1().Secrets(env.Namespace).Get(ctx, "atelier-"+strings.ReplaceAll(d, "_", "-"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return desklink.Pair{Cert: s.Data[desklink.CertFile], Key: s.Data[desklink.KeyFile]}
	}
	connect := func(p *desklink.Pair) string {
		t.Helper()
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{desklink.ProtoGate}}
		if p != nil {
			cert, err := tls.X509KeyPair(p.Cert, p.Key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", gwAddr, cfg)
		if err != nil {
			return ""
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n", port, port)
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	pa, pb := secret(a), secret(b)
	if got := connect(&pa); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Fatalf("desktop a's credential: %q, want the tunnel (the control)", got)
	}
	if got := connect(&pb); !strings.HasPrefix(got, "HTTP/1.1 403") {
		t.Errorf("desktop b's credential: %q, want b's policy (none) to refuse", got)
	}
	forged, err := desklink.NewServerPair(a)
	if err != nil {
		t.Fatal(err)
	}
	stranger := env.Runtime(t, kube.Options{Fleet: "stranger"})
	s := runtime.NewID()
	if err := stranger.Create(ctx, runtime.Spec{ID: s}); err != nil {
		t.Fatal(err)
	}
	ps := secret(s)
	for name, p := range map[string]*desklink.Pair{"no certificate": nil, "a's name, another key": &forged,
		"another fleet's desktop": &ps} {
		if got := connect(p); got != "" {
			t.Errorf("%s: the gateway answered %q", name, got)
		}
	}
	if n := len(rec.of(b)); n != 1 {
		t.Errorf("audit of desktop b: %d records, want the one refusal", n)
	}
}
