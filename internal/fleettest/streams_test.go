package fleettest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/apitype"
	"atelier/internal/fleettest"
)

// bearerTransport adds the API token to every request.
type bearerTransport struct{}

func (bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return http.DefaultTransport.RoundTrip(r)
}

// TestOpenStreamGauges opens a live view and an MCP session, as their
// clients do, and checks the gauges count them while open and not after.
func TestOpenStreamGauges(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Token: token, MetricsToken: metricsToken})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "gauges"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	link, err := f.Client.EmbedLink(ctx, s.ID, "view", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := openView(t, ctx, f.URL, s.ID, link.Token)
	tr := &sdk.StreamableClientTransport{Endpoint: f.URL + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{}}, MaxRetries: -1}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "gauges", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect to /mcp: %v", err)
	}
	gauges := func() (views, mcp float64) {
		fams := scrape(t, ctx, f)
		return sample(fams, "atelier_views_open", nil).GetGauge().GetValue(), sample(fams, "atelier_mcp_sessions_open", nil).GetGauge().GetValue()
	}
	if v, m := gauges(); v != 1 || m != 1 {
		t.Errorf("with a view and an MCP session open: atelier_views_open %v, atelier_mcp_sessions_open %v; want 1 and 1", v, m)
	}
	ws.CloseNow()
	cs.Close() // ends the session with a DELETE
	for {
		v, m := gauges()
		if v == 0 && m == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after both closed: atelier_views_open %v, atelier_mcp_sessions_open %v; want 0 and 0", v, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
