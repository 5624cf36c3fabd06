// Package internal_test holds the tests of the module's package boundaries
// (research/aesthetics.md §8, §9 rule 15): who may import whom, what the
// in-desktop agent may link, and that every package says what it provides.
package internal_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Deps       []string
	GoFiles    []string
}

const mod = "atelier/"

// packages lists the module's packages (not their tests) with go list.
func packages(t *testing.T) []pkg {
	t.Helper()
	// -e: a package another engineer is halfway through still lists; the
	// build of that package is its own tests' concern.
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Name,Doc,Imports,Deps,GoFiles", "atelier/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	d := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := d.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; the rules below would prove nothing", len(pkgs))
	}
	return pkgs
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// isStd reports whether an import path is the standard library's.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".") && !under(path, "atelier")
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range packages(t) {
		// A directory of tests only (such as this one) is not a package.
		if len(p.GoFiles) > 0 && strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment: say what it provides", p.ImportPath)
		}
	}
}

func TestImportRules(t *testing.T) {
	// config is not a leaf: it parses the price table with package model
	// and names the default image after the version.
	leaves := []string{"atelier/desktop", "atelier/internal/agentapi", "atelier/internal/apitype", "atelier/internal/audit", "atelier/internal/version"}
	for _, p := range packages(t) {
		path := p.ImportPath
		imports := func(target string) bool {
			return slices.ContainsFunc(p.Imports, func(i string) bool { return under(i, target) })
		}
		if !under(path, "atelier/cmd") && imports("atelier/internal/cli") {
			t.Errorf("%s imports internal/cli: only cmd/ may", path)
		}
		if path != "atelier/internal/fleet" && imports("atelier/internal/api") {
			t.Errorf("%s imports internal/api: only the composition root (internal/fleet) may", path)
		}
		if !under(path, "atelier/internal/cli") && !under(path, "atelier/internal/fleettest") && imports("atelier/internal/fleet") {
			t.Errorf("%s imports internal/fleet: only atelier serve (internal/cli) and the test fleets may", path)
		}
		// Runtimes know desktops, not the fleet's domain: checked over every
		// dependency, not just imports, so nothing drags the store in
		// through a package in between.
		if under(path, "atelier/internal/runtime") {
			for _, d := range p.Deps {
				for _, banned := range []string{"atelier/internal/sessions", "atelier/internal/tasks", "atelier/internal/api", "atelier/internal/store", "atelier/internal/cli", "database/sql", "modernc.org/sqlite"} {
					// database/sql/driver is interfaces only, which UUID
					// types implement (client-go's apimachinery has one).
					if under(d, banned) && d != "database/sql/driver" {
						t.Errorf("%s depends on %s: runtimes know desktops, not the fleet's domain", path, d)
					}
				}
			}
		}
		// The runtime contract itself is a leaf but for the desktop's definition.
		if path == "atelier/internal/runtime" {
			for _, d := range p.Deps {
				if !isStd(d) && d != "atelier/desktop" {
					t.Errorf("%s depends on %s: the runtime contract uses the standard library and desktop only", path, d)
				}
			}
		}
		for _, domain := range []string{"atelier/internal/sessions", "atelier/internal/tasks", "atelier/internal/budget", "atelier/internal/store"} {
			if under(path, domain) && imports("atelier/internal/api") {
				t.Errorf("%s imports internal/api: data flows from api into domain packages, never back", path)
			}
		}
		// homefs is the runtimes' shared mechanism: it knows filesystems
		// and the runtime contract's report of them, not sessions or either
		// runtime.
		if under(path, "atelier/internal/homefs") {
			for _, d := range p.Deps {
				if under(d, "atelier") && d != "atelier/internal/runtime" && d != "atelier/desktop" {
					t.Errorf("%s depends on %s: homefs stands on the standard library, x/sys and the runtime contract alone", path, d)
				}
			}
		}
		// Metrics are wired in, not woven through: client_golang is
		// imported by internal/metrics alone, and the domain packages see
		// it through interfaces of their own.
		if path != "atelier/internal/metrics" && imports("github.com/prometheus") {
			t.Errorf("%s imports client_golang: only internal/metrics may", path)
		}
		// Traces likewise: the SDK and its exporter are set up by
		// internal/tracing alone; the others start spans through the API.
		for _, sdk := range []string{"go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters"} {
			if path != "atelier/internal/tracing" && imports(sdk) {
				t.Errorf("%s imports %s: only internal/tracing may", path, sdk)
			}
		}
		for _, domain := range []string{"atelier/internal/sessions", "atelier/internal/tasks", "atelier/internal/budget", "atelier/internal/store", "atelier/internal/audit"} {
			if under(path, domain) && slices.ContainsFunc(p.Deps, func(d string) bool { return under(d, "atelier/internal/metrics") || under(d, "github.com/prometheus") }) {
				t.Errorf("%s depends on the metrics: domain packages report through their own interfaces", path)
			}
		}
		if slices.Contains(leaves, path) {
			for _, d := range p.Deps {
				if !isStd(d) {
					t.Errorf("%s is a leaf but depends on %s: leaves use the standard library only", path, d)
				}
			}
		}
		if under(path, "atelier/cmd/atelier-agent") {
			for _, d := range p.Deps {
				for _, banned := range []string{"database/sql", "modernc.org/sqlite", "github.com/moby", "github.com/docker", "github.com/anthropics", "github.com/openai", "k8s.io"} {
					if under(d, banned) {
						t.Errorf("atelier-agent links %s (via its deps): the in-desktop binary stays small", d)
					}
				}
			}
		}
	}
}
