package kube

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"atelier/internal/desklink"
)

// gateHandshakeTimeout bounds a gateway handshake: a peer that connects
// and says nothing holds no goroutine for long.
const gateHandshakeTimeout = 10 * time.Second

// listenGateway resolves opts.Gateway (pods have no DNS), listens on its
// port on every interface, and serves it until Close. Port 0 picks one,
// which pods then dial.
func (r *Runtime) listenGateway(ctx context.Context) error {
	host, port, err := net.SplitHostPort(r.opts.Gateway)
	if err != nil {
		return fmt.Errorf("gateway %q: %w", r.opts.Gateway, err)
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("gateway %q: resolve %s: %v", r.opts.Gateway, host, err)
	}
	cfg, err := desklink.GateServerConfig(r.fleet)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", port))
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	r.gatewayIP = ips[0]
	r.gatewayPort = ln.Addr().(*net.TCPAddr).Port
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	r.stopGateway = func() { cancel(); <-done }
	go func() {
		defer close(done)
		srv := &desklink.Server{Log: r.log}
		srv.ServeTLS(gctx, ln, cfg, r.gate)
	}()
	r.log.Info("egress gateway for pods", "listen", ln.Addr().String(), "pods_dial", r.GatewayAddr())
	return nil
}

// GatewayAddr is the address desktops' pods dial for egress, "" if none.
func (r *Runtime) GatewayAddr() string {
	if r.gatewayIP == nil {
		return ""
	}
	return net.JoinHostPort(r.gatewayIP.String(), strconv.Itoa(r.gatewayPort))
}

// gate carries one desktop's egress connection to its gate socket, where
// the fleet's egress gateway applies that desktop's policy: the client
// certificate must be the one in the desktop's record, in this fleet.
func (r *Runtime) gate(ctx context.Context, c *tls.Conn) {
	id, leaf, err := desklink.GateDesktop(c.ConnectionState())
	if err != nil {
		r.log.Warn("egress gateway: refused", "peer", c.RemoteAddr().String(), "err", err)
		return
	}
	s, err := r.secret(ctx, id)
	if err != nil || !desklink.SameCert(s.Data[desklink.CertFile], leaf) {
		r.log.Warn("egress gateway: refused a certificate that is not the desktop's", "desktop", id, "peer", c.RemoteAddr().String(), "err", err)
		return
	}
	path, err := r.GateSocket(id)
	if err != nil {
		r.log.Warn("egress gateway", "desktop", id, "err", err)
		return
	}
	u, err := net.Dial("unix", path)
	if err != nil {
		r.log.Warn("egress gateway: gate socket", "desktop", id, "err", err)
		return
	}
	desklink.Pipe(c, u)
}
