package api

import (
	"net/http"

	"atelier/internal/apitype"
)

var noMCP = &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: "this fleet serves no MCP endpoint"}

// mcpDoc documents /mcp: the Model Context Protocol's streamable HTTP
// transport, whose bodies are JSON-RPC messages, not the API's JSON (the
// protocol's own errors included).
func mcpDoc(summary string, status int, media string) doc {
	return doc{summary: summary, status: status, media: media,
		params: []param{header("Mcp-Session-Id", "the MCP session, from the answer to initialize")},
		errs: []answer{errs(http.StatusBadRequest), errs(http.StatusForbidden), notFound, errs(http.StatusMethodNotAllowed),
			errs(http.StatusConflict), errs(http.StatusUnsupportedMediaType)}}
}

// handleMCP serves /mcp with the MCP handler, behind the bearer token
// like every API route; a message is bounded as an actions body is.
func (s *Server) handleMCP(w http.ResponseWriter, r *http.Request) error {
	if s.opts.MCP == nil {
		return noMCP
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxActionsBody)
	s.opts.MCP.ServeHTTP(w, r)
	return nil
}
