package api

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"atelier/internal/apitype"
)

// Default timeouts of HTTPServer.
const (
	DefaultReadTimeout = 30 * time.Second
	DefaultIdleTimeout = 2 * time.Minute
	// maxHeaderTimeout bounds reading a request's headers.
	maxHeaderTimeout = 10 * time.Second
	// retryStreams is the Retry-After of a refused stream: streams end
	// when their client leaves, which happens all the time.
	retryStreams = "5"
)

// HTTPServer returns the server to serve s with: a request's headers and
// body must arrive within Options.ReadTimeout (a slow body is cut with 408)
// and a keep-alive connection idle for Options.IdleTimeout is closed, with
// or without a token. Once a request is read its handler may take as long
// as it needs (a wait for ready, an SSE stream, an audit follow, a live
// view): net/http lifts the read deadline when the body has been read,
// and no write deadline is set, so nothing on a streaming route has to be
// lifted. Waiting handlers bound themselves (maxWait).
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: min(maxHeaderTimeout, s.opts.ReadTimeout),
		ReadTimeout:       s.opts.ReadTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// secureHeaders sets the headers every answer carries unless its handler
// says otherwise: JSON is neither sniffed as something else nor cached
// (the view's static assets override the latter).
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// streams counts the open streams of each credential.
type streams struct {
	max  int // 0: no limit
	mu   sync.Mutex
	open map[string]int
}

// count returns how many streams are open, over all keys.
func (st *streams) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, k := range st.open {
		n += k
	}
	return n
}

// acquire takes one of key's stream places; release gives it back.
func (st *streams) acquire(key string) (release func(), err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.max > 0 && st.open[key] >= st.max {
		return nil, &apiError{status: http.StatusTooManyRequests, code: apitype.CodeTooManyStreams,
			msg: "this token holds " + itoa(int64(st.open[key])) + " open streams, its limit; close one and retry"}
	}
	st.open[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			st.mu.Lock()
			defer st.mu.Unlock()
			if st.open[key]--; st.open[key] == 0 {
				delete(st.open, key)
			}
		})
	}, nil
}

// stream holds one of the request's credential's stream places while h
// runs (task SSE, audit follow). The fleet has one API token, so its
// streams are counted together; without a token, every caller is the
// same anonymous one.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	release, err = s.streams.acquire(actorAPI)
	if err != nil {
		w.Header().Set("Retry-After", retryStreams)
	}
	return release, err
}

// streamed is h holding a stream place while it runs.
func (s *Server) streamed(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		release, err := s.stream(w, r)
		if err != nil {
			return err
		}
		defer release()
		return h(w, r)
	}
}
