package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"atelier/internal/apitype"
)

// snapshotCommands are the subcommands of `atelier snapshot`.
var snapshotCommands = []command{
	{"create", "snapshot a session's home (clone it with session create --from)", runSnapshotCreate},
	{"ls", "list snapshots", runSnapshotList},
	{"rm", "remove a snapshot", runSnapshotRemove},
}

// runSnapshot is `atelier snapshot <subcommand>`.
func runSnapshot(ctx context.Context, env *Env, args []string) error {
	return dispatch(ctx, env, "snapshot", snapshotCommands, args)
}

func runSnapshotCreate(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "snapshot create", "SESSION [--json]")
	pos, c, asJSON, err := clientCommand(env, fs, args, 1)
	if err != nil {
		return err
	}
	stop := startSpinner(env.Stderr, "snapshotting "+pos[0])
	sn, err := c.TakeSnapshot(ctx, pos[0])
	stop()
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return printJSON(env.Stdout, sn)
	}
	fmt.Fprintln(env.Stdout, sn.ID)
	fmt.Fprintf(env.Stderr, "snapshot of %s: %s, %d files, sha256 %s\nclone it with: atelier session create --from %s\n",
		sn.SessionID, formatSize(sn.Size), sn.Files, sn.SHA256, sn.ID)
	return nil
}

func runSnapshotList(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "snapshot ls", "[--json]")
	_, c, asJSON, err := clientCommand(env, fs, args, 0)
	if err != nil {
		return err
	}
	list, err := c.Snapshots(ctx)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return printJSON(env.Stdout, apitype.SnapshotList{Snapshots: list})
	}
	rows := make([][]string, len(list))
	for i, s := range list {
		rows[i] = []string{s.ID, s.SessionID, s.Runtime, formatSize(s.Size), strconv.Itoa(s.Files), s.CreatedAt.Local().Format(time.DateTime)}
	}
	return printTable(env, "no snapshots; take one with: atelier snapshot create SESSION", "ID\tSESSION\tRUNTIME\tSIZE\tFILES\tCREATED", rows)
}

func runSnapshotRemove(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "snapshot rm", "SNAPSHOT")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	c, err := newAPIClient(env)
	if err != nil {
		return err
	}
	if err := c.DeleteSnapshot(ctx, pos[0]); err != nil {
		return explain(err)
	}
	fmt.Fprintln(env.Stderr, "removed", pos[0])
	return nil
}

// formatSize prints a byte count for people.
func formatSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
