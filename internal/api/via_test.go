package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"atelier/internal/apitype"
	"atelier/internal/audit"
)

// TestVia checks a request sent through atelier mcp (X-Atelier-Via: mcp)
// acts as actor mcp, any other value as the token, and the header without
// the token is still refused.
func TestVia(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ via, want string }{{"mcp", audit.ActorMCP}, {"fleet", "token:api"}} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+"/sessions/"+f.id+"/takeover", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(apitype.HeaderVia, c.via)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var l apitype.Lease
		err = json.NewDecoder(resp.Body).Decode(&l)
		resp.Body.Close()
		if err != nil || l.Holder.Who != c.want {
			t.Errorf("takeover via %q: %v, holder %+v; want %s", c.via, err, l.Holder, c.want)
		}
		if resp, b := f.do(t, http.MethodPost, "/sessions/"+f.id+"/handback", `{"lease_id":"`+l.ID+`"}`); resp.StatusCode != http.StatusOK {
			t.Fatalf("handback: %d %s", resp.StatusCode, b)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url+"/sessions", nil)
	req.Header.Set(apitype.HeaderVia, "mcp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("via mcp without the token: %d, want 401", resp.StatusCode)
	}
}
