package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"atelier/internal/audit"
	"atelier/internal/client"
	"atelier/internal/config"
)

// auditCommands are the subcommands of `atelier audit`.
var auditCommands = []command{
	{"verify", "check audit files offline: the chain of every line (--all or one session)", runAuditVerify},
	{"show", "print a session's audit through the fleet (--follow streams new entries)", runAuditShow},
}

// runAudit is `atelier audit <subcommand>`.
func runAudit(ctx context.Context, env *Env, args []string) error {
	return dispatch(ctx, env, "audit", auditCommands, args)
}

// auditDir is where a fleet with data dir dir keeps its audit files.
func auditDir(dataDir string) string { return filepath.Join(dataDir, "audit") }

// runAuditVerify walks audit files on disk, trusting no server: one line
// per file, and an error (exit 1) if any file is broken.
func runAuditVerify(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "audit verify", "--data-dir DIR (SESSION | --all)")
	dataDir := fs.String("data-dir", env.Getenv(config.EnvDataDir), "the fleet's data dir (env "+config.EnvDataDir+")")
	all := fs.Bool("all", false, "verify every session's file")
	// parseArgs wants a fixed count; here it depends on --all.
	var pos []string
	for rest := args; ; rest = fs.Args()[1:] {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
	}
	if len(pos) != 1-btoi(*all) {
		fs.Usage()
		return fmt.Errorf("%w: give one session or --all", ErrUsage)
	}
	if *dataDir == "" {
		return fmt.Errorf("%w: audit verify needs --data-dir or %s", ErrUsage, config.EnvDataDir)
	}
	dir := auditDir(*dataDir)
	var files []string
	if *all {
		var err error
		if files, err = filepath.Glob(filepath.Join(dir, "*.jsonl")); err != nil {
			return err
		}
		if len(files) == 0 {
			if _, err := os.Stat(dir); err != nil {
				return fmt.Errorf("audit verify: %w", err)
			}
			fmt.Fprintf(env.Stdout, "no audit files in %s\n", dir)
			return nil
		}
	} else {
		if err := audit.CheckSession(pos[0]); err != nil {
			return fmt.Errorf("%w: %v", ErrUsage, err)
		}
		files = []string{filepath.Join(dir, pos[0]+".jsonl")}
	}
	broken := 0
	for _, f := range files {
		rep, err := verifyFile(f)
		if err != nil {
			broken++
			fmt.Fprintf(env.Stdout, "BROKEN %v\n", err)
			continue
		}
		fmt.Fprintf(env.Stdout, "ok %s: %d entries, %d repairs, last seq %d, last hash %s\n",
			rep.File, rep.Entries, rep.Repairs, rep.LastSeq, rep.LastHash)
	}
	if broken > 0 {
		return fmt.Errorf("audit verify: %d of %d files broken", broken, len(files))
	}
	return nil
}

// verifyFile verifies path. A running fleet may be writing the last line
// as it is read, so a torn last line is looked at once more before it is
// reported.
func verifyFile(path string) (audit.Report, error) {
	rep, err := audit.Verify(path)
	if brk, ok := errors.AsType[*audit.Break](err); ok && brk.Problem == audit.ProblemTorn {
		time.Sleep(200 * time.Millisecond)
		rep, err = audit.Verify(path)
	}
	return rep, err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// runAuditShow prints a session's audit from GET /sessions/{id}/audit,
// which answers JSONL, one entry per line.
func runAuditShow(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "audit show", "SESSION [--follow] [--kind K[,K]] [--since SEQ|TIME] [--limit N] [--json]")
	follow := fs.Bool("follow", false, "keep streaming new entries until interrupted")
	kind := fs.String("kind", "", "only these kinds: "+fmt.Sprint(audit.Kinds))
	since := fs.String("since", "", "only entries after this seq, or at or after this RFC 3339 time")
	limit := fs.Int("limit", 0, "at most this many entries")
	asJSON := fs.Bool("json", false, "print the entries as the fleet sends them, one JSON per line")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	q := url.Values{}
	for name, v := range map[string]string{audit.ParamKind: *kind, audit.ParamSince: *since} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if *limit != 0 {
		q.Set(audit.ParamLimit, strconv.Itoa(*limit))
	}
	filter, err := audit.ParseFilter(q) // refuse bad values before asking the fleet
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	api, err := newAPIClient(env)
	if err != nil {
		return err
	}
	emit := func(line []byte) error { return printAuditLine(env.Stdout, line) }
	if *asJSON {
		emit = func(line []byte) error { _, err := env.Stdout.Write(append(line, '\n')); return err }
	}
	seen := 0
	for {
		q := filter.Values()
		if *follow {
			q.Set(audit.ParamFollow, "1")
		}
		var last int64
		n := 0
		err := api.Audit(ctx, pos[0], q, func(line []byte) error {
			var e struct{ Seq int64 }
			if err := json.Unmarshal(line, &e); err != nil {
				return fmt.Errorf("the fleet sent a line that is not JSON: %q", line)
			}
			if err := emit(line); err != nil {
				return err
			}
			last, n = e.Seq, n+1
			return nil
		})
		seen += n
		_, refused := errors.AsType[*client.Error](err)
		switch {
		case ctx.Err() != nil:
			return nil // interrupted: the normal end of --follow
		case refused || errors.Is(err, syscall.ECONNREFUSED):
			return explain(err)
		case err != nil:
			return fmt.Errorf("audit of %s: %w", pos[0], err)
		case !*follow || (filter.Limit > 0 && seen >= filter.Limit):
			return nil
		case n == 0:
			return fmt.Errorf("audit of %s: the fleet ended the stream", pos[0])
		}
		// The connection dropped after some entries: resume after the last.
		filter.SinceSeq, filter.SinceTime = last, time.Time{}
		if filter.Limit > 0 {
			filter.Limit -= n
		}
	}
}

// printAuditLine prints an entry for people: time, seq, actor, kind, and
// what happened.
func printAuditLine(w io.Writer, line []byte) error {
	var e audit.Entry
	if err := json.Unmarshal(line, &e); err != nil {
		_, err := fmt.Fprintf(w, "%s\n", line)
		return err
	}
	var what string
	switch {
	case e.Kind == audit.KindAction:
		what = describeAction(e.Action)
		if e.Result != nil {
			what += fmt.Sprintf(" → %s %.1fms", e.Result.Code, e.Result.DurationMS)
			if e.Result.Message != "" {
				what += ": " + e.Result.Message
			}
		}
	case e.Cost != nil:
		what = fmt.Sprintf("$%.4f %s %d in / %d out tokens", e.Cost.USD, e.Cost.Model, e.Cost.InputTokens, e.Cost.OutputTokens)
	case e.Detail != nil:
		b, _ := json.Marshal(e.Detail)
		what = string(b)
	}
	_, err := fmt.Fprintf(w, "%s  #%-5d %-16s %-7s %s\n", e.Time.Format("2006-01-02 15:04:05.000Z"), e.Seq, e.Actor, e.Kind, what)
	return err
}

// describeAction shows an action as its verb and its other fields:
// `left_click {"coordinate":[10,20]}`.
func describeAction(raw json.RawMessage) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return string(raw)
	}
	var verb string
	json.Unmarshal(fields["action"], &verb)
	delete(fields, "action")
	delete(fields, "v")
	if len(fields) == 0 {
		return verb
	}
	b, _ := json.Marshal(fields)
	return strings.TrimSpace(verb + " " + string(b))
}
