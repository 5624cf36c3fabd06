package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"atelier/desktop"
	"atelier/internal/agentapi"
	"atelier/internal/cli"
	"atelier/internal/desktoptest"
)

// agentCLI runs atelier in-process with stdin and returns stdout and stderr.
func agentCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := cli.Run(t.Context(), args, &cli.Env{
		Getenv: func(string) string { return "" },
		Stdin:  strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
	})
	return stdout.String(), stderr.String(), err
}

func responses(t *testing.T, stdout string) []agentapi.Response {
	t.Helper()
	var out []agentapi.Response
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var r agentapi.Response
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("stdout line %q is not a response: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func decodeImage(t *testing.T, path string) (string, image.Rectangle) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, format, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return format, img.Bounds()
}

func TestActionAndScreenshotCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: starts a real desktop")
	}
	d := desktoptest.Start(t, desktoptest.Options{})
	sock := filepath.Join(d.RunDir, desktop.AgentSocket)
	cursor := func(t *testing.T) agentapi.Point {
		out, _, err := agentCLI(t, `{"action":"cursor_position"}`, "action", "--socket", sock)
		if err != nil {
			t.Fatal(err)
		}
		return *responses(t, out)[0].Cursor
	}

	t.Run("one action, v left out", func(t *testing.T) {
		out, _, err := agentCLI(t, `{"action":"mouse_move","coordinate":[40,50]}`, "action", "--socket", sock)
		if err != nil {
			t.Fatal(err)
		}
		if r := responses(t, out); len(r) != 1 || !r[0].OK || *r[0].Cursor != (agentapi.Point{X: 40, Y: 50}) {
			t.Errorf("responses %+v, want one ok with the cursor at 40,50", r)
		}
	})

	t.Run("a list with a screenshot", func(t *testing.T) {
		shot := filepath.Join(t.TempDir(), "shot.png")
		in := `[{"v":1,"action":"mouse_move","coordinate":[7,8]},{"action":"screenshot"},{"action":"screenshot","format":"jpeg","scale":0.5}]`
		out, _, err := agentCLI(t, in, "action", "--socket", sock, "-o", shot)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "PNG") || strings.Contains(out, "JFIF") {
			t.Error("image bytes went to stdout")
		}
		r := responses(t, out)
		if len(r) != 3 || *r[0].Cursor != (agentapi.Point{X: 7, Y: 8}) || r[1].Image == nil || r[2].Image == nil {
			t.Fatalf("responses %+v, want a move and two screenshots", r)
		}
		if f, b := decodeImage(t, shot); f != "png" || b.Dx() != 1280 || b.Dy() != 720 {
			t.Errorf("%s: %s %v, want a 1280x720 png", shot, f, b)
		}
		second := filepath.Join(filepath.Dir(shot), "shot-2.png")
		if f, b := decodeImage(t, second); f != "jpeg" || b.Dx() != 640 || b.Dy() != 360 {
			t.Errorf("%s: %s %v, want a 640x360 jpeg", second, f, b)
		}
	})

	t.Run("a bad action in a list sends none", func(t *testing.T) {
		before := cursor(t)
		for _, in := range []string{
			`[{"action":"mouse_move","coordinate":[300,300]},{"v":2,"action":"cursor_position"}]`,
			`[{"action":"mouse_move","coordinate":[300,300]},{"action":"fly"}]`,
			`[{"action":"mouse_move","coordinate":[300,300]},{"action":"key","text":"a","extra":1}]`,
			`[{"action":"mouse_move","coordinate":[300,300]}, 42]`,
			`{"action":"mouse_move","coordinate":[300,300]`,
			`[]`,
		} {
			out, _, err := agentCLI(t, in, "action", "--socket", sock)
			if err == nil || out != "" {
				t.Errorf("input %s: err %v, stdout %q; want an error and nothing sent", in, err, out)
			}
		}
		if got := cursor(t); got != before {
			t.Errorf("the cursor moved from %v to %v: a refused list was sent", before, got)
		}
	})

	t.Run("an agent error fails the command", func(t *testing.T) {
		in := `[{"action":"left_click","coordinate":[5000,5]},{"action":"mouse_move","coordinate":[9,9]}]`
		out, _, err := agentCLI(t, in, "action", "--socket", sock)
		var apiErr *agentapi.Error
		if !errors.As(err, &apiErr) || apiErr.Code != agentapi.CodeBadCoordinate {
			t.Fatalf("err = %v, want bad_coordinate", err)
		}
		if r := responses(t, out); len(r) != 1 || r[0].OK || r[0].Error.Code != agentapi.CodeBadCoordinate {
			t.Errorf("responses %+v, want the one failed response and nothing after it", r)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		dir := t.TempDir()
		png, jpg := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.jpg")
		if _, _, err := agentCLI(t, "", "screenshot", "--socket", sock, "-o", png); err != nil {
			t.Fatal(err)
		}
		if f, b := decodeImage(t, png); f != "png" || b.Dx() != 1280 || b.Dy() != 720 {
			t.Errorf("%s %v, want a 1280x720 png", f, b)
		}
		if _, _, err := agentCLI(t, "", "screenshot", "--socket", sock, "-o", jpg, "--format", "jpeg", "--scale", "0.5"); err != nil {
			t.Fatal(err)
		}
		if f, b := decodeImage(t, jpg); f != "jpeg" || b.Dx() != 640 || b.Dy() != 360 {
			t.Errorf("%s %v, want a 640x360 jpeg", f, b)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "x.png")
		for _, args := range [][]string{
			{"action"},
			{"action", "--socket", sock, "extra"},
			{"screenshot", "--socket", sock},
			{"screenshot", "-o", out},
			{"screenshot", "--socket", sock, "-o", out, "--scale", "2"},
			{"screenshot", "--socket", sock, "-o", out, "--format", "gif"},
		} {
			if _, _, err := agentCLI(t, "", args...); !errors.Is(err, cli.ErrUsage) {
				t.Errorf("atelier %s: err = %v, want a usage error", strings.Join(args, " "), err)
			}
		}
		if _, err := os.Stat(out); err == nil {
			t.Error("a refused screenshot wrote its file")
		}
	})
}
