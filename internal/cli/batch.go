package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"atelier/internal/apitype"
	"atelier/internal/client"
)

// runBatch is `atelier task run --label L GOAL`: one task per session,
// each session's outcome printed; --follow streams every member's steps
// until all end.
func runBatch(ctx context.Context, env *Env, api *client.Client, d apitype.Dispatch, follow, asJSON bool) error {
	b, err := api.Dispatch(ctx, d)
	if err != nil {
		return explain(err)
	}
	if asJSON && !follow {
		return printJSON(env.Stdout, b)
	}
	if !asJSON {
		printBatch(env, b)
	}
	if !follow {
		fmt.Fprintf(env.Stdout, "batch %s\nfollow it with: atelier task show TASK, or run with --follow\n", b.ID)
		return nil
	}
	end, err := api.FollowBatch(ctx, b.ID, func(ev apitype.BatchEvent) {
		if asJSON {
			json.NewEncoder(env.Stdout).Encode(ev)
			return
		}
		switch ev.Event.Type {
		case apitype.EventStep:
			fmt.Fprintf(env.Stdout, "%s  step %d  %s\n", ev.SessionID, ev.Event.Step, describeStep(*ev.Event))
		case apitype.EventEnd:
			fmt.Fprintf(env.Stdout, "%s  %s\n", ev.SessionID, ev.Event.Status)
		default:
			fmt.Fprintf(env.Stdout, "%s  %s\n", ev.SessionID, describeControl(*ev.Event))
		}
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("stopped following; the tasks go on (batch %s)", b.ID)
		}
		return explain(err)
	}
	if asJSON {
		return json.NewEncoder(env.Stdout).Encode(apitype.BatchEvent{Batch: &end})
	}
	var counts []string
	for k, n := range end.Counts {
		counts = append(counts, fmt.Sprintf("%d %s", n, k))
	}
	fmt.Fprintf(env.Stdout, "batch %s ended: %s\n", end.ID, strings.Join(counts, ", "))
	if end.Counts[string(apitype.TaskDone)] != len(end.Members) {
		return fmt.Errorf("batch %s: not every session finished the goal", end.ID)
	}
	return nil
}

// printBatch prints each member session's outcome.
func printBatch(env *Env, b apitype.Batch) {
	rows := make([][]string, len(b.Members))
	for i, m := range b.Members {
		task, note := "-", m.Message
		if m.Task != nil {
			task, note = m.Task.ID, string(m.Task.Status)
		}
		rows[i] = []string{m.SessionID, m.Outcome, task, firstLine(note)}
	}
	printTable(env, "no sessions", "SESSION\tOUTCOME\tTASK\tNOTE", rows)
}
