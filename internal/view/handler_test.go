package view_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"atelier/internal/api"
	"atelier/internal/view"
)

func newReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }

// countingDialer refuses every dial and counts them.
type countingDialer struct{ n atomic.Int64 }

func (d *countingDialer) DialVNC(context.Context, string) (net.Conn, error) {
	d.n.Add(1)
	return nil, errors.New("no desktop here")
}

func wsHeaders() http.Header {
	return http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
}

// serve runs one request through h.
func serve(h http.Handler, method, target string, headers ...http.Header) *httptest.ResponseRecorder {
	return serveBody(h, method, target, nil, headers...)
}

// serveBody runs one request with a body through h.
func serveBody(h http.Handler, method, target string, body io.Reader, headers ...http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for _, hs := range headers {
		for k, v := range hs {
			req.Header[k] = v
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// throughAPI serves h's routes as the fleet does: through the API, which
// writes their refusals.
func throughAPI(h *view.Handler) http.Handler {
	return api.New(api.Options{View: h}).Handler()
}

func newMux(t testing.TB, opts view.Options) (http.Handler, *view.Handler, *view.Tokens) {
	t.Helper()
	if opts.Tokens == nil {
		tk, _ := newTokens(t)
		opts.Tokens = tk
	}
	if opts.Dialer == nil {
		opts.Dialer = &countingDialer{}
	}
	h, err := view.NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return throughAPI(h), h, opts.Tokens
}

func TestEmbedPage(t *testing.T) {
	for _, tc := range []struct {
		name, ancestors, wantAncestors string
		mode                           view.Mode
	}{
		{"view token, default ancestors", "", "frame-ancestors *", view.ModeView},
		{"control token, configured ancestors", "https://app.example 'self'", "frame-ancestors https://app.example 'self'", view.ModeControl},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux, _, tk := newMux(t, view.Options{FrameAncestors: tc.ancestors})
			rec := serve(mux, http.MethodGet, "/sessions/s-1/embed?token="+mint(t, tk, "s-1", tc.mode, time.Minute))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			h := rec.Header()
			for k, want := range map[string]string{
				"Referrer-Policy": "no-referrer",
				"Cache-Control":   "no-store",
				"Content-Type":    "text/html; charset=utf-8",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if csp := h.Get("Content-Security-Policy"); !strings.HasSuffix(csp, tc.wantAncestors) {
				t.Errorf("CSP %q does not end with %q", csp, tc.wantAncestors)
			}
			if h.Get("X-Frame-Options") != "" {
				t.Errorf("X-Frame-Options %q set: it would stop embedding", h.Get("X-Frame-Options"))
			}
			if body := rec.Body.String(); !strings.Contains(body, `data-mode="`+string(tc.mode)+`"`) {
				t.Errorf("page does not carry mode %s:\n%s", tc.mode, body)
			}
		})
	}
}

func TestEmbedPageRefused(t *testing.T) {
	mux, _, tk := newMux(t, view.Options{})
	now := time.Now()
	tk.Now = func() time.Time { return now }
	expired := mint(t, tk, "s-1", view.ModeView, time.Second)
	now = now.Add(time.Hour)
	for _, tc := range []struct {
		name, target, accept, code string
	}{
		{"missing", "/sessions/s-1/embed", "", "token_missing"},
		{"garbage", "/sessions/s-1/embed?token=abc", "", "token_invalid"},
		{"expired", "/sessions/s-1/embed?token=" + expired, "", "token_expired"},
		{"other session", "/sessions/s-2/embed?token=" + mint(t, tk, "s-1", view.ModeView, time.Minute), "", "token_invalid"},
		{"browser gets a page", "/sessions/s-1/embed", "text/html,*/*", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(mux, http.MethodGet, tc.target, http.Header{"Accept": {tc.accept}})
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status %d, want 403", rec.Code)
			}
			if tc.code == "" {
				if !strings.Contains(rec.Body.String(), "<p>this link has no embed token") {
					t.Errorf("page body %s", rec.Body)
				}
				return
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != tc.code || body.Error.Message == "" {
				t.Errorf("body %s (%v), want code %s", rec.Body, err, tc.code)
			}
		})
	}
}

func TestAssets(t *testing.T) {
	mux, _, _ := newMux(t, view.Options{})
	for _, tc := range []struct {
		path, contentType string
		status            int
	}{
		{"/view/assets/viewer.js", "text/javascript; charset=utf-8", 200},
		{"/view/assets/viewer.css", "text/css; charset=utf-8", 200},
		{"/view/novnc/core/rfb.js", "text/javascript; charset=utf-8", 200},
		{"/view/novnc/vendor/pako/lib/zlib/inflate.js", "text/javascript; charset=utf-8", 200},
		{"/view/novnc/core/", "", 404},                       // no listings
		{"/view/novnc/vnc.html", "", 404},                    // only the modules
		{"/view/assets/embed.html", "", 200},                 // harmless template source
		{"/view/novnc/core/../../../../etc/passwd", "", 307}, // the mux redirects to the clean path, outside /view/
		{"/view/novnc/core/..%2f..%2f..%2f..%2fetc/passwd", "", 404},
		{"/view/assets/missing.js", "", 404},
	} {
		rec := serve(mux, http.MethodGet, tc.path)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, rec.Code, tc.status)
			continue
		}
		if tc.contentType != "" && rec.Header().Get("Content-Type") != tc.contentType {
			t.Errorf("%s: content type %q, want %q", tc.path, rec.Header().Get("Content-Type"), tc.contentType)
		}
	}
}

func TestNewHandlerRefusesBadOptions(t *testing.T) {
	tk, _ := newTokens(t)
	d := &countingDialer{}
	for name, opts := range map[string]view.Options{
		"no dialer":          {Tokens: tk},
		"no tokens":          {Dialer: d},
		"no noVNC":           {Dialer: d, Tokens: tk, NoVNCDir: t.TempDir()},
		"ancestors with ;":   {Dialer: d, Tokens: tk, FrameAncestors: "* ; script-src *"},
		"public URL no host": {Dialer: d, Tokens: tk, PublicURL: "fleet.example"},
		"ttl too long":       {Dialer: d, Tokens: tk, DefaultTTL: view.MaxTTL + 1},
	} {
		if _, err := view.NewHandler(opts); err == nil {
			t.Errorf("%s: NewHandler accepted %+v", name, opts)
		}
	}
}
