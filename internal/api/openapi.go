package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"atelier/internal/apitype"
)

// doc describes a route for the OpenAPI document (GET /openapi.json).
type doc struct {
	summary string
	// in is the JSON request body's type (a zero value); nil: no body.
	in any
	// inMedia, if set, is a request body's media type other than JSON
	// (a file's bytes).
	inMedia string
	// out is the success body's type (a zero value); nil: none, or
	// media says what comes.
	out any
	// status is the success status; 0 means 200.
	status int
	// media is the success media type; "" means application/json.
	media  string
	params []param
	// errs are the route's error answers besides the ones every route
	// has (500 internal; 401 unauthorized behind the token; 400
	// bad_request and 413 too_large with a body).
	errs []answer
}

// param is a query or header parameter.
type param struct {
	in, name, desc string
	// typ is the JSON Schema type; "" means string.
	typ string
}

func query(name, desc string) param  { return param{in: "query", name: name, desc: desc} }
func header(name, desc string) param { return param{in: "header", name: name, desc: desc} }
func boolQuery(name, desc string) param {
	return param{in: "query", name: name, desc: desc, typ: "boolean"}
}

// answer is an error status with the codes it carries ("" for a body that
// is not the API's JSON error, such as a file server's 404).
type answer struct {
	status int
	codes  []string
}

// errs groups codes under their status.
func errs(status int, codes ...string) answer { return answer{status: status, codes: codes} }

// Media types of successes other than JSON.
const (
	mediaJSON      = "application/json"
	mediaPNG       = "image/png"
	mediaImage     = "image/png|image/jpeg"
	mediaSSE       = "text/event-stream"
	mediaHTML      = "text/html"
	mediaJSONL     = "application/jsonl"
	mediaWebSocket = "websocket"
	mediaFile      = "application/octet-stream"
	// mediaPrometheus is the Prometheus text exposition format.
	mediaPrometheus = "text/plain"
)

// Parameters several routes share.
var (
	waitDocParams = []param{
		query("wait", "ready: answer once the desktop is ready"),
		query("timeout", "how long to wait for ready: a duration (30s) or seconds; at most 10m"),
	}
	embedToken = query("token", "the embed token (POST /sessions/{id}/embed-token mints one)")
	leaseParam = header(apitype.HeaderLease, "the caller's control lease while a person holds the session")
)

// agentCodes are the refusals of the desktop's agent the API passes on.
var agentCodes = []string{apitype.CodeBadJSON, apitype.CodeBadVersion, apitype.CodeUnknownAction, apitype.CodeUnknownField,
	apitype.CodeBadField, apitype.CodeMissingField, apitype.CodeBadCoordinate, apitype.CodeBadKey, apitype.CodeTooLarge}

// Admission's refusals.
var (
	tooManySessions = errs(http.StatusTooManyRequests, apitype.CodeTooManySessions)
	tooManyStreams  = errs(http.StatusTooManyRequests, apitype.CodeTooManyStreams)
)

// tokenCodes are the live view's refusals of its embed token.
var tokenCodes = []string{apitype.CodeTokenMissing, apitype.CodeTokenInvalid, apitype.CodeTokenExpired, apitype.CodeTokenMode}

// answers is every error answer of rt: its own and the common ones.
func (rt route) answers() map[int][]string {
	out := map[int][]string{http.StatusInternalServerError: {apitype.CodeInternal}}
	add := func(status int, codes ...string) {
		for _, c := range codes {
			if !slices.Contains(out[status], c) {
				out[status] = append(out[status], c)
			}
		}
	}
	if !rt.open {
		add(http.StatusUnauthorized, apitype.CodeUnauthorized)
	}
	if rt.doc.in != nil || rt.doc.inMedia != "" {
		add(http.StatusBadRequest, apitype.CodeBadRequest)
		add(http.StatusRequestTimeout, apitype.CodeRequestTimeout)
		add(http.StatusRequestEntityTooLarge, apitype.CodeTooLarge)
	}
	for _, a := range rt.doc.errs {
		if len(a.codes) == 0 {
			add(a.status, "")
		}
		add(a.status, a.codes...)
	}
	return out
}

// openAPIPath is a route pattern's method and path as OpenAPI writes
// them: a subtree pattern ("/view/assets/") takes a {path} parameter.
func openAPIPath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	if strings.HasSuffix(path, "/") {
		path += "{path}"
	}
	path = strings.ReplaceAll(path, "...}", "}") // a wildcard segment: {path...} is {path}
	return strings.ToLower(method), path
}

// openAPI returns the OpenAPI 3.1 document of routes.
func openAPI(routes []route, version string) ([]byte, error) {
	sc := &schemas{components: map[string]any{}, overrides: map[string]any{"ErrorDetail.code": ref("ErrorCode")}}
	codes := apitype.Codes()
	sc.components["ErrorCode"] = map[string]any{"type": "string", "enum": codes,
		"description": "A stable error code; it never changes meaning."}
	errSchema := sc.of(apitype.Error{})
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		method, path := openAPIPath(rt.pattern)
		op := map[string]any{"summary": rt.doc.summary, "operationId": operationID(rt.pattern)}
		if rt.open {
			op["security"] = []any{}
		}
		var params []any
		for _, name := range pathParams(path) {
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, p := range rt.doc.params {
			typ := p.typ
			if typ == "" {
				typ = "string"
			}
			params = append(params, map[string]any{"name": p.name, "in": p.in, "description": p.desc, "schema": map[string]any{"type": typ}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.doc.inMedia != "" {
			op["requestBody"] = map[string]any{"content": map[string]any{rt.doc.inMedia: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}}
		}
		if rt.doc.in != nil {
			op["requestBody"] = map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": sc.of(rt.doc.in)}}}
		}
		responses := map[string]any{}
		status := rt.doc.status
		if status == 0 {
			status = http.StatusOK
		}
		success := map[string]any{"description": http.StatusText(status)}
		switch media := rt.doc.media; {
		case media == mediaWebSocket:
			success["description"] = "Switching Protocols: a WebSocket carrying the desktop's RFB (binary subprotocol)"
		case media != "":
			content := map[string]any{}
			for _, m := range strings.Split(media, "|") {
				c := map[string]any{}
				if rt.doc.out != nil {
					c["x-item-schema"] = sc.of(rt.doc.out)
				}
				content[m] = c
			}
			success["content"] = content
		case rt.doc.out != nil:
			success["content"] = map[string]any{"application/json": map[string]any{"schema": sc.of(rt.doc.out)}}
		}
		responses[strconv.Itoa(status)] = success
		for st, cs := range rt.answers() {
			r := map[string]any{"description": http.StatusText(st)}
			var jsonCodes []string
			for _, c := range cs {
				if c != "" {
					jsonCodes = append(jsonCodes, c)
				}
			}
			if len(jsonCodes) > 0 {
				sort.Strings(jsonCodes)
				r["description"] = http.StatusText(st) + ": " + strings.Join(jsonCodes, ", ")
				r["x-error-codes"] = jsonCodes
				r["content"] = map[string]any{"application/json": map[string]any{"schema": errSchema}}
			}
			responses[strconv.Itoa(st)] = r
		}
		op["responses"] = responses
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		if _, dup := paths[path][method]; dup {
			return nil, fmt.Errorf("openapi: %s registered twice", rt.pattern)
		}
		paths[path][method] = op
	}
	d := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Atelier fleet API", "version": version,
			"description": "Self-hosted AI-driven Linux desktops. Every error is {\"error\":{\"code\",\"message\"}} with a stable code (ErrorCode)."},
		"paths":      paths,
		"security":   []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{"schemas": sc.components, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
	}
	return json.MarshalIndent(d, "", "  ")
}

// pathParams lists the {names} of a path, in order.
func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(seg, "{"), "}"))
		}
	}
	return out
}

// operationID names an operation after its pattern: "GET /sessions/{id}"
// is get_sessions_id.
func operationID(pattern string) string {
	f := func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') }
	return strings.ToLower(strings.Join(strings.FieldsFunc(pattern, f), "_"))
}

// handleOpenAPI serves GET /openapi.json, open to all: this document.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(s.openapi)
	return nil
}
