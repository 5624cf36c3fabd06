package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	"atelier/internal/api"
	"atelier/internal/apitype"
)

// answered is one response an API test provoked: its route, status and
// error code ("" for a body that is not the API's JSON error).
type answered struct {
	pattern string
	status  int
	code    string
}

// recorded holds every response the API tests provoke, for TestMain to
// check against the OpenAPI document.
var recorded struct {
	sync.Mutex
	set map[answered]bool
}

// recording serves srv's handler, recording each response's route,
// status and error code.
func recording(srv *api.Server) http.Handler {
	match := http.NewServeMux()
	for _, p := range srv.Patterns() {
		match.Handle(p, http.NotFoundHandler())
	}
	h := srv.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := match.Handler(r)
		rw := &recorder{ResponseWriter: w}
		h.ServeHTTP(rw, r)
		a := answered{pattern: pattern, status: rw.status}
		if rw.status >= 400 {
			var e apitype.Error
			if json.Unmarshal(rw.body.Bytes(), &e) == nil {
				a.code = e.Err.Code
			}
		}
		recorded.Lock()
		if recorded.set == nil {
			recorded.set = map[answered]bool{}
		}
		recorded.set[a] = true
		recorded.Unlock()
	})
}

// recorder keeps the status of a response and the body of an error.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.status >= 400 && r.body.Len() < 64<<10 {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// TestMain runs the tests, then fails if any response they provoked has
// a status or an error code the OpenAPI document does not give its route.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if problems := undocumented(); len(problems) > 0 {
			fmt.Fprintln(os.Stderr, "FAIL: responses the OpenAPI document does not list for their route:")
			for _, p := range problems {
				fmt.Fprintln(os.Stderr, "  "+p)
			}
			code = 1
		}
	}
	os.Exit(code)
}

// undocumented lists the recorded responses the document leaves out.
func undocumented() []string {
	d, err := fetchDoc(api.New(api.Options{}).Handler())
	if err != nil {
		return []string{err.Error()}
	}
	recorded.Lock()
	defer recorded.Unlock()
	var out []string
	for a := range recorded.set {
		if a.pattern == "" {
			// No route: the fallback's 404 and 405.
			if !(a.status == 404 && a.code == apitype.CodeNotFound) && !(a.status == 405 && a.code == apitype.CodeMethod) {
				out = append(out, fmt.Sprintf("no route: %d %q", a.status, a.code))
			}
			continue
		}
		op, ok := d.operation(a.pattern)
		if !ok {
			out = append(out, a.pattern+": not in the document")
			continue
		}
		resp, ok := op.Responses[strconv.Itoa(a.status)]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: status %d", a.pattern, a.status))
		case a.code != "" && !slices.Contains(resp.Codes, a.code):
			out = append(out, fmt.Sprintf("%s: %d %s", a.pattern, a.status, a.code))
		}
	}
	sort.Strings(out)
	return out
}

// document is what the tests read of the OpenAPI document.
type document struct {
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Schemas map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

type operation struct {
	Responses map[string]struct {
		Codes []string `json:"x-error-codes"`
	} `json:"responses"`
}

// operation finds a route pattern's operation.
func (d *document) operation(pattern string) (operation, bool) {
	method, path := splitPattern(pattern)
	op, ok := d.Paths[path][method]
	return op, ok
}

func fetchDoc(h http.Handler) (*document, error) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("GET /openapi.json: %d %s", rec.Code, rec.Body)
	}
	var d document
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		return nil, fmt.Errorf("GET /openapi.json: %w", err)
	}
	return &d, nil
}
