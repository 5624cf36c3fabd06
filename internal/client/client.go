// Package client is the typed Go client of the fleet's HTTP API, used by the
// CLI and by tests.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
)

// Client talks to one fleet. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
	via   string // sent as apitype.HeaderVia, if set
}

// New returns a client of the fleet at baseURL ("http://127.0.0.1:8090"),
// sending token as a bearer token if set. hc nil means http.DefaultClient.
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// Via returns a copy of c whose requests say they come through the
// program name (apitype.HeaderVia).
func (c *Client) Via(name string) *Client {
	d := *c
	d.via = name
	return &d
}

// BaseURL returns the fleet's base URL.
func (c *Client) BaseURL() string { return c.base }

// Error is an error answer of the fleet.
type Error struct {
	Status  int
	Code    string
	Message string
	// Holder is who holds the session's control, on a control_held refusal.
	Holder *apitype.Holder
}

// Error reports the message, the status and the code.
func (e *Error) Error() string { return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code) }

// do sends a request and returns the response if its status is want;
// otherwise the fleet's error. The caller closes the body.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, header http.Header, want int) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.via != "" {
		req.Header.Set(apitype.HeaderVia, c.via)
	}
	if s, ok := body.(*sized); ok && s.n >= 0 {
		req.ContentLength = s.n
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode == want {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e apitype.Error
	if json.Unmarshal(b, &e) != nil || e.Err.Code == "" {
		return nil, &Error{Status: resp.StatusCode, Code: "http", Message: fmt.Sprintf("%s %s: %s", method, path, strings.TrimSpace(string(b)))}
	}
	return nil, &Error{Status: resp.StatusCode, Code: e.Err.Code, Message: e.Err.Message, Holder: e.Err.Holder}
}

// call sends in (if not nil) as JSON and decodes the answer into out (if
// not nil).
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any, want int) error {
	return c.callHeader(ctx, method, path, q, in, nil, out, want)
}

// callHeader is call with extra request headers.
func (c *Client) callHeader(ctx context.Context, method, path string, q url.Values, in any, header http.Header, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, q, body, header, want)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return decodeJSON(resp, out)
}

// decodeJSON decodes a successful answer's JSON body into out.
func decodeJSON(resp *http.Response, out any) error {
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

// Health reports the fleet's liveness and version.
func (c *Client) Health(ctx context.Context) (apitype.Health, error) {
	var h apitype.Health
	return h, c.call(ctx, http.MethodGet, "/health", nil, nil, &h, http.StatusOK)
}

// waitQuery asks the fleet to wait for ready for at most timeout (no wait
// when 0).
func waitQuery(timeout time.Duration) url.Values {
	if timeout <= 0 {
		return nil
	}
	return url.Values{"wait": {"ready"}, "timeout": {timeout.String()}}
}

// CreateSession creates a session. With wait > 0 the fleet answers once
// the desktop is ready, or with a not_ready error after wait.
func (c *Client) CreateSession(ctx context.Context, req apitype.CreateSession, wait time.Duration) (apitype.Session, error) {
	var s apitype.Session
	return s, c.call(ctx, http.MethodPost, "/sessions", waitQuery(wait), req, &s, http.StatusCreated)
}

// Sessions lists every session.
func (c *Client) Sessions(ctx context.Context) ([]apitype.Session, error) {
	var l apitype.SessionList
	return l.Sessions, c.call(ctx, http.MethodGet, "/sessions", nil, nil, &l, http.StatusOK)
}

// Session returns one session. With wait > 0 the fleet answers once the
// desktop is ready, or with a not_ready error after wait.
func (c *Client) Session(ctx context.Context, id string, wait time.Duration) (apitype.Session, error) {
	var s apitype.Session
	return s, c.call(ctx, http.MethodGet, "/sessions/"+url.PathEscape(id), waitQuery(wait), nil, &s, http.StatusOK)
}

// StopSession stops a session's desktop, keeping its home.
func (c *Client) StopSession(ctx context.Context, id string) (apitype.Session, error) {
	var s apitype.Session
	return s, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(id)+"/stop", nil, nil, &s, http.StatusOK)
}

// StartSession starts a stopped session, waiting for ready if wait > 0.
func (c *Client) StartSession(ctx context.Context, id string, wait time.Duration) (apitype.Session, error) {
	var s apitype.Session
	return s, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(id)+"/start", waitQuery(wait), nil, &s, http.StatusOK)
}

// DeleteSession removes a session; its home too if purge.
func (c *Client) DeleteSession(ctx context.Context, id string, purge bool) error {
	q := url.Values{"purge": {strconv.FormatBool(purge)}}
	return c.call(ctx, http.MethodDelete, "/sessions/"+url.PathEscape(id), q, nil, nil, http.StatusNoContent)
}

// SetTheme changes a session's theme, live.
func (c *Client) SetTheme(ctx context.Context, id, theme string) (apitype.Session, error) {
	var s apitype.Session
	return s, c.call(ctx, http.MethodPut, "/sessions/"+url.PathEscape(id)+"/theme", nil, apitype.SetTheme{Theme: theme}, &s, http.StatusOK)
}

// SetResolution changes a session's output size (WIDTHxHEIGHT), live.
func (c *Client) SetResolution(ctx context.Context, id, resolution string) (apitype.Session, error) {
	var s apitype.Session
	return s, c.call(ctx, http.MethodPut, "/sessions/"+url.PathEscape(id)+"/resolution", nil, apitype.SetResolution{Resolution: resolution}, &s, http.StatusOK)
}

// ScreenshotOptions shape a screenshot; zero values are PNG at scale 1.
type ScreenshotOptions struct {
	Format  string // "png" or "jpeg"
	Scale   float64
	Quality int
	Region  *agentapi.Region // nil: the whole desktop
}

// Screenshot returns a screenshot of a session's desktop, with its
// geometry.
func (c *Client) Screenshot(ctx context.Context, id string, o ScreenshotOptions) (apitype.Image, error) {
	q := url.Values{}
	if o.Format != "" {
		q.Set("format", o.Format)
	}
	if o.Scale != 0 {
		q.Set("scale", strconv.FormatFloat(o.Scale, 'f', -1, 64))
	}
	if o.Quality != 0 {
		q.Set("quality", strconv.Itoa(o.Quality))
	}
	if o.Region != nil {
		q.Set("region", o.Region.String())
	}
	resp, err := c.do(ctx, http.MethodGet, "/sessions/"+url.PathEscape(id)+"/screenshot", q, nil, nil, http.StatusOK)
	if err != nil {
		return apitype.Image{}, err
	}
	defer resp.Body.Close()
	im := apitype.Image{Format: strings.TrimPrefix(resp.Header.Get("Content-Type"), "image/")}
	im.Width, _ = strconv.Atoi(resp.Header.Get(apitype.HeaderWidth))
	im.Height, _ = strconv.Atoi(resp.Header.Get(apitype.HeaderHeight))
	im.Scale, _ = strconv.ParseFloat(resp.Header.Get(apitype.HeaderScale), 64)
	if im.Data, err = io.ReadAll(resp.Body); err != nil {
		return apitype.Image{}, fmt.Errorf("screenshot of %s: %w", id, err)
	}
	return im, nil
}

// Act runs actions on a session's desktop. body is anything that marshals
// to an actions body: one action, a list, or an apitype.Actions; raw JSON
// goes as it is as a json.RawMessage.
func (c *Client) Act(ctx context.Context, id string, body any) (apitype.ActionsResult, error) {
	return c.ActWithLease(ctx, id, "", body)
}

// ActWithLease is Act naming the caller's control lease (from TakeOver),
// which input actions need while a person holds the session.
func (c *Client) ActWithLease(ctx context.Context, id, lease string, body any) (apitype.ActionsResult, error) {
	var h http.Header
	if lease != "" {
		h = http.Header{apitype.HeaderLease: {lease}}
	}
	var r apitype.ActionsResult
	return r, c.callHeader(ctx, http.MethodPost, "/sessions/"+url.PathEscape(id)+"/actions", nil, body, h, &r, http.StatusOK)
}

// Budget reports today's spend and the daily cap.
func (c *Client) Budget(ctx context.Context) (apitype.Budget, error) {
	var b apitype.Budget
	return b, c.call(ctx, http.MethodGet, "/budget", nil, nil, &b, http.StatusOK)
}

// SessionEvents streams the fleet's session lifecycle events to each as
// they happen, until ctx ends, the stream ends (the fleet closed, or this
// reader fell behind) or each returns an error. opened, if set, is called
// once the stream is open: no event after that is missed.
func (c *Client) SessionEvents(ctx context.Context, opened func(), each func(apitype.SessionEvent) error) error {
	resp, err := c.do(ctx, http.MethodGet, "/events", nil, nil, http.Header{"Accept": {"application/jsonl"}}, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if opened != nil {
		opened()
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue // a keepalive
		}
		var ev apitype.SessionEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("session event %q: %w", sc.Bytes(), err)
		}
		if err := each(ev); err != nil {
			return err
		}
	}
	return sc.Err()
}
