// Package metrics is the fleet's Prometheus metrics: one registry of the
// fleet's own (not the process-global one) holding the Go and process
// collectors, counters and histograms fed by the input pipeline and the
// task loop, and gauges read at scrape time from the sessions and the
// budget. It is the one package that imports client_golang; the domain
// packages see it through their own small interfaces
// (sessions.Observer, tasks.Recorder).
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
	"atelier/internal/sessions"
	"atelier/internal/tasks"
)

const namespace = "atelier"

// scrapeTimeout bounds what one scrape asks the sessions and the budget.
const scrapeTimeout = 5 * time.Second

// Metrics is a fleet's metrics. It is safe for concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	actions   *prometheus.CounterVec
	actionDur *prometheus.HistogramVec
	steps     prometheus.Counter
	finished  *prometheus.CounterVec
	cost      *prometheus.CounterVec
	tokens    *prometheus.CounterVec

	mu       sync.Mutex
	backends map[string]string // running task id → its backend, for the cost's label
}

// New returns the fleet's metrics with the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "actions_total",
			Help: "Actions sent through the input pipeline, by verb and outcome (ok, not_run or the protocol's error code)."}, []string{"verb", "outcome"}),
		actionDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "action_duration_seconds",
			Help:    "How long the desktop's agent took over an action, by verb and outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"verb", "outcome"}),
		steps: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "task_steps_total",
			Help: "Task steps taken (one model turn each)."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "tasks_finished_total",
			Help: "Tasks that ended, by final status."}, []string{"status"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "model_cost_usd_total",
			Help: "Money spent on model calls, by backend and model."}, []string{"backend", "model"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "model_tokens_total",
			Help: "Model tokens, by backend, model and kind (input, output, cache_read, cache_write)."}, []string{"backend", "model", "kind"}),
		backends: map[string]string{},
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.actions, m.actionDur, m.steps, m.finished, m.cost, m.tokens)
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

// RecordTaskStart notes a task's backend (tasks.Recorder).
func (m *Metrics) RecordTaskStart(_ context.Context, t tasks.Task) error {
	m.mu.Lock()
	m.backends[t.ID] = t.Backend
	m.mu.Unlock()
	return nil
}

// RecordTaskEvent counts a task's steps, its model spend and tokens, and
// its end (tasks.Recorder).
func (m *Metrics) RecordTaskEvent(_ context.Context, _, taskID string, ev tasks.Event) error {
	m.mu.Lock()
	backend := m.backends[taskID]
	if ev.Type == tasks.EventEnd {
		delete(m.backends, taskID)
	}
	m.mu.Unlock()
	switch ev.Type {
	case tasks.EventStep:
		m.steps.Inc()
		if u := ev.Usage; u != nil {
			m.cost.WithLabelValues(backend, u.Model).Add(ev.StepUSD)
			for kind, n := range map[string]int64{"input": u.InputTokens, "output": u.OutputTokens,
				"cache_read": u.CacheReadTokens, "cache_write": u.CacheWriteTokens} {
				m.tokens.WithLabelValues(backend, u.Model, kind).Add(float64(n))
			}
		}
	case tasks.EventEnd:
		m.finished.WithLabelValues(string(ev.Status)).Inc()
	}
	return nil
}

// Watch adds the gauges read at scrape time: the sessions by state and
// runtime, and (b may be nil) the daily cap and today's spend.
func (m *Metrics) Watch(s *sessions.Manager, b *budget.Budget) {
	m.reg.MustRegister(&scraped{sessions: s, budget: b})
}

var (
	sessionsDesc = prometheus.NewDesc(namespace+"_sessions", "Sessions, by state and runtime.", []string{"state", "runtime"}, nil)
	capDesc      = prometheus.NewDesc(namespace+"_budget_cap_usd", "The daily spending cap (0: none).", nil, nil)
	spentDesc    = prometheus.NewDesc(namespace+"_budget_spent_usd", "Money spent today (UTC).", nil, nil)
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
