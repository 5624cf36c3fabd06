package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"atelier/internal/metrics"
	modelpkg "atelier/internal/model"
	"atelier/internal/tasks"
)

// scrapeHandler reads m's handler through the Prometheus text parser.
func scrapeHandler(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// TestTaskSpendByBackendAndModel feeds a task's events as the task loop
// does and reads the spend and tokens back from a scrape.
func TestTaskSpendByBackendAndModel(t *testing.T) {
	m := metrics.New()
	ctx := t.Context()
	m.RecordTaskStart(ctx, tasks.Task{ID: "t_1", Backend: "holo"})
	u := &modelpkg.Usage{Model: "holo3", InputTokens: 1000, OutputTokens: 50, CacheReadTokens: 7}
	for range 2 {
		m.RecordTaskEvent(ctx, "sess_1", "t_1", tasks.Event{Type: tasks.EventStep, Usage: u, StepUSD: 0.25})
	}
	m.RecordTaskEvent(ctx, "sess_1", "t_1", tasks.Event{Type: tasks.EventEnd, Status: tasks.StatusDone})
	m.ObserveAction("left_click", "ok", 20*time.Millisecond)

	fams := scrapeHandler(t, m)
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
	next:
		for _, s := range fams[name].GetMetric() {
			for _, lp := range s.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if s.GetHistogram() != nil {
				return s.GetHistogram().GetSampleSum()
			}
			return s.GetCounter().GetValue()
		}
		t.Fatalf("no %s%v in the scrape", name, labels)
		return 0
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"atelier_model_cost_usd_total", map[string]string{"backend": "holo", "model": "holo3"}, 0.5},
		{"atelier_model_tokens_total", map[string]string{"backend": "holo", "model": "holo3", "kind": "input"}, 2000},
		{"atelier_model_tokens_total", map[string]string{"backend": "holo", "model": "holo3", "kind": "output"}, 100},
		{"atelier_model_tokens_total", map[string]string{"backend": "holo", "model": "holo3", "kind": "cache_read"}, 14},
		{"atelier_task_steps_total", nil, 2},
		{"atelier_tasks_finished_total", map[string]string{"status": "done"}, 1},
		{"atelier_action_duration_seconds", map[string]string{"verb": "left_click", "outcome": "ok"}, 0.02},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// BenchmarkObserveAction is what the metrics add to each action of the
// input pipeline; compare with an action's own latency (make bench: a
// mouse_move takes milliseconds) for the share.
func BenchmarkObserveAction(b *testing.B) {
	m := metrics.New()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveAction("mouse_move", "ok", 3*time.Millisecond)
		}
	})
}
