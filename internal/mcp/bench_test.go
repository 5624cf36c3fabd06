package mcp_test

import (
	"net/http"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/apitype"
	"atelier/internal/fleettest"
)

// BenchmarkComputerOverhead compares the computer tool over /mcp with the
// same action through the HTTP API (target: overhead ≤ 2 ms p50 on
// loopback). The two alternate, so both see the same desktop and load.
func BenchmarkComputerOverhead(b *testing.B) {
	fleettest.RequireDesktops(b)
	f := fleettest.New(b, fleettest.Options{Token: token})
	ctx := b.Context()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{}, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	tr := &sdk.StreamableClientTransport{Endpoint: f.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	move := map[string]any{"action": "mouse_move", "coordinate": []int{10, 10}}
	params := &sdk.CallToolParams{Name: "computer", Arguments: map[string]any{"session_id": s.ID, "action": move}}
	var viaMCP, viaAPI []time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if i%2 == 0 {
			res, err := cs.CallTool(ctx, params)
			if err != nil || res.IsError {
				b.Fatalf("computer: %v %+v", err, res)
			}
			viaMCP = append(viaMCP, time.Since(t0))
		} else {
			if _, err := f.Client.Act(ctx, s.ID, move); err != nil {
				b.Fatal(err)
			}
			viaAPI = append(viaAPI, time.Since(t0))
		}
	}
	if len(viaAPI) == 0 {
		return
	}
	b.ReportMetric(fleettest.P50(viaMCP), "mcp-p50-ms")
	b.ReportMetric(fleettest.P50(viaAPI), "api-p50-ms")
	b.ReportMetric(fleettest.P50(viaMCP)-fleettest.P50(viaAPI), "overhead-p50-ms")
}
