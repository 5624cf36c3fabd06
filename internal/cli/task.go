package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/control"
	"atelier/internal/tasks"
)

// taskCommands are the subcommands of `atelier task`.
var taskCommands = []command{
	{"run", "give a session a goal, or every session with a label (--follow streams the steps)", runTaskRun},
	{"ls", "list a session's tasks", runTaskList},
	{"show", "show a task and its steps", runTaskShow},
	{"cancel", "cancel a running task", runTaskCancel},
}

// runTask is `atelier task <subcommand>`.
func runTask(ctx context.Context, env *Env, args []string) error {
	return dispatch(ctx, env, "task", taskCommands, args)
}

func runTaskRun(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "task run", `SESSION "GOAL" | --label L "GOAL" [--follow] [--backend B] [--model M] [--max-steps N] [--max-usd X] [--script FILE] [--json]`)
	var spec apitype.TaskSpec
	label := fs.String("label", "", "give the goal to every session with this label, one task each (no SESSION)")
	follow := fs.Bool("follow", false, "stream the steps until the task ends")
	asJSON := fs.Bool("json", false, "print JSON (with --follow: one event per line)")
	script := fs.String("script", "", "a JSON file of protocol-v1 actions to run (the scripted backend)")
	fs.StringVar(&spec.Backend, "backend", "", "holo, anthropic or scripted (default: the fleet's)")
	fs.StringVar(&spec.Model, "model", "", "model id (default: the backend's)")
	fs.IntVar(&spec.MaxSteps, "max-steps", 0, fmt.Sprintf("stop after this many steps (default %d)", tasks.DefaultMaxSteps))
	fs.Float64Var(&spec.MaxUSD, "max-usd", 0, "stop before the task's cost would pass this many USD")
	pos, err := parseRunArgs(fs, args)
	if err != nil {
		return err
	}
	if *label != "" {
		// The label stands in for SESSION: the one argument is the goal.
		if len(pos) > 1 {
			fs.Usage()
			return fmt.Errorf("%w: with --label, give only the goal in quotes", ErrUsage)
		}
		pos = append([]string{""}, pos...)
	}
	if len(pos) > 1 {
		spec.Goal = pos[1]
	} else if *script == "" {
		fs.Usage()
		return fmt.Errorf("%w: give a goal in quotes, or --script FILE", ErrUsage)
	}
	if *script != "" {
		b, err := os.ReadFile(*script)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUsage, err)
		}
		var acts []agentapi.Request
		if err := json.Unmarshal(b, &acts); err != nil {
			return fmt.Errorf("%w: script %s: want a JSON list of actions: %v", ErrUsage, *script, err)
		}
		for _, a := range acts {
			a.V = agentapi.Version
			raw, err := json.Marshal(a)
			if err != nil {
				return fmt.Errorf("%w: script %s: %v", ErrUsage, *script, err)
			}
			spec.Script = append(spec.Script, raw)
		}
	}
	api, err := newAPIClient(env)
	if err != nil {
		return err
	}
	if *label != "" {
		return runBatch(ctx, env, api, apitype.Dispatch{TaskSpec: spec, Label: *label}, *follow, *asJSON)
	}
	sr, err := api.SubmitTask(ctx, pos[0], spec)
	if err != nil {
		return explain(err)
	}
	if !*follow {
		if *asJSON {
			return printJSON(env.Stdout, sr)
		}
		fmt.Fprintf(env.Stdout, "%s %s\nfollow it with: atelier task show %s  (or run with --follow)\n", sr.TaskID, sr.Status, sr.TaskID)
		return nil
	}
	if !*asJSON {
		fmt.Fprintf(env.Stderr, "task %s on %s\n", sr.TaskID, pos[0])
	}
	p := newProgress(env)
	end, err := api.FollowTask(ctx, sr.TaskID, func(ev apitype.TaskEvent) {
		if *asJSON {
			json.NewEncoder(env.Stdout).Encode(ev)
			return
		}
		p.event(ev)
	})
	p.clear()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("stopped following; the task goes on: atelier task cancel %s", sr.TaskID)
		}
		return explain(err)
	}
	if end.Status != apitype.TaskDone {
		return fmt.Errorf("task %s ended %s: %s", sr.TaskID, end.Status, end.Error)
	}
	return nil
}

// parseRunArgs parses flags around SESSION and an optional GOAL (a
// script may stand in for the goal).
func parseRunArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) < 1 || len(pos) > 2 {
		fs.Usage()
		return nil, fmt.Errorf("%w: want SESSION and a goal in quotes, got %d argument(s)", ErrUsage, len(pos))
	}
	return pos, nil
}

// progress prints one line per step, and on a terminal a status line
// (steps, cost, elapsed) kept under them.
type progress struct {
	w     io.Writer
	tty   bool
	t0    time.Time
	steps int
	usd   float64
}

func newProgress(env *Env) *progress {
	return &progress{w: env.Stdout, tty: isTerminal(env.Stdout), t0: time.Now()}
}

func (p *progress) clear() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progress) event(ev apitype.TaskEvent) {
	p.clear()
	switch ev.Type {
	case apitype.EventStep:
		p.steps, p.usd = ev.Step, ev.TotalUSD
		fmt.Fprintf(p.w, "step %d  %s\n", ev.Step, describeStep(ev))
	case apitype.EventEnd:
		p.usd = max(p.usd, ev.TotalUSD)
		line := fmt.Sprintf("%s after %d steps, $%.4f", ev.Status, p.steps, p.usd)
		if ev.Answer != "" {
			line += ": " + ev.Answer
		} else if ev.Error != "" {
			line += ": " + ev.Error
		}
		fmt.Fprintln(p.w, line)
		return
	case apitype.EventPaused, apitype.EventNeedsHelp, apitype.EventResumed:
		fmt.Fprintln(p.w, describeControl(ev))
	}
	if p.tty {
		fmt.Fprintf(p.w, "… %d steps · $%.4f · %.0fs", p.steps, p.usd, time.Since(p.t0).Seconds())
	}
}

// describeStep is one step for people: what was done, how it went, what
// the model thought.
func describeStep(ev apitype.TaskEvent) string {
	var parts []string
	for i, raw := range ev.Actions {
		var a agentapi.Request
		if json.Unmarshal(raw, &a) != nil {
			parts = append(parts, string(raw))
			continue
		}
		s := a.String()
		if a.Text != "" {
			s += fmt.Sprintf(" %q", a.Text)
		}
		if i < len(ev.Results) && !ev.Results[i].OK {
			s += " ✗ " + ev.Results[i].Error
		}
		parts = append(parts, s)
	}
	if ev.Error != "" {
		parts = append(parts, "error: "+ev.Error)
	}
	line := strings.Join(parts, ", ")
	if ev.Thought != "" {
		line += "  — " + firstLine(ev.Thought)
	}
	if ev.StepUSD > 0 {
		line += fmt.Sprintf("  ($%.4f)", ev.StepUSD)
	}
	return line
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func runTaskList(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "task ls", "SESSION [--json]")
	pos, api, asJSON, err := clientCommand(env, fs, args, 1)
	if err != nil {
		return err
	}
	ts, err := api.Tasks(ctx, pos[0])
	if err != nil {
		return explain(err)
	}
	list := apitype.TaskList{Tasks: ts}
	if *asJSON {
		return printJSON(env.Stdout, list)
	}
	rows := make([][]string, len(list.Tasks))
	for i, t := range list.Tasks {
		rows[i] = []string{t.ID, string(t.Status), strconv.Itoa(t.Steps), fmt.Sprintf("$%.4f", t.CostUSD), t.CreatedAt.Local().Format(time.DateTime), firstLine(t.Goal)}
	}
	return printTable(env, fmt.Sprintf("no tasks on %s; start one with: atelier task run %s \"goal\"", pos[0], pos[0]), "ID\tSTATUS\tSTEPS\tCOST\tCREATED\tGOAL", rows)
}

func runTaskShow(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "task show", "TASK [--json]")
	pos, api, asJSON, err := clientCommand(env, fs, args, 1)
	if err != nil {
		return err
	}
	t, err := api.Task(ctx, pos[0])
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return printJSON(env.Stdout, t)
	}
	printFields(env.Stdout, [][2]string{
		{"id", t.ID}, {"session", t.SessionID}, {"status", string(t.Status)}, {"goal", t.Goal},
		{"backend", t.Backend + " " + t.Model}, {"steps", fmt.Sprintf("%d of %d", t.Steps, t.MaxSteps)},
		{"cost", fmt.Sprintf("$%.4f", t.CostUSD)}, {"answer", t.Answer}, {"error", t.Error},
		{"created", t.CreatedAt.Local().Format(time.DateTime)},
	})
	for _, ev := range t.Events {
		switch ev.Type {
		case apitype.EventStep:
			fmt.Fprintf(env.Stdout, "step %d  %s\n", ev.Step, describeStep(ev))
		case apitype.EventPaused, apitype.EventNeedsHelp, apitype.EventResumed:
			fmt.Fprintln(env.Stdout, describeControl(ev))
		}
	}
	return nil
}

// describeControl is a control event for people: a pause, a question, a
// resumption.
func describeControl(ev apitype.TaskEvent) string {
	switch ev.Type {
	case apitype.EventPaused:
		who := "a person"
		if ev.Holder != nil {
			who = ev.Holder.Who
		}
		return "paused: " + who + " took control"
	case apitype.EventNeedsHelp:
		if ev.Question == "" {
			return "needs help: waiting for an answer (atelier handback SESSION --message ANSWER)"
		}
		return fmt.Sprintf("needs help: %s (answer with: atelier handback SESSION --message ANSWER)", ev.Question)
	}
	line := "resumed"
	if ev.Reason == control.WhyIdle {
		line += ": control returned after it sat idle"
	}
	if ev.Message != "" {
		line += fmt.Sprintf(" with the note %q", ev.Message)
	}
	return line
}

func runTaskCancel(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "task cancel", "TASK")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	api, err := newAPIClient(env)
	if err != nil {
		return err
	}
	if _, err := api.CancelTask(ctx, pos[0]); err != nil {
		return explain(err)
	}
	fmt.Fprintf(env.Stdout, "%s cancelling\n", pos[0])
	return nil
}
