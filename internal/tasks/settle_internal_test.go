package tasks

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net"
	"testing"
	"time"

	"atelier/internal/agentapi"
)

// An agent from before the settle verb (a desktop re-adopted across an
// upgrade) refuses it: the step then pauses the fixed time it always did,
// rather than not at all.
func TestSettleFallsBackForAnOlderAgent(t *testing.T) {
	sock := t.TempDir() + "/agent.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for {
			line, err := agentapi.ReadRequestLine(r)
			if err != nil {
				return
			}
			var req struct {
				ID     string `json:"id"`
				Action string `json:"action"`
			}
			json.Unmarshal(line, &req)
			agentapi.WriteResponse(conn, &agentapi.Response{ID: req.ID, Error: agentapi.Errorf(agentapi.CodeUnknownAction, "unknown action %q", req.Action)})
		}
	}()
	c := agentapi.UnixClient(sock)
	defer c.Close()
	m := &Manager{opts: Options{SettleQuiet: 35 * time.Millisecond, SettleMax: 3 * time.Second}, log: slog.New(slog.DiscardHandler)}
	t0 := time.Now()
	m.settle(t.Context(), c)
	if took := time.Since(t0); took < legacyPause {
		t.Errorf("settle with an agent that lacks the verb returned after %v; want the legacy pause of %v", took, legacyPause)
	}
}
