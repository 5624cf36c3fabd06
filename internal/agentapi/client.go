package agentapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Client sends requests to one agent over a persistent connection. It is
// safe for concurrent use; requests go one at a time, in order. A broken
// connection is redialled on the next request, so a client outlives an agent
// restart.
type Client struct {
	dial func(ctx context.Context) (net.Conn, error)

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// NewClient returns a client that connects with dial when it first needs to.
func NewClient(dial func(ctx context.Context) (net.Conn, error)) *Client {
	return &Client{dial: dial}
}

// UnixClient returns a client of the agent listening on the socket at path.
func UnixClient(path string) *Client {
	return NewClient(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	})
}

// Do sends req (with v set to Version) and returns the agent's response. A
// protocol error comes back as an *Error; the response is returned with it.
func (c *Client) Do(ctx context.Context, req Request) (Response, error) {
	req.V = Version
	line, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("encode %s: %w", req.Action, err)
	}
	line = append(line, '\n')

	c.mu.Lock()
	defer c.mu.Unlock()
	resp, err := c.send(ctx, line)
	var we *writeError
	if errors.As(err, &we) && we.reused {
		// The agent closed an idle connection (it restarted): the request
		// never reached it, so sending it again on a fresh one is safe.
		resp, err = c.send(ctx, line)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Response{}, fmt.Errorf("%s: %w", req.Action, ctxErr)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// The connection's deadline may fire a moment before the
			// context's own timer: the caller still learns it was its
			// deadline.
			timeout := Errorf(CodeTimeout, "%s: the agent did not answer in time", req.Action)
			if _, ok := ctx.Deadline(); ok {
				return Response{}, fmt.Errorf("%w: %w", timeout, context.DeadlineExceeded)
			}
			return Response{}, timeout
		}
		return Response{}, Errorf(CodeUnavailable, "%s: %v", req.Action, err)
	}
	if !resp.OK {
		switch {
		case resp.Error == nil:
			resp.Error = Errorf(CodeInternal, "the agent refused without a reason")
		case resp.Error.Code == CodeUnknownAction && knownVerb(req.Action):
			resp.Error = Errorf(CodeAgentOutdated, "the desktop's agent predates %q, which this fleet's protocol has: stop and start the session to run the current agent (%s)", req.Action, resp.Error.Message)
		}
		return resp, resp.Error
	}
	return resp, nil
}

// writeError is a failure to send a request; reused tells whether the
// connection had served earlier requests.
type writeError struct {
	err    error
	reused bool
}

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// send writes one request line and reads its response, dialling first if
// needed. Any failure drops the connection. c.mu must be held.
func (c *Client) send(ctx context.Context, line []byte) (Response, error) {
	reused := c.conn != nil
	if c.conn == nil {
		conn, err := c.dial(ctx)
		if err != nil {
			return Response{}, fmt.Errorf("dial agent: %w", err)
		}
		c.conn, c.r = conn, bufio.NewReaderSize(conn, 64<<10)
	}
	conn := c.conn
	// A cancelled context unblocks the read by expiring the deadline; the
	// connection is then out of step and is dropped.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Time{})
	}
	var resp Response
	_, err := conn.Write(line)
	if err != nil {
		err = &writeError{err, reused}
	} else {
		resp, err = ReadResponse(c.r)
	}
	if err != nil {
		conn.Close()
		c.conn, c.r = nil, nil
	}
	return resp, err
}

// Close closes the connection, if any. The client can still be used.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.r = nil, nil
	return err
}
