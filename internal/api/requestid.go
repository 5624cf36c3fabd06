package api

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"

	"atelier/internal/apitype"
	"atelier/internal/audit"
)

// withRequestID gives every request an id: the client's X-Request-Id if it
// is short and safe to log, else a new one. It is echoed in the response
// and carried by the request's context into its log lines and the audit
// entries it causes.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(apitype.HeaderRequestID)
		if !audit.ValidRequestID(id) {
			id = "req_" + rand.Text()
		}
		w.Header().Set(apitype.HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(audit.WithRequestID(r.Context(), id)))
	})
}

// RequestIDLogs wraps h so that a record logged with a request's context
// (InfoContext and the like) carries the request's id.
func RequestIDLogs(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{h}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := audit.RequestIDFrom(ctx); id != "" {
		r = r.Clone() // the caller's record may share its attrs
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
