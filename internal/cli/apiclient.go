package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"atelier/internal/client"
	"atelier/internal/config"
)

// newAPIClient returns a client of the fleet named by ATELIER_URL, with
// ATELIER_API_TOKEN.
func newAPIClient(env *Env) (*client.Client, error) {
	c, err := config.LoadClient(env.Getenv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return client.New(c.URL, c.Token, nil), nil
}

// clientCommand declares --json on fs, parses args for n positional
// arguments and returns them with a client of the fleet: the start of
// every command that asks the API one thing.
func clientCommand(env *Env, fs *flag.FlagSet, args []string, n int) ([]string, *client.Client, *bool, error) {
	asJSON := fs.Bool("json", false, "print the fleet's JSON answer")
	pos, err := parseArgs(fs, args, n)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := newAPIClient(env)
	return pos, c, asJSON, err
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, and returns the latter.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseArgs is parseInterspersed that also checks the count of positional
// arguments.
func parseArgs(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != positional {
		fs.Usage()
		return nil, fmt.Errorf("%w: want %d argument(s), got %d", ErrUsage, positional, len(pos))
	}
	return pos, nil
}

// printJSON writes v indented, for scripts.
func printJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

// isTerminal reports whether w is a terminal: progress goes only there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// startSpinner shows msg with a spinner on w while the caller waits, if w
// is a terminal; the returned func stops it and clears the line.
func startSpinner(w io.Writer, msg string) (stop func()) {
	if !isTerminal(w) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		t0 := time.Now()
		for i := 0; ; i++ {
			fmt.Fprintf(w, "\r%s %s %.0fs ", frames[i%len(frames)], msg, time.Since(t0).Seconds())
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// explain turns a fleet's error into one line for people.
func explain(err error) error {
	if ce, ok := errors.AsType[*client.Error](err); ok {
		msg := ce.Message
		if ce.Code == "unauthorized" {
			msg += " (set " + config.EnvToken + ")"
		}
		return errors.New(strings.TrimSpace(msg))
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("no fleet answers (%w): start one with 'atelier serve', or set %s", err, config.EnvURL)
	}
	return err
}
