package fleettest_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/fleettest"
)

// span is what the test needs of one exported span.
type span struct {
	name, id, parent, trace string
	attrs                   map[string]string
}

// otlpReceiver is an OTLP/HTTP traces endpoint: it decodes the protobuf
// export requests the fleet's exporter sends and keeps their spans.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []span
}

func (rc *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces in protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(raw, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := span{name: s.GetName(), id: fmt.Sprintf("%x", s.GetSpanId()), parent: fmt.Sprintf("%x", s.GetParentSpanId()),
					trace: fmt.Sprintf("%x", s.GetTraceId()), attrs: map[string]string{}}
				for _, a := range s.GetAttributes() {
					sp.attrs[a.GetKey()] = a.GetValue().GetStringValue()
				}
				rc.spans = append(rc.spans, sp)
			}
		}
	}
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Write(out)
}

// chain waits until some span is named names[0] with a child named
// names[1], and so on, each match's attributes including those given for
// it, and returns the chain.
func (rc *otlpReceiver) chain(t *testing.T, ctx context.Context, first map[string]string, names ...string) []span {
	t.Helper()
	for {
		rc.mu.Lock()
		spans := append([]span(nil), rc.spans...)
		rc.mu.Unlock()
		var walk func(parent *span, i int) []span
		walk = func(parent *span, i int) []span {
			if i == len(names) {
				return []span{}
			}
		next:
			for _, s := range spans {
				if s.name != names[i] || (parent != nil && (s.parent != parent.id || s.trace != parent.trace)) {
					continue
				}
				if i == 0 {
					for k, v := range first {
						if s.attrs[k] != v {
							continue next
						}
					}
				}
				if rest := walk(&s, i+1); rest != nil {
					return append([]span{s}, rest...)
				}
			}
			return nil
		}
		if c := walk(nil, 0); c != nil {
			return c
		}
		select {
		case <-ctx.Done():
			var seen []string
			for _, s := range spans {
				seen = append(seen, s.name)
			}
			t.Fatalf("no span chain %s; spans received: %s", strings.Join(names, " → "), strings.Join(seen, ", "))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestTracesReachAnOTLPReceiver turns traces on with the standard
// environment and checks that a real action on a real desktop, and a
// scripted task, reach an OTLP/HTTP receiver as parent/child spans: the
// request, the input pipeline, the agent round trip; the task, its
// steps, their model calls and actions.
func TestTracesReachAnOTLPReceiver(t *testing.T) {
	rc := &otlpReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50") // milliseconds: export soon
	t.Setenv("OTEL_SERVICE_NAME", "atelier-fleettest")
	f := fleettest.New(t, fleettest.Options{Token: token})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "traced"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const reqID = "traced-move-1"
	resp, body := send(t, ctx, http.MethodPost, f.URL+"/sessions/"+s.ID+"/actions", token, reqID,
		map[string]any{"action": "mouse_move", "coordinate": []int{321, 123}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("act: %d %s", resp.StatusCode, body)
	}
	c := rc.chain(t, ctx, map[string]string{"atelier.request_id": reqID},
		"POST /sessions/{id}/actions", "sessions.Act", "agent mouse_move")
	if c[0].parent != "" {
		t.Errorf("the request's span has parent %s, want a root", c[0].parent)
	}
	if c[1].attrs["atelier.session"] != s.ID {
		t.Errorf("sessions.Act names session %q, want %s", c[1].attrs["atelier.session"], s.ID)
	}

	script := []agentapi.Request{{Action: agentapi.MouseMove, Coordinate: &agentapi.Point{X: 70, Y: 80}}}
	spec := taskSpec("move the mouse", script...)
	spec.Backend = "scripted"
	sub, err := f.Client.SubmitTask(ctx, s.ID, spec)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	waitTasksDone(t, ctx, f, s.ID)
	tc := rc.chain(t, ctx, nil, "POST /sessions/{id}/task", "task", "task.step", "sessions.Act", "agent mouse_move")
	if tc[1].attrs["atelier.task"] != sub.TaskID {
		t.Errorf("the task span names task %q, want %s", tc[1].attrs["atelier.task"], sub.TaskID)
	}
	rc.chain(t, ctx, map[string]string{"atelier.task": sub.TaskID}, "task", "task.step", "model.call")
}
