package metrics_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v4"

	"atelier/internal/budget"
	"atelier/internal/egress"
	"atelier/internal/metrics"
	modelpkg "atelier/internal/model"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
	"atelier/internal/tasks"
)

// exported returns the name of every family a fleet's metrics export once
// each of their sources has reported something, with its type.
func exported(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	m := metrics.New()
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sm, err := sessions.Open(ctx, sessions.Options{Runtime: sessionstest.New(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	b, err := budget.New(ctx, budget.Options{Store: st, CapUSD: 5})
	if err != nil {
		t.Fatal(err)
	}
	m.Watch(sm, b)
	m.WatchStreams(metrics.Streams{Views: func() int { return 0 }, SSE: func() int { return 0 }, MCPSessions: func() int { return 0 }})
	if _, err := sm.Create(ctx, sessions.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.ObserveAction("left_click", "ok", time.Millisecond)
	m.ObserveScreenshot("png", 1000, time.Millisecond)
	m.ObserveRestarts("local", "", 1)
	m.ObserveRestarts("local", "wayvnc", 1)
	m.ObserveModelCall("holo", "holo3", "ok", time.Second)
	m.RecordTaskStart(ctx, tasks.Task{ID: "t_1", Backend: "holo", CreatedAt: time.Now()})
	m.RecordTaskEvent(ctx, "s", "t_1", tasks.Event{Type: tasks.EventStep, Usage: &modelpkg.Usage{Model: "holo3", InputTokens: 1}})
	m.RecordTaskEvent(ctx, "s", "t_1", tasks.Event{Type: tasks.EventEnd, Status: tasks.StatusDone, Time: time.Now()})
	m.ObserveAuditAppend(time.Millisecond, nil)
	m.SetAuditSync("always")
	m.RecordEgress("s", egress.Record{Decision: egress.Allowed, BytesUp: 1, BytesDown: 2})
	names := map[string]dto.MetricType{}
	for name, fam := range scrapeHandler(t, m) {
		names[name] = fam.GetType()
	}
	return names
}

// metricName finds the metric names in a PromQL expression (those of the
// fleet and the Go and process collectors).
var metricName = regexp.MustCompile(`\b(?:atelier|go|process)_[a-z0-9_]+\b`)

// missing returns the metrics expr names that the fleet does not export
// (or a note that it names none); a histogram's series (_bucket, _sum,
// _count) count as its.
func missing(expr string, names map[string]dto.MetricType) []string {
	found := metricName.FindAllString(expr, -1)
	if len(found) == 0 {
		return []string{"no metric of the fleet"}
	}
	var out []string
	for _, n := range found {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && names[b] == dto.MetricType_HISTOGRAM {
				base = b
			}
		}
		if _, ok := names[base]; !ok {
			out = append(out, n)
		}
	}
	return out
}

func checkNames(t *testing.T, where, expr string, names map[string]dto.MetricType) {
	t.Helper()
	if m := missing(expr, names); len(m) > 0 {
		t.Errorf("%s: %q names %v, which the fleet does not export", where, expr, m)
	}
}

// TestAlertRulesNameExportedMetrics parses the example alert rules as
// Prometheus reads them and checks every metric they name is exported.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	names := exported(t)
	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true) // a misspelt key is an error, as Prometheus makes it
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var alerts []string
	for _, g := range file.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %+v: want a name and rules", g)
		}
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q: want alert, expr, a severity label and a summary", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			checkNames(t, "alert "+r.Alert, r.Expr, names)
		}
	}
	// The three: spend near the cap, desktops restarting, action latency.
	for _, want := range []string{"AtelierSpendNearCap", "AtelierDesktopsRestarting", "AtelierActionLatencyHigh"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yml lacks %s", want)
		}
	}
}

// TestDashboardNamesExportedMetrics checks every query of the Grafana
// dashboard names metrics the fleet exports.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	names := exported(t)
	raw, err := os.ReadFile("../../deploy/grafana/atelier.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("atelier.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) < 10 {
		t.Fatalf("dashboard %q (%s) has %d panels: want a title, a uid and the fleet's panels", dash.Title, dash.UID, len(dash.Panels))
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkNames(t, "panel "+p.Title, tg.Expr, names)
			for _, n := range metricName.FindAllString(tg.Expr, -1) {
				used[n] = true
			}
		}
	}
	// And the other way: each family of the fleet's own is on the board.
	for n := range names {
		if !strings.HasPrefix(n, "atelier_") {
			continue
		}
		if !used[n] && !used[n+"_bucket"] && !used[n+"_sum"] && !used[n+"_count"] {
			t.Errorf("the dashboard shows nothing of %s", n)
		}
	}
}

// TestMissingCatchesAMisspeltMetric keeps the two tests above able to fail.
func TestMissingCatchesAMisspeltMetric(t *testing.T) {
	names := map[string]dto.MetricType{"atelier_actions_total": dto.MetricType_COUNTER, "atelier_action_duration_seconds": dto.MetricType_HISTOGRAM}
	for expr, want := range map[string]int{
		"rate(atelier_actions_total[5m])":                  0,
		"rate(atelier_action_duration_seconds_bucket[5m])": 0,
		"rate(atelier_action_total[5m])":                   1,
		"rate(atelier_actions_total_bucket[5m])":           1,
		"sum(up)":                                          1,
	} {
		if got := missing(expr, names); len(got) != want {
			t.Errorf("%q: missing %v, want %d", expr, got, want)
		}
	}
}
