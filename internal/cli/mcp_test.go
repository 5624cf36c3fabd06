package cli_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/apitype"
	"atelier/internal/cli"
	"atelier/internal/mcp"
)

// TestMCPStdio runs atelier mcp with its stdin and stdout piped to the
// SDK's client: the tools answer with the fleet's sessions over stdio,
// and a bad argument is a tool error. (internal/mcp's tests drive a real
// desktop through the same server.)
func TestMCPStdio(t *testing.T) {
	url := fleet(t)
	out, _, err := run(t, url, token, "session", "create", "--label", "bob", "--wait=false", "--json")
	var s apitype.Session
	if err != nil || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("create: %v %q", err, out)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	var errOut strings.Builder
	go func() {
		env := &cli.Env{Getenv: func(k string) string {
			return map[string]string{"ATELIER_URL": url, "ATELIER_API_TOKEN": token}[k]
		}, Stdin: inR, Stdout: outW, Stderr: &errOut}
		done <- cli.Run(t.Context(), []string{"mcp"}, env)
		outW.Close()
	}()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(), &sdk.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "list_sessions"})
	if err != nil || res.IsError {
		t.Fatalf("list_sessions: %v %+v", err, res)
	}
	var list mcp.SessionList
	b, _ := json.Marshal(res.StructuredContent)
	if json.Unmarshal(b, &list) != nil || len(list.Sessions) != 1 || list.Sessions[0].ID != s.ID || list.Sessions[0].Label != "bob" {
		t.Errorf("list_sessions: %s, want just %s", b, s.ID)
	}
	res, err = cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "screenshot", Arguments: map[string]any{"session_id": 7}})
	if err != nil || !res.IsError {
		t.Errorf("screenshot with a number for session_id: %v %+v, want a tool error", err, res)
	}
	cs.Close() // closes the command's stdin: it ends
	if err := <-done; err != nil {
		t.Errorf("atelier mcp ended with %v (stderr %q)", err, errOut.String())
	}
}
