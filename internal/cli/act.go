package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxActStdin bounds what `atelier act` reads from stdin.
const maxActStdin = 4 << 20

// runAct is `atelier act SESSION`: it sends the actions on stdin (one action
// object, a list, or {"actions": [...], "observe": true}, "v" optional) to
// the session through the fleet, and prints the results.
func runAct(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "act", "SESSION [--json] [--observe FILE] < actions.json")
	asJSON := fs.Bool("json", false, "print the fleet's JSON answer")
	observe := fs.String("observe", "", "also take a screenshot after the actions and write it to FILE")
	lease := fs.String("lease", env.Getenv(EnvLease), "your control lease, while you hold the session (env "+EnvLease+")")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	in, err := io.ReadAll(io.LimitReader(env.Stdin, maxActStdin+1))
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if len(in) > maxActStdin {
		return fmt.Errorf("%w: stdin is over %d bytes", ErrUsage, maxActStdin)
	}
	if len(strings.TrimSpace(string(in))) == 0 {
		return fmt.Errorf("%w: stdin is empty: send an action as JSON, such as {\"action\":\"type\",\"text\":\"hi\"}", ErrUsage)
	}
	if !json.Valid(in) {
		return fmt.Errorf("%w: stdin is not one JSON value", ErrUsage)
	}
	body := json.RawMessage(in)
	if *observe != "" {
		if body, err = withObserve(in); err != nil {
			return err
		}
	}
	c, err := newAPIClient(env)
	if err != nil {
		return err
	}
	res, err := c.ActWithLease(ctx, pos[0], *lease, body)
	if err != nil {
		return explain(err)
	}
	if *observe != "" && res.Observation != nil {
		if err := writeOutput(env, *observe, res.Observation.Data); err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(env.Stdout, res)
	}
	for i, r := range res.Results {
		line := fmt.Sprintf("%d %s ok", i, r.Action)
		if r.Error != nil {
			line = fmt.Sprintf("%d %s failed: %s (%s)", i, r.Action, r.Error.Message, r.Error.Code)
		}
		if r.Cursor != nil {
			line += fmt.Sprintf(" cursor=[%d,%d]", r.Cursor[0], r.Cursor[1])
		}
		if r.Image != nil {
			line += fmt.Sprintf(" image=%dx%d", r.Image.Width, r.Image.Height)
		}
		fmt.Fprintf(env.Stdout, "%s %.1fms\n", line, r.TookMS)
	}
	if o := res.Observation; o != nil && *observe != "" {
		fmt.Fprintf(env.Stdout, "observation %s (%dx%d, scale %g)\n", *observe, o.Width, o.Height, o.Scale)
	}
	if !res.OK {
		return fmt.Errorf("an action failed; %d of the actions ran", len(res.Results))
	}
	return nil
}

// withObserve wraps an actions body in the long form with observe set.
func withObserve(in []byte) (json.RawMessage, error) {
	s := strings.TrimSpace(string(in))
	var long map[string]json.RawMessage
	if strings.HasPrefix(s, "{") && json.Unmarshal(in, &long) == nil {
		if _, ok := long["actions"]; ok {
			long["observe"] = json.RawMessage("true")
			return json.Marshal(long)
		}
	}
	var actions json.RawMessage = in
	if strings.HasPrefix(s, "{") {
		actions = json.RawMessage("[" + s + "]")
	}
	return json.Marshal(map[string]any{"actions": actions, "observe": true})
}

// writeFile writes data to path through a temporary file, so a reader never
// sees half an image.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
