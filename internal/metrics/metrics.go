// Package metrics is the fleet's Prometheus metrics: one registry of the
// fleet's own (not the process-global one) holding the Go and process
// collectors, counters and histograms fed by the input pipeline, the task
// loop, the audit log and the egress gateway, and gauges read at scrape
// time from the sessions, the budget and the open streams. It is the one
// package that imports client_golang; the domain packages see it through
// their own small interfaces (sessions.Observer, tasks.Recorder,
// tasks.Observer, egress.Recorder, audit.Options.OnAppend).
//
// Names follow the Prometheus conventions: base units (seconds, bytes) in
// the name, _total on counters; money is in US dollars (usd).
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"atelier/internal/budget"
	"atelier/internal/egress"
	"atelier/internal/sessions"
	"atelier/internal/tasks"
)

const namespace = "atelier"

// scrapeTimeout bounds what one scrape asks the sessions and the budget.
const scrapeTimeout = 5 * time.Second

// Buckets, in seconds and bytes.
var (
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	modelBuckets   = []float64{.1, .25, .5, 1, 2, 4, 8, 15, 30, 60, 120}
	taskBuckets    = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}
	auditBuckets   = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}
	bytesBuckets   = prometheus.ExponentialBuckets(16<<10, 2, 10) // 16 KiB … 8 MiB
)

// Metrics is a fleet's metrics. It is safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	actions     *prometheus.CounterVec
	actionDur   *prometheus.HistogramVec
	shotDur     *prometheus.HistogramVec
	shotBytes   *prometheus.HistogramVec
	restarts    *prometheus.CounterVec
	compRestart *prometheus.CounterVec
	started     *prometheus.CounterVec
	steps       *prometheus.CounterVec
	finished    *prometheus.CounterVec
	taskDur     *prometheus.HistogramVec
	modelDur    *prometheus.HistogramVec
	cost        *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	auditDur    *prometheus.HistogramVec
	auditSync   *prometheus.GaugeVec
	egress      *prometheus.CounterVec
	egressBytes *prometheus.CounterVec

	mu    sync.Mutex
	tasks map[string]taskInfo // running task id → what its events' labels need
}

type taskInfo struct {
	backend string
	started time.Time
}

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

func histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
}

// New returns the fleet's metrics with the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		actions: counter("actions_total",
			"Actions sent through the input pipeline, by verb and outcome (ok, not_run or the protocol's error code).", "verb", "outcome"),
		actionDur: histogram("action_duration_seconds",
			"How long the desktop's agent took over an action, by verb and outcome.", latencyBuckets, "verb", "outcome"),
		shotDur: histogram("screenshot_duration_seconds",
			"How long a screenshot took the desktop's agent, by format (API, observations, task steps).", latencyBuckets, "format"),
		shotBytes: histogram("screenshot_bytes",
			"Size of the screenshots taken, by format.", bytesBuckets, "format"),
		restarts: counter("desktop_restarts_total",
			"Whole desktops started again after they stopped while they should run (by the runtime's supervisor or the fleet's reconcile), by runtime.", "runtime"),
		compRestart: counter("desktop_component_restarts_total",
			"Desktop components (sway, wayvnc, …) restarted by the desktop's agent after they crashed, as seen by the fleet, by component.", "component"),
		started: counter("tasks_started_total", "Tasks started, by backend.", "backend"),
		steps:   counter("task_steps_total", "Task steps taken (one model turn each), by backend.", "backend"),
		finished: counter("tasks_finished_total",
			"Tasks that ended, by backend and final status.", "backend", "status"),
		taskDur: histogram("task_duration_seconds",
			"How long tasks ran, from start to end, by backend and final status.", taskBuckets, "backend", "status"),
		modelDur: histogram("model_request_duration_seconds",
			"How long a model call took, by backend, model and outcome (ok, error, timeout).", modelBuckets, "backend", "model", "outcome"),
		cost: counter("model_cost_usd_total",
			"Money spent on model calls, in US dollars, by backend and model.", "backend", "model"),
		tokens: counter("model_tokens_total",
			"Model tokens, by backend, model and kind (input, output, cache_read, cache_write).", "backend", "model", "kind"),
		auditDur: histogram("audit_append_duration_seconds",
			"How long appending an entry to the audit log took (with its fsync under the always policy), by outcome (ok, error).", auditBuckets, "outcome"),
		auditSync: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "audit_fsync_mode",
			Help: "The audit log's fsync policy: 1 for the one in force (always, interval, never)."}, []string{"mode"}),
		egress: counter("egress_connections_total",
			"Connections desktops asked the egress gateway for, by decision (allowed, refused, failed).", "decision"),
		egressBytes: counter("egress_bytes_total",
			"Bytes through the egress gateway, by direction (up: desktop to host, down: host to desktop).", "direction"),
		tasks: map[string]taskInfo{},
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.actions, m.actionDur, m.shotDur, m.shotBytes, m.restarts, m.compRestart, m.started, m.steps, m.finished,
		m.taskDur, m.modelDur, m.cost, m.tokens, m.auditDur, m.auditSync, m.egress, m.egressBytes)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveAction counts an action of the input pipeline (sessions.Observer).
func (m *Metrics) ObserveAction(verb, outcome string, took time.Duration) {
	m.actions.WithLabelValues(verb, outcome).Inc()
	m.actionDur.WithLabelValues(verb, outcome).Observe(took.Seconds())
}

// ObserveScreenshot records a screenshot's latency and size
// (sessions.Observer, tasks.Observer).
func (m *Metrics) ObserveScreenshot(format string, bytes int, took time.Duration) {
	m.shotDur.WithLabelValues(format).Observe(took.Seconds())
	m.shotBytes.WithLabelValues(format).Observe(float64(bytes))
}

// ObserveRestarts counts n restarts: of a whole desktop when component is
// empty, else of that component (sessions.Observer).
func (m *Metrics) ObserveRestarts(runtime, component string, n int) {
	if component == "" {
		m.restarts.WithLabelValues(runtime).Add(float64(n))
		return
	}
	m.compRestart.WithLabelValues(component).Add(float64(n))
}

// ObserveModelCall records a model call's latency (tasks.Observer).
func (m *Metrics) ObserveModelCall(backend, model, outcome string, took time.Duration) {
	m.modelDur.WithLabelValues(backend, model, outcome).Observe(took.Seconds())
}

// RecordTaskStart notes a task's backend and start (tasks.Recorder).
func (m *Metrics) RecordTaskStart(_ context.Context, t tasks.Task) error {
	m.mu.Lock()
	m.tasks[t.ID] = taskInfo{backend: t.Backend, started: t.CreatedAt}
	m.mu.Unlock()
	m.started.WithLabelValues(t.Backend).Inc()
	return nil
}

// RecordTaskEvent counts a task's steps, its model spend and tokens, and
// its end with its duration (tasks.Recorder).
func (m *Metrics) RecordTaskEvent(_ context.Context, _, taskID string, ev tasks.Event) error {
	m.mu.Lock()
	info := m.tasks[taskID]
	if ev.Type == tasks.EventEnd {
		delete(m.tasks, taskID)
	}
	m.mu.Unlock()
	switch ev.Type {
	case tasks.EventStep:
		m.steps.WithLabelValues(info.backend).Inc()
		if u := ev.Usage; u != nil {
			m.cost.WithLabelValues(info.backend, u.Model).Add(ev.StepUSD)
			for kind, n := range map[string]int64{"input": u.InputTokens, "output": u.OutputTokens,
				"cache_read": u.CacheReadTokens, "cache_write": u.CacheWriteTokens} {
				m.tokens.WithLabelValues(info.backend, u.Model, kind).Add(float64(n))
			}
		}
	case tasks.EventEnd:
		m.finished.WithLabelValues(info.backend, string(ev.Status)).Inc()
		if !info.started.IsZero() {
			m.taskDur.WithLabelValues(info.backend, string(ev.Status)).Observe(ev.Time.Sub(info.started).Seconds())
		}
	}
	return nil
}

// ObserveAuditAppend records one append to the audit log (its
// Options.OnAppend).
func (m *Metrics) ObserveAuditAppend(took time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.auditDur.WithLabelValues(outcome).Observe(took.Seconds())
}

// SetAuditSync says which fsync policy the audit log runs with.
func (m *Metrics) SetAuditSync(mode string) {
	m.auditSync.Reset()
	m.auditSync.WithLabelValues(mode).Set(1)
}

// RecordEgress counts a connection through the egress gateway
// (egress.Recorder).
func (m *Metrics) RecordEgress(_ string, r egress.Record) {
	m.egress.WithLabelValues(string(r.Decision)).Inc()
	m.egressBytes.WithLabelValues("up").Add(float64(r.BytesUp))
	m.egressBytes.WithLabelValues("down").Add(float64(r.BytesDown))
}

// Streams count what is open now, read at scrape time.
type Streams struct {
	Views       func() int // live views (VNC over WebSocket)
	SSE         func() int // task SSE and audit follow streams
	MCPSessions func() int // MCP sessions on /mcp
}

// WatchStreams adds the gauges of what is open now.
func (m *Metrics) WatchStreams(s Streams) {
	for _, g := range []struct {
		name, help string
		count      func() int
	}{
		{"views_open", "Live views (VNC over WebSocket) open.", s.Views},
		{"sse_streams_open", "Event streams (task SSE, audit follow) open.", s.SSE},
		{"mcp_sessions_open", "MCP sessions open on /mcp.", s.MCPSessions},
	} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: g.name, Help: g.help},
			func() float64 { return float64(g.count()) }))
	}
}

// Watch adds the gauges read at scrape time: the sessions by state and
// runtime, and (b may be nil) the daily cap and today's spend.
func (m *Metrics) Watch(s *sessions.Manager, b *budget.Budget) {
	m.reg.MustRegister(&scraped{sessions: s, budget: b})
}

var (
	sessionsDesc = prometheus.NewDesc(namespace+"_sessions", "Sessions, by state and runtime.", []string{"state", "runtime"}, nil)
	capDesc      = prometheus.NewDesc(namespace+"_budget_cap_usd", "The daily spending cap in US dollars (0: none).", nil, nil)
	spentDesc    = prometheus.NewDesc(namespace+"_budget_spent_usd", "Money spent today (UTC), in US dollars.", nil, nil)
)

// scraped collects the gauges that are read from their source on scrape.
type scraped struct {
	sessions *sessions.Manager
	budget   *budget.Budget
}

func (c *scraped) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionsDesc
	if c.budget != nil {
		ch <- capDesc
		ch <- spentDesc
	}
}

func (c *scraped) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	list, err := c.sessions.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(sessionsDesc, err)
	} else {
		type key struct{ state, runtime string }
		n := map[key]int{}
		for _, s := range list {
			n[key{string(s.State), s.Runtime}]++
		}
		for k, v := range n {
			ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(v), k.state, k.runtime)
		}
	}
	if c.budget == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(capDesc, prometheus.GaugeValue, c.budget.Cap())
	if t, err := c.budget.Today(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(spentDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(spentDesc, prometheus.GaugeValue, t.SpentUSD)
	}
}
