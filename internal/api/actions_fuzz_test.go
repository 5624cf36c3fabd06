package api

import (
	"errors"
	"net/http/httptest"
	"testing"

	"atelier/internal/agentapi"
)

// FuzzParseActions feeds the actions body parser anything: it must never
// panic, refuse with an API error, or return actions that speak protocol v1.
// Its seed corpus is in testdata/fuzz/FuzzParseActions.
func FuzzParseActions(f *testing.F) {
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/sessions/x/actions?observe=1", nil)
		reqs, obs, err := parseActions(r, []byte(body))
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 || ae.code == "" || ae.msg == "" {
				t.Fatalf("parseActions(%q) = %v: not a 400 API error", body, err)
			}
			return
		}
		if obs == nil {
			t.Fatalf("parseActions(%q): ?observe=1 ignored", body)
		}
		for i, rq := range reqs {
			if rq.V == 0 {
				t.Fatalf("parseActions(%q): action %d has no version", body, i)
			}
			if rq.V == agentapi.Version {
				_ = rq.Validate() // must not panic
			}
		}
	})
}
