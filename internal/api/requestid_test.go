package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"atelier/internal/api"
	"atelier/internal/apitype"
)

// lockedBuffer collects log output written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRequestID(t *testing.T) {
	var logs lockedBuffer
	f := newFixtureWith(t, api.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	get := func(id string) string {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url+"/sessions/"+f.id, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if id != "" {
			req.Header.Set(apitype.HeaderRequestID, id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET session: %d", resp.StatusCode)
		}
		return resp.Header.Get(apitype.HeaderRequestID)
	}
	if got := get("client-id_1.2:3"); got != "client-id_1.2:3" {
		t.Errorf("a valid X-Request-Id came back as %q", got)
	}
	gen := get("")
	if !strings.HasPrefix(gen, "req_") || len(gen) < 20 {
		t.Errorf("without X-Request-Id the answer carries %q, want a generated req_ id", gen)
	}
	if other := get(""); other == gen {
		t.Errorf("two requests got the same generated id %q", gen)
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 65), `quote"`, "semi;colon"} {
		if got := get(bad); got == bad || !strings.HasPrefix(got, "req_") {
			t.Errorf("X-Request-Id %q came back as %q, want it replaced by a generated id", bad, got)
		}
	}
	if !strings.Contains(logs.String(), `"request_id":"client-id_1.2:3"`) {
		t.Errorf("no log line carries the request's id; logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"request_id":"`+gen+`"`) {
		t.Errorf("no log line carries the generated id %s; logs:\n%s", gen, logs.String())
	}
}
