package api_test

import (
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/apitype"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.json from the routes")

// splitPattern is a route pattern as OpenAPI names it: lower-case method,
// and a {path} parameter for a subtree ("/view/assets/") or a wildcard
// ("{path...}").
func splitPattern(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	if strings.HasSuffix(path, "/") {
		path += "{path}"
	}
	return strings.ToLower(method), strings.ReplaceAll(path, "...}", "}")
}

// TestOpenAPIMatchesRoutes: the document served, without a token, lists
// exactly the registered routes, each with its success and error answers.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do(t, http.MethodGet, "/openapi.json", "", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json without a token: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var d document
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, p := range f.srv.Patterns() {
		m, path := splitPattern(p)
		want = append(want, m+" "+path)
	}
	for path, ops := range d.Paths {
		for m, op := range ops {
			got = append(got, m+" "+path)
			if _, ok := op.Responses["500"]; !ok {
				t.Errorf("%s %s documents no 500", m, path)
			}
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("document's operations differ from the routes (-routes +document):\n%s", diff)
	}
}

// TestOpenAPIGolden freezes the document: a change to the contract shows
// in review as a change to testdata/openapi.json (go test -update).
func TestOpenAPIGolden(t *testing.T) {
	f := newFixture(t)
	_, body := f.do(t, http.MethodGet, "/openapi.json", "")
	golden := filepath.Join("testdata", "openapi.json")
	if *update {
		if err := os.WriteFile(golden, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/api -run OpenAPIGolden -update)", err)
	}
	if diff := cmp.Diff(string(want), string(body)); diff != "" {
		t.Errorf("the OpenAPI document changed; if on purpose, run with -update (-golden +served):\n%s", diff)
	}
}

// TestErrorCodeEnum: the document's ErrorCode enum is every Code constant
// apitype declares (read from its source, so a new one cannot be left
// out of apitype.Codes), and every agent code the API passes on is one.
func TestErrorCodeEnum(t *testing.T) {
	declared := codeConstants(t, filepath.Join("..", "apitype"))
	if len(declared) < 20 {
		t.Fatalf("found only %d Code constants in apitype: %v", len(declared), declared)
	}
	d, err := fetchDoc(newFixture(t).srv.Handler())
	if err != nil {
		t.Fatal(err)
	}
	var enum struct{ Enum []string }
	if err := json.Unmarshal(d.Components.Schemas["ErrorCode"], &enum); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(declared, enum.Enum); diff != "" {
		t.Errorf("ErrorCode enum differs from apitype's Code constants (-declared +enum):\n%s", diff)
	}
	if diff := cmp.Diff(declared, apitype.Codes()); diff != "" {
		t.Errorf("apitype.Codes() differs from its Code constants (-declared +Codes):\n%s", diff)
	}
	// The agent's codes reach clients in action results and refusals.
	for _, c := range codeConstants(t, filepath.Join("..", "agentapi")) {
		if !slices.Contains(declared, c) {
			t.Errorf("agent code %q is not an apitype code", c)
		}
	}
}

// codeConstants parses the Go files of dir (tests aside) and returns the
// sorted values of its string constants named Code*.
func codeConstants(t *testing.T, dir string) []string {
	t.Helper()
	fset := gotoken.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != gotoken.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != gotoken.STRING {
						t.Fatalf("%s: %s is not a string literal", fset.Position(id.Pos()), id.Name)
					}
					v, _ := strconv.Unquote(lit.Value)
					out = append(out, v)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
