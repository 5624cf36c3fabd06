package fleet

import (
	"io"
	"net/http"
	"sync"

	"atelier/internal/audit"
)

// inProcess is an http.RoundTripper that serves requests with a handler in
// this process: the fleet's MCP endpoint reaches the fleet's own API with
// it, through the same middleware (auth, audit, limits) as any client, but
// with no socket, no listen address to know and no second hop to secure.
// The body streams through a pipe, so streamed answers (task events)
// arrive as they are written.
type inProcess struct {
	handler func() http.Handler
	actor   string // what the API audits the requests under
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(audit.WithActor(req.Context(), t.actor))
	if req.Body == nil {
		req.Body = http.NoBody // as a server's request has
	}
	req.RemoteAddr = "in-process"
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, body: pw, started: make(chan struct{})}
	// The handler's goroutine ends when the handler returns; a reader that
	// stops reading closes the pipe, which fails the handler's writes, and
	// cancels req's context, which the API's streams watch.
	go func() {
		defer func() {
			w.WriteHeader(http.StatusOK) // a handler that wrote nothing
			pw.Close()
		}()
		t.handler().ServeHTTP(w, req)
	}()
	select {
	case <-w.started:
	case <-req.Context().Done():
		pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	return &http.Response{Status: http.StatusText(w.status), StatusCode: w.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, Body: pr, ContentLength: -1, Request: req}, nil
}

// pipeWriter is the handler's side of an inProcess response.
type pipeWriter struct {
	header  http.Header
	body    *io.PipeWriter
	once    sync.Once
	started chan struct{}
	status  int
	sent    http.Header // the header as it was when the status was written
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) {
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.started)
	})
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// Flush lets streaming handlers flush: a pipe has nothing buffered.
func (w *pipeWriter) Flush() {}
