package mcp_test

import (
	"testing"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/fleettest"
	"atelier/internal/mcp"
)

// TestFileAndClipboardTools: a file written with write_file reads back
// with read_file and shows in list_files; an escape is a tool error; the
// clipboard set with set_clipboard reads back with get_clipboard.
func TestFileAndClipboardTools(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: MCP tests need a real desktop")
	}
	fleettest.RequireDesktops(t)
	f := fleettest.New(t, fleettest.Options{Token: token})
	s, err := f.Client.CreateSession(t.Context(), apitype.CreateSession{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, f, "http", newNotes())
	var w mcp.Written
	ok(t, cs, "write_file", map[string]any{"session_id": s.ID, "path": "notes.txt", "content": "from mcp\n"}, &w)
	if w.Size != 9 || w.Path != "notes.txt" {
		t.Errorf("write_file: %+v", w)
	}
	var got mcp.FileContent
	ok(t, cs, "read_file", map[string]any{"session_id": s.ID, "path": "notes.txt"}, &got)
	if got.Content != "from mcp\n" || got.Encoding != "" {
		t.Errorf("read_file: %+v", got)
	}
	ok(t, cs, "write_file", map[string]any{"session_id": s.ID, "path": "bin", "content": "AP8=", "encoding": "base64"}, nil)
	ok(t, cs, "read_file", map[string]any{"session_id": s.ID, "path": "bin"}, &got)
	if got.Content != "AP8=" || got.Encoding != "base64" {
		t.Errorf("read_file of bytes: %+v", got)
	}
	var list apitype.FileList
	ok(t, cs, "list_files", map[string]any{"session_id": s.ID, "path": ""}, &list)
	names := map[string]bool{}
	for _, e := range list.Entries {
		names[e.Name] = true
	}
	if !names["notes.txt"] || !names["bin"] {
		t.Errorf("list_files: %+v", list)
	}
	if res := call(t, cs, "read_file", map[string]any{"session_id": s.ID, "path": "../../etc/shadow"}); !res.IsError {
		t.Errorf("read_file of ../../etc/shadow: %s", text(res))
	}

	ok(t, cs, "set_clipboard", map[string]any{"session_id": s.ID, "data": "clip from mcp"}, nil)
	var c apitype.Clipboard
	ok(t, cs, "get_clipboard", map[string]any{"session_id": s.ID}, &c)
	if c.Data != "clip from mcp" || c.Size != 13 {
		t.Errorf("get_clipboard: %+v", c)
	}
}
