// Package desklink is the fleet's one way into a desktop that runs away
// from the fleet's host (a Kubernetes pod): one TCP port per desktop,
// mutual TLS 1.3 with certificates pinned on both sides, and ALPN naming
// what the connection carries: protocol v1 to the agent, RFB to the VNC
// server (both spliced to the run dir's unix sockets, byte for byte), a
// run file to write, the home as a tar stream in or out, or one file
// operation on the home. The desktop's egress goes the other way
// (ProtoGate).
//
// Each desktop has its own self-signed server certificate; the fleet has
// one self-signed client certificate. The link server (atelier-agent link,
// a container of its own beside the desktop's) trusts the fleet's
// certificate alone, and the fleet trusts that desktop's alone: without
// the fleet's key, another pod (or another desktop, holding only its own
// server certificate) completes no handshake, and nothing of the desktop
// answers it.
package desklink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Port is the TCP port of the link server in a desktop's pod.
const Port = 7070

// ALPN protocols: what one connection carries.
const (
	ProtoAgent      = "atelier-agent/1"   // protocol v1, spliced to agent.sock
	ProtoVNC        = "atelier-rfb/1"     // RFB, spliced to vnc.sock
	ProtoRunFile    = "atelier-runfile/1" // a name line, then the file until EOF
	ProtoHomeExport = "atelier-home-out/1"
	ProtoHomeImport = "atelier-home-in/1"
)

// Protos lists every protocol the link server speaks.
var Protos = []string{ProtoAgent, ProtoVNC, ProtoRunFile, ProtoHomeExport, ProtoHomeImport, ProtoFiles}

// Files of the link server's credential directory (the keys of the
// desktop's Secret).
const (
	CertFile  = "tls.crt"   // the desktop's server certificate
	KeyFile   = "tls.key"   // its key
	FleetFile = "fleet.crt" // the fleet's client certificate, the one trusted
	// RunFilePrefix and a run file's name key the run files the fleet
	// wrote while the desktop was stopped: the link server writes them
	// into the run dir when it starts.
	RunFilePrefix = "run."
)

// Pair is a PEM certificate and its PEM private key.
type Pair struct {
	Cert, Key []byte
}

// ServerName is the name in desktop id's certificate, which the fleet
// checks: a desktop's certificate is good for that desktop only.
func ServerName(id string) string { return id + ".desktop.atelier.invalid" }

// NewServerPair makes desktop id's self-signed server certificate.
func NewServerPair(id string) (Pair, error) {
	return newPair(ServerName(id), x509.ExtKeyUsageServerAuth)
}

// NewClientPair makes the fleet's self-signed client certificate.
func NewClientPair() (Pair, error) { return newPair("atelier-fleet", x509.ExtKeyUsageClientAuth) }

func newPair(name string, usage x509.ExtKeyUsage) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		// A desktop lives as long as its owner keeps it: no rotation yet.
		NotAfter:    time.Now().AddDate(20, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return Pair{}, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// pool is a pool of the one certificate in certPEM.
func pool(certPEM []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(certPEM) {
		return nil, errors.New("no PEM certificate")
	}
	return p, nil
}

// ServerConfig is the link server's TLS configuration: its own pair, and
// the fleet's certificate as the one client it accepts.
func ServerConfig(desk Pair, fleetCert []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(desk.Cert, desk.Key)
	if err != nil {
		return nil, fmt.Errorf("desktop certificate: %w", err)
	}
	clients, err := pool(fleetCert)
	if err != nil {
		return nil, fmt.Errorf("fleet certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   Protos,
	}, nil
}

// ClientConfig is the fleet's TLS configuration for one connection to
// desktop id carrying proto: the fleet's pair, and the desktop's
// certificate as the one server it accepts.
func ClientConfig(fleet Pair, id string, deskCert []byte, proto string) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(fleet.Cert, fleet.Key)
	if err != nil {
		return nil, fmt.Errorf("fleet certificate: %w", err)
	}
	roots, err := pool(deskCert)
	if err != nil {
		return nil, fmt.Errorf("desktop certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		ServerName:   ServerName(id),
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{proto},
	}, nil
}
