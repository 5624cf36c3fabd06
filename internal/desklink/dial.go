package desklink

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Dial connects to the link server at addr and completes the handshake,
// checking that the server agreed to the one protocol cfg asks for.
func Dial(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", addr, err)
	}
	tc := c.(*tls.Conn)
	if got := tc.ConnectionState().NegotiatedProtocol; len(cfg.NextProtos) != 1 || got != cfg.NextProtos[0] {
		tc.Close()
		return nil, fmt.Errorf("link %s: server speaks %q, want %v", addr, got, cfg.NextProtos)
	}
	return tc, nil
}

// WriteRunFile sends run file name over c (a ProtoRunFile connection) and
// waits for the server's answer.
func WriteRunFile(c *tls.Conn, name string, data []byte) error {
	defer c.Close()
	if err := CheckRunFile(name); err != nil {
		return err
	}
	if _, err := io.WriteString(c, name+"\n"); err != nil {
		return err
	}
	if _, err := c.Write(data); err != nil {
		return err
	}
	return finish(c)
}

// ImportHome sends a tar stream over c (a ProtoHomeImport connection) and
// waits for the server's answer.
func ImportHome(c *tls.Conn, tarStream io.Reader) error {
	defer c.Close()
	if _, err := io.Copy(c, tarStream); err != nil {
		return err
	}
	return finish(c)
}

// finish ends the request (half-close) and reads the server's one-line
// answer.
func finish(c *tls.Conn) error {
	if err := c.CloseWrite(); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
	if err != nil {
		return fmt.Errorf("link: no answer: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	if line == "ok" {
		return nil
	}
	return errors.New(strings.TrimPrefix(line, "error: "))
}
