package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/audit"
	"atelier/internal/client"
)

const (
	sessionsURI  = "atelier://sessions"
	auditPrefix  = sessionsURI + "/"
	auditSuffix  = "/audit"
	recentAudits = 100 // entries a session's audit resource holds
	mimeJSONL    = "application/jsonl"
)

func auditURI(id string) string { return auditPrefix + id + auditSuffix }

// auditSession returns the session whose audit resource uri names.
func auditSession(uri string) (string, bool) {
	id, ok := strings.CutPrefix(uri, auditPrefix)
	if id, ok = strings.CutSuffix(id, auditSuffix); !ok || audit.CheckSession(id) != nil {
		return "", false
	}
	return id, true
}

func addResources(s *sdk.Server, t tools) {
	s.AddResource(&sdk.Resource{URI: sessionsURI, Name: "sessions", MIMEType: "application/json",
		Description: "The fleet's sessions: id, label, state, resolution. Subscribe to hear when one is created, starts, becomes ready, stops or is deleted."}, t.sessionsResource)
	s.AddResourceTemplate(&sdk.ResourceTemplate{URITemplate: auditURI("{session_id}"), Name: "audit", MIMEType: mimeJSONL,
		Description: "A session's most recent audit entries (up to 100), one JSON object a line: actions, tasks, control, lifecycle. " +
			"Each session's is listed; subscribe to hear of each new entry."}, t.auditResource)
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
	// The last recentAudits lines, kept in a ring as they stream past.
	ring := make([][]byte, 0, recentAudits)
	next := 0
	err := t.readAudit(ctx, uri, nil, func(line []byte) error {
		line = bytes.Clone(line)
		if len(ring) < recentAudits {
			ring = append(ring, line)
		} else {
			ring[next] = line
		}
		next = (next + 1) % recentAudits
		return nil
	})
	if err != nil {
		return nil, err
	}
	var text bytes.Buffer
	for i := range ring {
		text.Write(ring[(next+i)%len(ring)])
		text.WriteByte('\n')
	}
	return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: uri, MIMEType: mimeJSONL, Text: text.String()}}}, nil
}

// readAudit reads the audit the resource uri names, selected by q, line
// by line; an audit the fleet does not have is the resource not found.
func (t tools) readAudit(ctx context.Context, uri string, q url.Values, each func(line []byte) error) error {
	id, ok := auditSession(uri)
	if !ok {
		return sdk.ResourceNotFoundError(uri)
	}
	err := t.c.Audit(ctx, id, q, each)
	if e, is := errors.AsType[*client.Error](err); is && (e.Status == http.StatusNotFound || e.Status == http.StatusBadRequest) {
		return sdk.ResourceNotFoundError(uri)
	}
	if err != nil {
		return explain(err)
	}
	return nil
}
