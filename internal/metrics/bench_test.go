package metrics_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/agentapi"
	"atelier/internal/desktoptest"
	"atelier/internal/fleettest"
	"atelier/internal/metrics"
	"atelier/internal/runtime"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
	"atelier/internal/tracing"
)

// oneDesktop is the fake runtime whose every desktop is the one real
// desktop given: its agent answers for them all.
type oneDesktop struct {
	*sessionstest.Runtime
	d *desktoptest.Desktop
}

func (r oneDesktop) Dial(ctx context.Context, _ string, e runtime.Endpoint) (net.Conn, error) {
	var dl net.Dialer
	return dl.DialContext(ctx, "unix", filepath.Join(r.d.RunDir, desktop.AgentSocket))
}

// pipeline opens a sessions manager over d with observer obs (nil: none)
// and one session of it.
func pipeline(b *testing.B, d *desktoptest.Desktop, obs sessions.Observer) (*sessions.Manager, string) {
	b.Helper()
	st, err := store.Open(b.Context(), filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	opts := sessions.Options{Runtime: oneDesktop{sessionstest.New(), d}, Store: st}
	if obs != nil {
		opts.Observer = obs
	}
	m, err := sessions.Open(b.Context(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	s, err := m.Create(b.Context(), sessions.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return m, s.ID
}

// BenchmarkActionInstrumentation compares a mouse_move round trip through
// the input pipeline (sessions.Manager.Act to a real desktop's agent) with
// the fleet's metrics and with none, alternating on one desktop so both
// see the same load (target: the metrics add ≤ 2%). Traces are off, as by
// default: their no-op spans are in both, and their own cost is
// BenchmarkSpansOff's.
func BenchmarkActionInstrumentation(b *testing.B) {
	if testing.Short() {
		b.Skip("needs a desktop")
	}
	d := desktoptest.Start(b, desktoptest.Options{})
	bare, bareID := pipeline(b, d, nil)
	metered, meteredID := pipeline(b, d, metrics.New())
	ctx := b.Context()
	act := func(m *sessions.Manager, id string, x int) time.Duration {
		t0 := time.Now()
		res, err := m.Act(ctx, id, sessions.Actor{Name: "bench"}, []agentapi.Request{{Action: agentapi.MouseMove, Coordinate: &agentapi.Point{X: 100 + x%500, Y: 100}}}, nil)
		if err != nil || res.Results[0].Err != nil {
			b.Fatalf("act: %v %v", err, res.Results[0].Err)
		}
		return time.Since(t0)
	}
	var withM, without []time.Duration
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			withM = append(withM, act(metered, meteredID, i))
		} else {
			without = append(without, act(bare, bareID, i))
		}
	}
	p50m, p50b := fleettest.P50(withM), fleettest.P50(without)
	b.ReportMetric(p50m, "metrics-p50-ms")
	b.ReportMetric(p50b, "bare-p50-ms")
	b.ReportMetric(100*(p50m-p50b)/p50b, "overhead-%")
}

// BenchmarkSpansOff is what traces cost an action while they are off:
// the input pipeline's two spans (Act and the agent round trip).
func BenchmarkSpansOff(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		actx, act := tracing.Start(ctx, "sessions.Act")
		_, rt := tracing.Start(actx, "agent mouse_move")
		tracing.End(rt, nil)
		tracing.End(act, nil)
	}
}
