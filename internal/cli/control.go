package cli

import (
	"context"
	"fmt"
	"time"

	"atelier/internal/apitype"
)

// EnvLease names the control lease `atelier act` and `atelier handback`
// use when --lease is not given: `atelier takeover` prints the line that
// sets it.
const EnvLease = "ATELIER_LEASE"

// runTakeover is `atelier takeover SESSION`: take the session's control
// for a person. A running task pauses; input actions then need the lease.
func runTakeover(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "takeover", "SESSION [--json]")
	pos, c, asJSON, err := clientCommand(env, fs, args, 1)
	if err != nil {
		return err
	}
	lease, err := c.TakeOver(ctx, pos[0])
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return printJSON(env.Stdout, lease)
	}
	paused := ""
	if lease.PausedTask != "" {
		paused = lease.PausedTask + " (paused until you hand back)"
	}
	printFields(env.Stdout, [][2]string{
		{"lease", lease.ID},
		{"session", lease.Session},
		{"paused task", paused},
		{"returns after", fmt.Sprint(time.Duration(lease.IdleSeconds*float64(time.Second))) + " without input"},
	})
	fmt.Fprintf(env.Stderr, "\nYou have control. Input actions need the lease:\n  export %s=%s\nHand back with: atelier handback %s --message '...'\n",
		EnvLease, lease.ID, lease.Session)
	return nil
}

// runHandback is `atelier handback SESSION [--lease L] [--message M]`: end
// a person's control (or answer a task that asked for help) and let the
// task resume.
func runHandback(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "handback", "SESSION [--lease LEASE] [--message TEXT] [--json]")
	lease := fs.String("lease", env.Getenv(EnvLease), "the lease `atelier takeover` printed (env "+EnvLease+")")
	message := fs.String("message", "", "a note for the task's model, or the answer to its question")
	pos, c, asJSON, err := clientCommand(env, fs, args, 1)
	if err != nil {
		return err
	}
	st, err := c.HandBack(ctx, pos[0], *lease, *message)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return printJSON(env.Stdout, st)
	}
	return printControl(env, st)
}

// runControl is `atelier control SESSION`: who holds the session's control.
func runControl(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "control", "SESSION [--json]")
	pos, c, asJSON, err := clientCommand(env, fs, args, 1)
	if err != nil {
		return err
	}
	st, err := c.Control(ctx, pos[0])
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return printJSON(env.Stdout, st)
	}
	return printControl(env, st)
}

func printControl(env *Env, st apitype.ControlState) error {
	holder := "nobody"
	if h := st.Holder; h != nil {
		holder = fmt.Sprintf("%s %s since %s", h.Kind, h.Who, h.Since.Local().Format(time.TimeOnly))
	}
	return printFields(env.Stdout, [][2]string{
		{"session", st.Session},
		{"holder", holder},
		{"task", st.Task},
		{"task state", st.TaskState},
		{"question", st.Question},
	})
}
