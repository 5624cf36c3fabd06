package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// maxBridged bounds the proxy connections a desktop has open at once.
const maxBridged = 256

// BridgeEgress serves ln, the egress proxy port on the desktop's loopback:
// each connection is joined, byte for byte, to a new connection to the
// fleet's egress gateway at the unix socket gate, which speaks the proxy
// protocol. It returns when ctx ends, having closed ln and every bridged
// connection.
func BridgeEgress(ctx context.Context, ln net.Listener, gate string, log *slog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxBridged)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn("egress proxy accept", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close() // the client sees a reset; the gateway bounds the rest
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			bridge(ctx, c, gate, log)
		})
	}
}

// bridge joins c to a new gateway connection until the gateway's side
// ends or ctx does.
func bridge(ctx context.Context, c net.Conn, gate string, log *slog.Logger) {
	defer c.Close()
	var d net.Dialer
	g, err := d.DialContext(ctx, "unix", gate)
	if err != nil {
		log.Warn("egress gateway unreachable", "gate", gate, "err", err)
		const body = "atelier egress: the fleet's gateway does not answer\n"
		fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return
	}
	defer g.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); g.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(g, c)
		g.(*net.UnixConn).CloseWrite()
	}()
	io.Copy(c, g)
	// The gateway has said all it will: what the client still sends has
	// nowhere to go.
	c.Close()
	<-done
}
