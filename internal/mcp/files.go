package mcp

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/apitype"
)

// maxReadFile bounds what read_file returns: a model's context is no
// place for more.
const maxReadFile = 1 << 20

func addFileTools(s *sdk.Server, t tools) {
	sdk.AddTool(s, &sdk.Tool{Name: "list_files", Description: "List a directory of a session's home (path relative to the home; empty for the home itself). " +
		"Symbolic links are listed, never followed."}, t.listFiles)
	sdk.AddTool(s, &sdk.Tool{Name: "read_file", Description: "Read a file of a session's home (path relative to the home), up to 1 MiB: " +
		"text as it is, anything else in base64 (encoding says which)."}, t.readFile)
	sdk.AddTool(s, &sdk.Tool{Name: "write_file", Description: "Write a file into a session's home (path relative to the home; its directory must exist), " +
		"replacing one there. content is text, or base64 with encoding base64."}, t.writeFile)
	sdk.AddTool(s, &sdk.Tool{Name: "get_clipboard", Description: "Read a session's clipboard: text, or with mime image/png a PNG in base64."}, t.getClipboard)
	sdk.AddTool(s, &sdk.Tool{Name: "set_clipboard", Description: "Set a session's clipboard to text (or, with mime image/png, a PNG in base64); " +
		"then ctrl+v (ctrl+shift+v in a terminal) pastes it. Refused while a person holds the session's control."}, t.setClipboard)
}

// PathInput names a path of a session's home.
type PathInput struct {
	SessionID string `json:"session_id" jsonschema:"the session's id"`
	Path      string `json:"path" jsonschema:"a path relative to the home, such as notes/todo.txt"`
}

func (t tools) listFiles(ctx context.Context, _ *sdk.CallToolRequest, in PathInput) (*sdk.CallToolResult, apitype.FileList, error) {
	l, err := t.c.ListDir(ctx, in.SessionID, in.Path)
	if err != nil {
		return nil, apitype.FileList{}, explain(err)
	}
	return nil, l, nil
}

// FileContent is read_file's output and write_file's input.
type FileContent struct {
	SessionID string `json:"session_id,omitempty" jsonschema:"the session's id"`
	Path      string `json:"path" jsonschema:"a path relative to the home"`
	Content   string `json:"content"`
	Encoding  string `json:"encoding,omitempty" jsonschema:"empty for text, base64 for anything else"`
}

func (t tools) readFile(ctx context.Context, _ *sdk.CallToolRequest, in PathInput) (*sdk.CallToolResult, FileContent, error) {
	resp, err := t.c.GetFile(ctx, in.SessionID, in.Path)
	if err != nil {
		return nil, FileContent{}, explain(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > maxReadFile {
		return nil, FileContent{}, fmt.Errorf("%s is %d bytes: read_file returns at most %d", in.Path, resp.ContentLength, maxReadFile)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReadFile))
	if err != nil {
		return nil, FileContent{}, err
	}
	out := FileContent{Path: in.Path, Content: string(b)}
	if !utf8.Valid(b) {
		out.Content, out.Encoding = base64.StdEncoding.EncodeToString(b), "base64"
	}
	return nil, out, nil
}

// Written is write_file's output.
type Written struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func (t tools) writeFile(ctx context.Context, _ *sdk.CallToolRequest, in FileContent) (*sdk.CallToolResult, Written, error) {
	b := []byte(in.Content)
	switch in.Encoding {
	case "":
	case "base64":
		var err error
		if b, err = base64.StdEncoding.DecodeString(in.Content); err != nil {
			return nil, Written{}, fmt.Errorf("content is not base64: %w", err)
		}
	default:
		return nil, Written{}, fmt.Errorf("encoding %q: want empty (text) or base64", in.Encoding)
	}
	w, err := t.c.PutFile(ctx, in.SessionID, in.Path, strings.NewReader(string(b)), int64(len(b)))
	if err != nil {
		return nil, Written{}, explain(err)
	}
	return nil, Written{Path: w.Path, Size: w.Size, SHA256: w.SHA256}, nil
}

// ClipboardInput is get_clipboard's and set_clipboard's input.
type ClipboardInput struct {
	SessionID string `json:"session_id" jsonschema:"the session's id"`
	Mime      string `json:"mime,omitempty" jsonschema:"the content type: empty for text (UTF-8), or image/png"`
	Data      string `json:"data,omitempty" jsonschema:"set_clipboard: the text, or the PNG in base64"`
	LeaseID   string `json:"lease_id,omitempty" jsonschema:"set_clipboard: your lease from take_over, while you hold control"`
}

func (t tools) getClipboard(ctx context.Context, _ *sdk.CallToolRequest, in ClipboardInput) (*sdk.CallToolResult, apitype.Clipboard, error) {
	c, err := t.c.Clipboard(ctx, in.SessionID, in.Mime)
	if err != nil {
		return nil, apitype.Clipboard{}, explain(err)
	}
	return nil, c, nil
}

func (t tools) setClipboard(ctx context.Context, _ *sdk.CallToolRequest, in ClipboardInput) (*sdk.CallToolResult, struct{}, error) {
	if err := t.c.SetClipboard(ctx, in.SessionID, in.LeaseID, apitype.Clipboard{Mime: in.Mime, Data: in.Data}); err != nil {
		return nil, struct{}{}, explain(err)
	}
	return nil, struct{}{}, nil
}
