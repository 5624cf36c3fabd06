package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"atelier/internal/api"
	"atelier/internal/apitype"
	"atelier/internal/cli"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
)

const token = "cli-test-token-0123456789"

// fleet serves the API over a fake runtime: these tests cover the CLI's
// parsing and printing; fleettest's tests cover real desktops.
func fleet(t *testing.T) string {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: sessionstest.New(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api.New(api.Options{Sessions: m, Token: token}).Handler())
	t.Cleanup(func() { hs.Close(); m.Close(); st.Close() })
	return hs.URL
}

func run(t *testing.T, url, tok string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &cli.Env{
		Getenv: func(k string) string {
			return map[string]string{"ATELIER_URL": url, "ATELIER_API_TOKEN": tok}[k]
		},
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
	}
	err := cli.Run(t.Context(), args, env)
	return out.String(), errOut.String(), err
}

func TestSessionCommands(t *testing.T) {
	url := fleet(t)
	out, _, err := run(t, url, token, "session", "create", "--label", "alice", "--resolution", "1024x768", "--wait=false", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s apitype.Session
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.ID == "" || s.Label != "alice" || s.Resolution != "1024x768" {
		t.Fatalf("create --json printed %q (%v)", out, err)
	}
	out, _, err = run(t, url, token, "session", "ls")
	if err != nil || !strings.Contains(out, s.ID) || !strings.Contains(out, "alice") || !strings.HasPrefix(out, "ID") {
		t.Errorf("ls: %v\n%s", err, out)
	}
	out, _, err = run(t, url, token, "session", "show", s.ID)
	if err != nil || !strings.Contains(out, "1024x768") || !strings.Contains(out, "home        1.5 MiB used of 10.0 GiB (9.7 GiB free)") {
		t.Errorf("show: %v\n%s", err, out)
	}
	// Flags after the arguments work too.
	out, _, err = run(t, url, token, "session", "theme", s.ID, "graphite", "--json")
	if err != nil || !strings.Contains(out, `"theme": "graphite"`) {
		t.Errorf("theme: %v\n%s", err, out)
	}
	if out, _, err = run(t, url, token, "session", "stop", s.ID); err != nil || !strings.Contains(out, "stopped") {
		t.Errorf("stop: %v\n%s", err, out)
	}
	if out, _, err = run(t, url, token, "session", "rm", s.ID, "--purge"); err != nil || !strings.Contains(out, "home deleted") {
		t.Errorf("rm: %v\n%s", err, out)
	}
	if out, _, err = run(t, url, token, "session", "ls", "--json"); err != nil || !strings.Contains(out, `"sessions": []`) {
		t.Errorf("ls --json after rm: %v\n%s", err, out)
	}
}

func TestCommandErrors(t *testing.T) {
	url := fleet(t)
	tests := []struct {
		name  string
		tok   string
		args  []string
		usage bool
		want  string
	}{
		{"wrong token", "wrong-token-0123456789", []string{"session", "ls"}, false, "ATELIER_API_TOKEN"},
		{"unknown session", token, []string{"session", "show", "sess_aaaaaaaaaaaaaaaaaaaaaaaaaa"}, false, "no such session"},
		{"bad theme", token, []string{"session", "create", "--theme", "Neon!", "--wait=false"}, false, "theme"},
		{"missing id", token, []string{"session", "show"}, true, "argument"},
		{"extra argument", token, []string{"session", "ls", "x"}, true, "argument"},
		{"unknown subcommand", token, []string{"session", "fly"}, true, "fly"},
		{"act without id", token, []string{"act"}, true, "argument"},
		{"act on nothing", token, []string{"act", "sess_aaaaaaaaaaaaaaaaaaaaaaaaaa"}, true, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := run(t, url, tt.tok, tt.args...)
			if err == nil {
				t.Fatalf("succeeded: %s", out)
			}
			if errors.Is(err, cli.ErrUsage) != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", errors.Is(err, cli.ErrUsage), tt.usage, err)
			}
			if msg := err.Error() + errOut; !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
		})
	}
	if _, _, err := run(t, "http://127.0.0.1:1", token, "session", "ls"); err == nil || !strings.Contains(err.Error(), "atelier serve") {
		t.Errorf("without a fleet: %v", err)
	}
}
