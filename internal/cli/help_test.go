package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateHelp = flag.Bool("update", false, "rewrite the CLI help goldens in testdata/help")

// helpGroups are the commands with subcommands of their own.
var helpGroups = map[string][]command{
	"session":  sessionCommands,
	"snapshot": snapshotCommands,
	"task":     taskCommands,
	"audit":    auditCommands,
}

// TestHelpGoldens freezes every command's help: the CLI is a contract
// scripts depend on, so a change to it shows in review as a golden's diff.
// Run `go test ./internal/cli -run TestHelpGoldens -update` after a
// deliberate change, and note it in CHANGELOG.md.
func TestHelpGoldens(t *testing.T) {
	calls := [][]string{{"help"}}
	for _, c := range commands {
		if sub, ok := helpGroups[c.name]; ok {
			calls = append(calls, []string{c.name})
			for _, s := range sub {
				calls = append(calls, []string{c.name, s.name, "-h"})
			}
			continue
		}
		calls = append(calls, []string{c.name, "-h"})
	}
	seen := map[string]bool{}
	for _, args := range calls {
		name := strings.Join(args, "_")
		name = strings.TrimSuffix(strings.TrimSuffix(name, "_-h"), "_help")
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			env := &Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
			Run(context.Background(), args, env) // help exits with ErrUsage or flag.ErrHelp; the text is what counts
			got := out.String()
			if got == "" {
				t.Fatalf("atelier %s printed no help", strings.Join(args, " "))
			}
			file := filepath.Join("testdata", "help", name+".txt")
			seen[filepath.Base(file)] = true
			if *updateHelp {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to write the golden)", err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("help of atelier %s changed (-golden +now); if meant, run with -update and note it in CHANGELOG.md:\n%s", strings.Join(args, " "), d)
			}
		})
	}
	// A golden whose command is gone is a removed contract: say so.
	files, _ := filepath.Glob(filepath.Join("testdata", "help", "*.txt"))
	for _, f := range files {
		if !seen[filepath.Base(f)] && !*updateHelp {
			t.Errorf("%s has no command any more: remove it (and note the removal in CHANGELOG.md)", f)
		}
	}
}
