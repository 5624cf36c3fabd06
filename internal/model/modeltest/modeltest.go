// Package modeltest provides fake model servers for tests: httptest servers
// that speak the wire formats of the real APIs (OpenAI-compatible chat
// completions as vLLM serves them, Anthropic Messages) and replay a
// transcript of replies, recording every request they receive so tests can
// assert what the model was sent.
//
// A transcript is JSON: {"steps": [...]}, one step per request, in order.
// A step is either a reply or a failure: {"status": 529, "error": "…"}, or
// {"hang": true} for a server that never answers. Replies are compact (see
// OpenAIStep and AnthropicStep); the server wraps them in the full response
// envelope with ids, usage and headers as the real API sends them.
package modeltest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Request is one request a fake server received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// Server is a running fake.
type Server struct {
	URL string

	mu   sync.Mutex
	reqs []Request
	next int
	done chan struct{}
}

// Requests returns what the server has received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// record stores r and returns the index of the step it should get.
func (s *Server) record(r *http.Request) (Request, int) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	json.Unmarshal(raw, &body)
	req := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Raw: raw}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, req)
	n := s.next
	s.next++
	return req, n
}

// hang blocks until the client gives up or the test ends.
func (s *Server) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.done:
	}
}

func start(t testing.TB, h func(s *Server, w http.ResponseWriter, r *http.Request)) *Server {
	t.Helper()
	s := &Server{done: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(s, w, r) }))
	t.Cleanup(func() {
		close(s.done)
		srv.Close()
	})
	s.URL = srv.URL
	return s
}

func loadTranscript[T any](t testing.TB, path string) []T {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("transcript: %v", err)
	}
	var tr struct {
		Steps []T `json:"steps"`
	}
	if err := json.Unmarshal(raw, &tr); err != nil {
		t.Fatalf("transcript %s: %v", path, err)
	}
	return tr.Steps
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Transcript returns the path of a transcript shipped in this package's
// testdata: holo_open_terminal.json and anthropic_open_terminal.json, and
// holo_ask_for_help.json and anthropic_ask_for_help.json, where the model
// asks a person for the commit message (step 3), then commits with the
// answer and finishes; holo31_tool_calls.json is Holo3.1 answering with
// native function calls, its second call with an argument the tool does
// not have.
func Transcript(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", name)
}
