package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"atelier/internal/apitype"
)

// Body limits.
const (
	maxBody        = 64 << 10 // sessions, themes
	maxActionsBody = 4 << 20  // up to 100 actions, each with up to 10k characters
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// decode reads r's body as exactly one JSON value of type T: at most limit
// bytes, no unknown fields, nothing after it. An empty body is T's zero
// value, so every field of a body can be optional.
func decode[T any](w http.ResponseWriter, r *http.Request, limit int64) (T, error) {
	var v T
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return v, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return v, nil
	}
	return v, decodeBytes(b, &v)
}

// decodeBytes is decode's strict half, for bodies read already.
func decodeBytes(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return badRequest(apitype.CodeBadRequest, "request body: "+jsonProblem(err))
	}
	if _, err := d.Token(); err != io.EOF {
		return badRequest(apitype.CodeBadRequest, "request body: trailing data after the JSON value")
	}
	return nil
}

// jsonProblem says what is wrong with a JSON body, for people.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q: want %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: it ends too early"
	}
	// "json: unknown field" and the rest read well as they are.
	return err.Error()
}

// encode writes v as JSON with status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
