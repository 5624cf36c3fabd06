package api

import (
	"crypto/subtle"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/audit"
)

// serve adapts a handler: an error it returns is written in the API's
// error shape, and an internal one is logged with its detail.
func (s *Server) serve(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		status, code, msg := classify(err)
		if status >= 500 {
			s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		}
		writeErrorDetail(w, status, apitype.ErrorDetail{Code: code, Message: msg, Holder: holderOf(err)})
	})
}

// queryTokenNames are query parameters that carry a credential in common
// APIs; a request with one is refused even when the token is right, so
// tokens never land in logs, histories and Referer headers.
var queryTokenNames = []string{"token", "access_token", "api_token", "apikey", "api_key", "auth", "bearer"}

// auth requires the configured bearer token. Without one configured every
// request passes: the fleet then listens on loopback only (config).
func (s *Server) auth(next handler) handler { return s.authAny(next, s.opts.Token) }

// authAny requires one of the tokens given that are set; with none set
// every request passes.
func (s *Server) authAny(next handler, tokens ...string) handler {
	var wants [][]byte
	for _, t := range tokens {
		if t != "" {
			wants = append(wants, []byte(t))
		}
	}
	matches := func(got string) bool {
		ok := false
		for _, want := range wants {
			ok = subtle.ConstantTimeCompare([]byte(got), want) == 1 || ok
		}
		return ok
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		// Everything a request does is audited under the API's actor, but
		// for a request made in process (the fleet's MCP endpoint), which
		// keeps its own: one from the network carries none.
		if audit.ActorFrom(r.Context()) == "" {
			r = r.WithContext(audit.WithActor(r.Context(), actorAPI))
		}
		if len(wants) == 0 {
			return next(w, via(r))
		}
		q := r.URL.Query()
		for name, vals := range q {
			inQuery := false
			for _, n := range queryTokenNames {
				inQuery = inQuery || strings.EqualFold(name, n)
			}
			for _, v := range vals {
				inQuery = inQuery || matches(v)
			}
			if inQuery {
				return unauthorized(w, "tokens in the query string are refused (they leak into logs and histories); send the header Authorization: Bearer <token>")
			}
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return unauthorized(w, "this fleet needs a token: send the header Authorization: Bearer <ATELIER_API_TOKEN>")
		}
		if !matches(strings.TrimSpace(got)) {
			return unauthorized(w, "wrong token")
		}
		return next(w, via(r))
	}
}

// via audits a request atelier mcp sends (apitype.HeaderVia) as actor
// mcp: its tool calls are the MCP's, like those of /mcp. The header
// grants nothing the token does not.
func via(r *http.Request) *http.Request {
	if r.Header.Get(apitype.HeaderVia) == apitype.ViaMCP && audit.ActorFrom(r.Context()) == actorAPI {
		return r.WithContext(audit.WithActor(r.Context(), audit.ActorMCP))
	}
	return r
}

func unauthorized(w http.ResponseWriter, msg string) error {
	w.Header().Set("WWW-Authenticate", `Bearer realm="atelier"`)
	return &apiError{status: http.StatusUnauthorized, code: apitype.CodeUnauthorized, msg: msg}
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs every request once it is answered. The query is left
// out: it may carry what a client should not have sent.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		endSpan(r, sw.status)
		s.log.InfoContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "bytes", sw.bytes, "took", time.Since(t0))
	})
}

// recover turns a panicking handler into a 500 and a log entry with the
// stack, keeping the server up.
func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			switch v {
			case nil:
				return
			case http.ErrAbortHandler: // the server's own way to drop a response
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, apitype.CodeInternal, "internal error; the fleet's log has the details")
		}()
		next.ServeHTTP(w, r)
	})
}

// fallback answers requests no route matches in the API's error shape
// instead of the mux's plain text, keeping its status and Allow header.
func (s *Server) fallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		h, _ := mux.Handler(r)
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		switch probe.status {
		case http.StatusMethodNotAllowed:
			writeError(w, probe.status, apitype.CodeMethod, r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+probe.header.Get("Allow"))
		case http.StatusNotFound, 0:
			writeError(w, http.StatusNotFound, apitype.CodeNotFound, "no route "+r.Method+" "+r.URL.Path)
		default:
			// The mux redirects paths it cleans; let it.
			mux.ServeHTTP(w, r)
		}
	})
}

// headerProbe records what the mux would answer, writing nothing.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) WriteHeader(code int)        { p.status = code }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
