package desklink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// ProtoGate is the ALPN protocol of a desktop's egress connection to the
// fleet's gateway: after the handshake, the bytes of one connection to
// the desktop's gate socket (an HTTP CONNECT proxy, package egress).
//
// The direction is the link's reversed: the link server dials the fleet,
// presenting the desktop's own certificate as its client certificate, and
// pins the fleet's. The fleet maps the certificate to the one desktop
// whose record holds it, so a desktop's egress goes through its own
// policy, audit and metrics, and no other's.
const ProtoGate = "atelier-gate/1"

// GateClientConfig is the link server's TLS configuration for the fleet's
// gateway: the desktop's pair, and the fleet's certificate as the one
// server it accepts.
func GateClientConfig(desk Pair, fleetCert []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(desk.Cert, desk.Key)
	if err != nil {
		return nil, fmt.Errorf("desktop certificate: %w", err)
	}
	fleet, err := der(fleetCert)
	if err != nil {
		return nil, fmt.Errorf("fleet certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		// The fleet's certificate is pinned, byte for byte, below: it is
		// self-signed and made for client authentication, which the
		// chain verification would refuse for a server.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], fleet) {
				return errors.New("gateway: not the fleet's certificate")
			}
			return nil
		},
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ProtoGate},
	}, nil
}

// GateServerConfig is the fleet gateway's TLS configuration: the fleet's
// pair, and a client certificate required, whose key the handshake proves
// the peer holds. Which desktop's it is, if any, GateDesktop tells.
func GateServerConfig(fleet Pair) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(fleet.Cert, fleet.Key)
	if err != nil {
		return nil, fmt.Errorf("fleet certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ProtoGate},
	}, nil
}

// GateDesktop returns the desktop id the client certificate of a gateway
// connection names. The name is only a claim: the caller compares the
// certificate with that desktop's (SameCert) before trusting it.
func GateDesktop(cs tls.ConnectionState) (id string, leaf []byte, err error) {
	if cs.NegotiatedProtocol != ProtoGate {
		return "", nil, fmt.Errorf("gateway: protocol %q, want %s", cs.NegotiatedProtocol, ProtoGate)
	}
	if len(cs.PeerCertificates) == 0 {
		return "", nil, errors.New("gateway: no client certificate")
	}
	c := cs.PeerCertificates[0]
	id, ok := strings.CutSuffix(c.Subject.CommonName, ServerName(""))
	if !ok || id == "" {
		return "", nil, fmt.Errorf("gateway: certificate of %q names no desktop", c.Subject.CommonName)
	}
	return id, c.Raw, nil
}

// SameCert reports whether the PEM certificate certPEM is leaf (DER).
func SameCert(certPEM, leaf []byte) bool {
	d, err := der(certPEM)
	return err == nil && bytes.Equal(d, leaf)
}

// der is the DER of the first certificate in certPEM.
func der(certPEM []byte) ([]byte, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return b.Bytes, nil
}

// ServeGate accepts the desktop's connections to its gate socket on ln
// until ctx is done, and carries each to the fleet's gateway at addr
// over a ProtoGate connection made with cfg (GateClientConfig's).
func (s *Server) ServeGate(ctx context.Context, ln net.Listener, addr string, cfg *tls.Config) error {
	return accept(ctx, ln, func(c net.Conn) {
		up, err := Dial(ctx, addr, cfg)
		if err != nil {
			s.Log.Warn("link: egress gateway", "err", err)
			return
		}
		stop := context.AfterFunc(ctx, func() { up.Close() })
		defer stop()
		Pipe(c, up)
	})
}

// Pipe copies between a and b, both ways, until either side closes, and
// closes both.
func Pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(a, b); done <- struct{}{} }()
	go func() { io.Copy(b, a); done <- struct{}{} }()
	<-done
	a.Close()
	b.Close()
	<-done
}
