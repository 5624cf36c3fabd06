// Package egress is the fleet's egress gateway: a desktop's only way out.
// The fleet listens on one unix socket per desktop, in a directory of its
// own that the desktop sees read-only; the desktop's agent bridges a proxy
// port on the desktop's loopback to it. The gateway speaks HTTP proxy
// (CONNECT host:port and absolute-URI http requests), resolves names
// itself, refuses any name with an address in a forbidden range (loopback,
// private, link-local, metadata, multicast…), dials the very address it
// checked (so a name cannot be rebound between check and connect), applies
// the desktop's policy (open, allowlist or none) and records every
// connection.
package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Resolver looks names up; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Hosts resolves the names it holds, and no other, like a hosts file; a
// test stands in for DNS with it.
type Hosts map[string][]netip.Addr

// LookupNetIP returns the addresses of host.
func (h Hosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := h[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// Decision is how the gateway answered one connection.
type Decision string

// Decisions.
const (
	Allowed Decision = "allowed" // connected; bytes flowed
	Refused Decision = "refused" // the policy or the ranges said no, or the request was bad
	Failed  Decision = "failed"  // allowed, but the name did not resolve or the host did not answer
)

// Record is one connection as the audit keeps it.
type Record struct {
	Method    string // CONNECT, GET…; empty for a request that did not parse
	Host      string // as asked, canonical; empty for a request that did not parse
	Port      int
	Addr      string // the address dialed, if any
	Decision  Decision
	Reason    string // why refused or failed
	BytesUp   int64  // desktop → host
	BytesDown int64  // host → desktop
	Duration  time.Duration
}

// Recorder receives a record per connection, once it has ended. It is
// called on the connection's goroutine.
type Recorder interface {
	RecordEgress(session string, r Record)
}

// Options configure a Gateway. Zero values take the defaults noted.
type Options struct {
	Resolver Resolver // default net.DefaultResolver
	Recorder Recorder // nil: nothing recorded
	Logger   *slog.Logger
	// DialTimeout bounds name resolution and connecting. Default 10s.
	DialTimeout time.Duration
	// HeaderTimeout bounds reading a request's head. Default 30s.
	HeaderTimeout time.Duration
	// MaxConns bounds a desktop's open connections. Default 256.
	MaxConns int
	// Exempt lets addresses in these prefixes through the forbidden
	// ranges. It is for tests, which stand in for the internet with a
	// network namespace on a benchmarking range; no setting reaches it.
	Exempt []netip.Prefix
}

// maxHead bounds a request's line and headers.
const maxHead = 64 << 10

// Gateway serves the egress of many desktops. It is safe for concurrent
// use.
type Gateway struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	gates  map[string]*gate
	closed bool
}

// New returns a gateway with no desktop yet.
func New(opts Options) *Gateway {
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = 30 * time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 256
	}
	return &Gateway{opts: opts, log: opts.Logger, gates: map[string]*gate{}}
}

// gate is one desktop's listener and its connections.
type gate struct {
	id, path string
	ln       net.Listener
	policy   atomic.Pointer[Policy]
	slots    chan struct{} // one per open connection
	ctx      context.Context
	cancel   context.CancelFunc // closes every connection
	wg       sync.WaitGroup
}

// Open starts serving desktop id on a unix socket at path, with policy p.
// The socket's directory must be the fleet's: the desktop sees it, read
// only. A desktop already served at path only gets the new policy; a
// stale socket left at path by an earlier fleet is replaced.
func (g *Gateway) Open(id, path string, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("egress gateway closed")
	}
	if old := g.gates[id]; old != nil {
		if old.path == path {
			old.policy.Store(&p)
			return nil
		}
		delete(g.gates, id)
		old.close()
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return fmt.Errorf("egress gate %s: %s exists and is not a socket", id, path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("egress gate %s: %w", id, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("egress gate %s: %w", id, err)
	}
	// The desktop's user connects: anyone may write the socket; its
	// directory is what keeps it out of other hands.
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return fmt.Errorf("egress gate %s: %w", id, err)
	}
	gt := &gate{id: id, path: path, ln: ln, slots: make(chan struct{}, g.opts.MaxConns)}
	gt.policy.Store(&p)
	gt.ctx, gt.cancel = context.WithCancel(context.Background())
	g.gates[id] = gt
	gt.wg.Go(func() { g.accept(gt) })
	g.log.Info("egress gate open", "session", id, "policy", p.String())
	return nil
}

// Close stops serving desktop id: its socket is removed and its
// connections are closed. Closing an unknown id does nothing.
func (g *Gateway) Close(id string) {
	g.mu.Lock()
	gt := g.gates[id]
	delete(g.gates, id)
	g.mu.Unlock()
	if gt != nil {
		gt.close()
	}
}

// Shutdown closes every desktop's gate; Open fails afterwards.
func (g *Gateway) Shutdown() {
	g.mu.Lock()
	gates := g.gates
	g.gates, g.closed = map[string]*gate{}, true
	g.mu.Unlock()
	for _, gt := range gates {
		gt.close()
	}
}

func (gt *gate) close() {
	gt.cancel()
	gt.ln.Close()
	gt.wg.Wait()
}

func (g *Gateway) accept(gt *gate) {
	for {
		conn, err := gt.ln.Accept()
		if err != nil {
			if gt.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Warn("egress gate accept", "session", gt.id, "err", err)
			select {
			case <-gt.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case gt.slots <- struct{}{}:
		default:
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			refuse(conn, http.StatusServiceUnavailable, "too many open connections ("+strconv.Itoa(cap(gt.slots))+")")
			conn.Close()
			continue
		}
		gt.wg.Go(func() {
			defer func() { <-gt.slots }()
			g.serve(gt, conn)
		})
	}
}

// serve answers one connection: one CONNECT tunnel or one plain request.
func (g *Gateway) serve(gt *gate, conn net.Conn) {
	ctx, cancel := context.WithCancel(gt.ctx)
	defer cancel()
	c := &call{conn: conn, start: time.Now()}
	stop := context.AfterFunc(ctx, c.closeAll)
	defer func() {
		stop()
		c.closeAll()
		c.rec.Duration = time.Since(c.start)
		c.rec.BytesUp, c.rec.BytesDown = c.up.Load(), c.down.Load()
		if g.opts.Recorder != nil {
			g.opts.Recorder.RecordEgress(gt.id, c.rec)
		}
		if c.rec.Decision != Allowed {
			g.log.Info("egress "+string(c.rec.Decision), "session", gt.id, "host", c.rec.Host, "port", c.rec.Port, "reason", c.rec.Reason)
		}
	}()
	g.handle(ctx, gt, c)
}

// call is one connection's state.
type call struct {
	conn     net.Conn
	upstream atomic.Pointer[net.Conn]
	start    time.Time
	rec      Record
	up, down atomic.Int64
}

func (c *call) closeAll() {
	c.conn.Close()
	if u := c.upstream.Load(); u != nil {
		(*u).Close()
	}
}

func (c *call) refuse(d Decision, status int, reason string) {
	c.rec.Decision, c.rec.Reason = d, reason
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	refuse(c.conn, status, reason)
}

func (g *Gateway) handle(ctx context.Context, gt *gate, c *call) {
	head := &io.LimitedReader{R: c.conn, N: maxHead}
	br := bufio.NewReader(head)
	c.conn.SetReadDeadline(time.Now().Add(g.opts.HeaderTimeout))
	req, err := http.ReadRequest(br)
	if err != nil {
		c.refuse(Refused, http.StatusBadRequest, "bad request: "+err.Error())
		return
	}
	c.conn.SetReadDeadline(time.Time{})
	head.N = 1<<63 - 1 // the head is read; what follows is the body or the tunnel
	c.rec.Method = req.Method
	t, err := parseTarget(req)
	if err != nil {
		c.refuse(Refused, http.StatusBadRequest, err.Error())
		return
	}
	c.rec.Host, c.rec.Port = t.host, int(t.port)
	if ok, why := gt.policy.Load().allows(t.host); !ok {
		c.refuse(Refused, http.StatusForbidden, t.host+" refused: "+why)
		return
	}
	addrs, status, err := g.resolve(ctx, t)
	if err != nil {
		d := Refused
		if status != http.StatusForbidden {
			d = Failed
		}
		c.refuse(d, status, t.host+" refused: "+err.Error())
		return
	}
	up, err := g.dial(ctx, addrs, t.port)
	if err != nil {
		c.refuse(Failed, http.StatusBadGateway, t.String()+" unreachable: "+err.Error())
		return
	}
	c.upstream.Store(&up)
	c.rec.Addr = up.RemoteAddr().String()
	if ctx.Err() != nil { // closed while dialing: AfterFunc ran before Store
		c.refuse(Failed, http.StatusServiceUnavailable, "gateway closing")
		return
	}
	c.rec.Decision = Allowed
	if req.Method == http.MethodConnect {
		if _, err := io.WriteString(c.conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return
		}
		c.tunnel(br, up)
		return
	}
	c.forward(req, up)
}

// resolve returns the addresses to dial for t, all of them outside the
// forbidden ranges, or the status and reason of a refusal.
func (g *Gateway) resolve(ctx context.Context, t target) ([]netip.Addr, int, error) {
	addrs := []netip.Addr{t.ip}
	if !t.ip.IsValid() {
		rctx, cancel := context.WithTimeout(ctx, g.opts.DialTimeout)
		defer cancel()
		var err error
		if addrs, err = g.opts.Resolver.LookupNetIP(rctx, "ip", t.host); err != nil || len(addrs) == 0 {
			return nil, http.StatusBadGateway, fmt.Errorf("does not resolve: %v", err)
		}
	}
	// One forbidden address refuses the name whole: a name that points at
	// both the internet and this machine is an attack, not a mistake.
	for i, a := range addrs {
		addrs[i] = a.Unmap()
		if bad, p := forbiddenExcept(addrs[i], g.opts.Exempt); bad {
			why := "a forbidden address"
			if p.IsValid() {
				why = "the forbidden range " + p.String()
			}
			if t.ip.IsValid() {
				return nil, http.StatusForbidden, fmt.Errorf("%s is in %s", addrs[i], why)
			}
			return nil, http.StatusForbidden, fmt.Errorf("resolves to %s, in %s", addrs[i], why)
		}
	}
	return addrs, 0, nil
}

// dial connects to the first of addrs that answers. The dialer checks the
// address again as the socket connects: nothing but a checked address is
// ever dialed.
func (g *Gateway) dial(ctx context.Context, addrs []netip.Addr, port uint16) (net.Conn, error) {
	d := net.Dialer{Timeout: g.opts.DialTimeout, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if bad, _ := forbiddenExcept(ap.Addr(), g.opts.Exempt); bad {
			return fmt.Errorf("%s is forbidden", ap.Addr())
		}
		return nil
	}}
	var errs []error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// tunnel copies both ways until the host's side ends (the desktop's end
// only half-closes the host's), then gives the desktop's side a moment to
// finish.
func (c *call) tunnel(fromDesk io.Reader, up net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(&countWriter{w: up, n: &c.up}, fromDesk)
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	io.Copy(&countWriter{w: c.conn, n: &c.down}, up)
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.closeAll()
		<-done
	}
}

// hopHeaders are the proxy's own and must not be forwarded.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forward sends one plain request to the host and its response back; the
// connection closes after it.
func (c *call) forward(req *http.Request, up net.Conn) {
	toDesk := &countWriter{w: c.conn, n: &c.down}
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.Close = true
	req.RequestURI = ""
	if err := req.Write(&countWriter{w: up, n: &c.up}); err != nil {
		refuse(toDesk, http.StatusBadGateway, "write to host: "+err.Error())
		return
	}
	resp, err := http.ReadResponse(bufio.NewReader(up), req)
	if err != nil {
		refuse(toDesk, http.StatusBadGateway, "read from host: "+err.Error())
		return
	}
	defer resp.Body.Close()
	resp.Close = true
	resp.Write(toDesk)
}

// refuse writes an error response whose plain-text body says why.
func refuse(w io.Writer, status int, reason string) {
	body := "atelier egress: " + reason + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
