package budget

import (
	"encoding/json"
	"net/http"
)

// Handler serves GET /budget: today's totals and the cap, as JSON.
func Handler(b *Budget) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := b.Today(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "internal", "message": "the budget could not be read"}})
			return
		}
		json.NewEncoder(w).Encode(t)
	})
}
