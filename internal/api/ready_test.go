package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"atelier/internal/api"
	"atelier/internal/apitype"
	"atelier/internal/store"
)

func getReady(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url + "/ready") // open: no token
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestReadyNamesTheStoreWhenItTakesNoWrites checks /ready against a real
// store: one that is open passes, a closed one fails the check by name.
func TestReadyNamesTheStoreWhenItTakesNoWrites(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFixtureWith(t, api.Options{Ready: []api.ReadyCheck{{Name: "store", Check: st.CheckWritable}}})
	status, body := getReady(t, f.url)
	var ready apitype.Ready
	if status != http.StatusOK || json.Unmarshal(body, &ready) != nil || ready.Status != "ready" || len(ready.Checks) != 1 || ready.Checks[0] != "store" {
		t.Fatalf("/ready with a writable store: %d %s, want 200 ready [store]", status, body)
	}
	// A probe leaves nothing behind: a second one still passes.
	if status, body := getReady(t, f.url); status != http.StatusOK {
		t.Fatalf("second /ready: %d %s", status, body)
	}
	st.Close()
	status, body = getReady(t, f.url)
	var apiErr apitype.Error
	if status != http.StatusServiceUnavailable || json.Unmarshal(body, &apiErr) != nil || apiErr.Err.Code != apitype.CodeNotReady ||
		!strings.Contains(apiErr.Err.Message, "store:") {
		t.Errorf("/ready with a closed store: %d %s, want 503 not_ready naming the store", status, body)
	}
}
