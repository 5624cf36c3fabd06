// Package cli implements the atelier command: the fleet server (serve) and
// the client commands that talk to the fleet's API or straight to a
// desktop's agent socket.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"atelier/internal/version"
)

// Env is the world a command runs in, passed down so tests can run commands
// in-process.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// command is one subcommand. run gets the arguments after the command's name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// commands is the whole command surface, in the order help lists it.
var commands = []command{
	{"serve", "run the fleet: the HTTP API and the desktops", runServe},
	{"session", "create, list, show, stop, start, remove sessions; set a theme; screenshot", runSession},
	{"snapshot", "snapshot a session's home; list and remove snapshots", runSnapshot},
	{"act", "run actions (JSON on stdin) on a session through the fleet", runAct},
	{"task", "run a goal on a session (--follow), list, show, cancel tasks", runTask},
	{"takeover", "take a session's control from its task (or nobody) for a person", runTakeover},
	{"handback", "hand a session's control back, with a note or an answer for the task", runHandback},
	{"control", "show who holds a session's control and where its task stands", runControl},
	{"mcp", "serve the fleet's sessions as MCP tools on stdin/stdout (ATELIER_URL, ATELIER_API_TOKEN)", runMCP},
	{"audit", "verify audit files offline; show a session's audit (--follow)", runAudit},
	{"action", "send actions (JSON on stdin) to a desktop's agent socket", runAction},
	{"cp", "copy a file into or out of a session's home: atelier cp LOCAL SESSION:PATH, or SESSION:PATH LOCAL", runCp},
	{"screenshot", "save a screenshot of a desktop", runScreenshot},
	{"version", "print the version", runVersion},
}

// ErrUsage marks an error in how a command was called; main exits 2 on it.
var ErrUsage = errors.New("usage")

// Run runs the command named by args[0].
func Run(ctx context.Context, args []string, env *Env) error {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout)
		if len(args) == 0 {
			return ErrUsage
		}
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	usage(env.Stderr)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: atelier <command> [arguments]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'atelier <command> -h' for a command's flags.")
}

// dispatch runs the subcommand of group (`atelier group <command>`) that
// args[0] names, or lists them and says what is wrong.
func dispatch(ctx context.Context, env *Env, group string, cmds []command, args []string) error {
	if len(args) > 0 {
		for _, c := range cmds {
			if c.name == args[0] {
				return c.run(ctx, env, args[1:])
			}
		}
	}
	fmt.Fprintf(env.Stderr, "usage: atelier %s <command> [arguments]\n\ncommands:\n", group)
	for _, c := range cmds {
		fmt.Fprintf(env.Stderr, "  %-12s %s\n", c.name, c.summary)
	}
	if len(args) == 0 {
		return fmt.Errorf("%w: atelier %s needs a command", ErrUsage, group)
	}
	return fmt.Errorf("%w: unknown %s command %q", ErrUsage, group, args[0])
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints its usage to the command's stderr.
func newFlagSet(env *Env, name, argsUsage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: atelier %s %s\n", name, strings.TrimSpace(argsUsage))
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping a flag error to ErrUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return nil
}

func runVersion(_ context.Context, env *Env, _ []string) error {
	_, err := fmt.Fprintln(env.Stdout, "atelier", version.Version)
	return err
}
