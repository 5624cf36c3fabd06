package tasks

import (
	"log/slog"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/agentapi/agentapitest"
)

// An agent from before the settle verb (a desktop re-adopted across an
// upgrade) refuses it: the step then pauses the fixed time it always did,
// rather than not at all.
func TestSettleFallsBackForAnOlderAgent(t *testing.T) {
	sock := agentapitest.OlderAgent(t)
	c := agentapi.UnixClient(sock)
	defer c.Close()
	m := &Manager{opts: Options{SettleQuiet: 35 * time.Millisecond, SettleMax: 3 * time.Second}, log: slog.New(slog.DiscardHandler)}
	t0 := time.Now()
	m.settle(t.Context(), c)
	if took := time.Since(t0); took < legacyPause {
		t.Errorf("settle with an agent that lacks the verb returned after %v; want the legacy pause of %v", took, legacyPause)
	}
}
