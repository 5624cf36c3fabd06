package api

import (
	"errors"
	"io"
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
// body must arrive within Options.ReadTimeout and a keep-alive connection
// idle for Options.IdleTimeout is closed, with or without a token. Once a
// request is read its handler may take as long as it needs (a wait for
// ready, a stream, a live view): the read deadline is lifted then (see
// lift), and no write deadline is set.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: min(maxHeaderTimeout, s.opts.ReadTimeout),
		ReadTimeout:       s.opts.ReadTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// lift sets the headers every answer carries by default (JSON is never
// sniffed as something else nor cached; the view's assets override the
// latter) and lifts the connection's read deadline once the request's
// body has been read: past it, the server's check for a client that left
// would otherwise cancel a long request's context at the deadline.
func (s *Server) lift(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		rc := http.NewResponseController(w)
		liftNow := func() { rc.SetReadDeadline(time.Time{}) }
		if r.Body == nil || r.Body == http.NoBody {
			liftNow()
		} else {
			r.Body = &liftAtEOF{ReadCloser: r.Body, lift: liftNow}
		}
		next.ServeHTTP(w, r)
	})
}

// liftAtEOF calls lift once its body has been read to the end.
type liftAtEOF struct {
	io.ReadCloser
	lift func()
	once sync.Once
}

func (b *liftAtEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(b.lift)
	}
	return n, err
}

// streams counts the open streams of each credential.
type streams struct {
	max  int // 0: no limit
	mu   sync.Mutex
	open map[string]int
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
