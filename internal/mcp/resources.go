package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/client"
)

const (
	sessionsURI  = "atelier://sessions"
	auditPrefix  = sessionsURI + "/"
	auditSuffix  = "/audit"
	recentAudits = 100 // entries a session's audit resource holds
)

func addResources(s *sdk.Server, t tools) {
	s.AddResource(&sdk.Resource{URI: sessionsURI, Name: "sessions", MIMEType: "application/json",
		Description: "The fleet's sessions: id, label, state, resolution."}, t.sessionsResource)
	s.AddResourceTemplate(&sdk.ResourceTemplate{URITemplate: auditPrefix + "{session_id}" + auditSuffix, Name: "audit", MIMEType: "application/jsonl",
		Description: "A session's most recent audit entries (up to 100), one JSON object a line: actions, tasks, control, lifecycle."}, t.auditResource)
}

func (t tools) sessionsResource(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	_, list, err := t.list(ctx, nil, struct{}{})
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: req.Params.URI, MIMEType: "application/json", Text: string(b)}}}, nil
}

func (t tools) auditResource(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	uri := req.Params.URI
	id, ok := strings.CutPrefix(uri, auditPrefix)
	if id, ok = strings.CutSuffix(id, auditSuffix); !ok || id == "" || strings.Contains(id, "/") {
		return nil, sdk.ResourceNotFoundError(uri)
	}
	// The last recentAudits lines, kept in a ring as they stream past.
	ring := make([][]byte, 0, recentAudits)
	next := 0
	err := t.c.Audit(ctx, id, nil, func(line []byte) error {
		line = bytes.Clone(line)
		if len(ring) < recentAudits {
			ring = append(ring, line)
		} else {
			ring[next] = line
		}
		next = (next + 1) % recentAudits
		return nil
	})
	if e, is := errors.AsType[*client.Error](err); is && (e.Status == http.StatusNotFound || e.Status == http.StatusBadRequest) {
		return nil, sdk.ResourceNotFoundError(uri)
	}
	if err != nil {
		return nil, explain(err)
	}
	var text bytes.Buffer
	for i := range ring {
		text.Write(ring[(next+i)%len(ring)])
		text.WriteByte('\n')
	}
	return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: uri, MIMEType: "application/jsonl", Text: text.String()}}}, nil
}
