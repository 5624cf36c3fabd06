package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/client"
)

// sessionCommands are the subcommands of `atelier session`.
var sessionCommands = []command{
	{"create", "create a session and wait for its desktop", runSessionCreate},
	{"ls", "list sessions", runSessionList},
	{"show", "show one session", runSessionShow},
	{"stop", "stop a session's desktop, keeping its home", runSessionStop},
	{"start", "start a stopped session and wait for its desktop", runSessionStart},
	{"rm", "remove a session (its home is kept unless --purge)", runSessionRemove},
	{"theme", "change a session's theme, live", runSessionTheme},
	{"resolution", "change a session's desktop size (WIDTHxHEIGHT), live", runSessionResolution},
	{"screenshot", "save a screenshot of a session's desktop", runSessionScreenshot},
	{"revoke-links", "revoke every live-view link of a session and close its open views", runSessionRevokeLinks},
}

// runSession is `atelier session <subcommand>`.
func runSession(ctx context.Context, env *Env, args []string) error {
	return dispatch(ctx, env, "session", sessionCommands, args)
}

// printSession writes s for people: its id, state and the rest.
func printSession(w io.Writer, s apitype.Session) {
	state := s.State
	if s.Reason != "" {
		state += " (" + s.Reason + ")"
	}
	home := ""
	if h := s.Home; h != nil {
		home = fmt.Sprintf("%s used of %s (%s free)", bytesText(h.UsedBytes), bytesText(h.QuotaBytes), bytesText(h.FreeBytes))
	}
	printFields(w, [][2]string{
		{"id", s.ID}, {"state", state}, {"label", s.Label}, {"theme", s.Theme},
		{"resolution", s.Resolution}, {"runtime", s.Runtime + " " + s.Detail}, {"created", s.CreatedAt.Local().Format(time.DateTime)},
		{"home", home}, {"snapshot", s.SnapshotID}, {"egress", egressLine(s.Egress)}, {"embed", s.EmbedURL},
	})
}

// egressLine shows a session's egress policy: "allowlist github.com
// (session)".
func egressLine(e apitype.Egress) string {
	if e.Mode == "" {
		return ""
	}
	line := e.Mode
	if len(e.Allow) > 0 {
		line += " " + strings.Join(e.Allow, ",")
	}
	return line + " (" + e.Source + ")"
}

// bytesText writes n bytes for people, in binary units: 1.5 GiB.
func bytesText(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for ; v >= 1024 && i < len(units)-1; i++ {
		v /= 1024
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// waitFlags are the flags of commands that wait for a desktop.
type waitFlags struct {
	wait    bool
	timeout time.Duration
	json    bool
}

func (wf *waitFlags) register(fs flagSet) {
	fs.BoolVar(&wf.wait, "wait", true, "wait until the desktop is ready")
	fs.DurationVar(&wf.timeout, "timeout", 60*time.Second, "how long to wait for ready")
	fs.BoolVar(&wf.json, "json", false, "print JSON")
}

func (wf *waitFlags) waitFor() time.Duration {
	if !wf.wait {
		return 0
	}
	return wf.timeout
}

// finish prints a session a command made or started, and how long it took.
func (wf *waitFlags) finish(env *Env, s apitype.Session, verb string, took time.Duration) error {
	if wf.json {
		return printJSON(env.Stdout, s)
	}
	fmt.Fprintf(env.Stderr, "%s %s: %s in %.1fs\n", verb, s.ID, s.State, took.Seconds())
	printSession(env.Stdout, s)
	return nil
}

func runSessionCreate(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "session create", "[--label L] [--theme T] [--resolution WxH] [--from SNAPSHOT] [--egress open|none|allowlist --egress-allow LIST] [--wait=false] [--json]")
	var req apitype.CreateSession
	var wf waitFlags
	fs.StringVar(&req.Label, "label", "", "a label for people")
	fs.StringVar(&req.Theme, "theme", "", "palette name (default terracotta)")
	fs.StringVar(&req.Resolution, "resolution", "", "WIDTHxHEIGHT (default 1280x720)")
	fs.StringVar(&req.SnapshotID, "from", "", "create from this snapshot (atelier snapshot ls)")
	fs.StringVar(&req.SnapshotID, "snapshot", "", "the same as --from")
	var eg apitype.Egress
	var allow string
	fs.StringVar(&eg.Mode, "egress", "", "this desktop's egress instead of the fleet's: open (public internet), allowlist or none")
	fs.StringVar(&allow, "egress-allow", "", "with --egress allowlist: the hosts, comma-separated (github.com,*.example.org)")
	wf.register(fs)
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	switch {
	case eg.Mode != "":
		for h := range strings.SplitSeq(allow, ",") {
			if h = strings.TrimSpace(h); h != "" {
				eg.Allow = append(eg.Allow, h)
			}
		}
		req.Egress = &eg
	case allow != "":
		return fmt.Errorf("%w: --egress-allow needs --egress allowlist", ErrUsage)
	}
	c, err := newAPIClient(env)
	if err != nil {
		return err
	}
	t0 := time.Now()
	stop := startSpinner(env.Stderr, "creating a desktop")
	s, err := c.CreateSession(ctx, req, wf.waitFor())
	stop()
	if err != nil {
		return explain(err)
	}
	return wf.finish(env, s, "created", time.Since(t0))
}

func runSessionList(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "session ls", "[--json]")
	_, c, asJSON, err := clientCommand(env, fs, args, 0)
	if err != nil {
		return err
	}
	list, err := c.Sessions(ctx)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return printJSON(env.Stdout, apitype.SessionList{Sessions: list})
	}
	rows := make([][]string, len(list))
	for i, s := range list {
		rows[i] = []string{s.ID, s.State, s.Label, s.Theme, s.Resolution, s.CreatedAt.Local().Format(time.DateTime)}
	}
	return printTable(env, "no sessions; create one with: atelier session create", "ID\tSTATE\tLABEL\tTHEME\tRESOLUTION\tCREATED", rows)
}

// oneSession runs a command on one session given as its only argument.
func oneSession(env *Env, name string, args []string, setup func(fs flagSet)) (*client.Client, string, bool, error) {
	fs := newFlagSet(env, "session "+name, "SESSION [--json]")
	if setup != nil {
		setup(fs)
	}
	pos, c, asJSON, err := clientCommand(env, fs, args, 1)
	if err != nil {
		return nil, "", false, err
	}
	return c, pos[0], *asJSON, nil
}

// flagSet is the part of *flag.FlagSet commands add flags with.
type flagSet interface {
	BoolVar(*bool, string, bool, string)
	StringVar(*string, string, string, string)
	Float64Var(*float64, string, float64, string)
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}

func runSessionShow(ctx context.Context, env *Env, args []string) error {
	c, id, asJSON, err := oneSession(env, "show", args, nil)
	if err != nil {
		return err
	}
	s, err := c.Session(ctx, id, 0)
	if err != nil {
		return explain(err)
	}
	if asJSON {
		return printJSON(env.Stdout, s)
	}
	printSession(env.Stdout, s)
	return nil
}

func runSessionStop(ctx context.Context, env *Env, args []string) error {
	c, id, asJSON, err := oneSession(env, "stop", args, nil)
	if err != nil {
		return err
	}
	s, err := c.StopSession(ctx, id)
	if err != nil {
		return explain(err)
	}
	if asJSON {
		return printJSON(env.Stdout, s)
	}
	fmt.Fprintf(env.Stdout, "%s %s\n", s.ID, s.State)
	return nil
}

func runSessionStart(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "session start", "SESSION [--wait=false] [--json]")
	var wf waitFlags
	wf.register(fs)
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	c, err := newAPIClient(env)
	if err != nil {
		return err
	}
	t0 := time.Now()
	stop := startSpinner(env.Stderr, "starting "+pos[0])
	s, err := c.StartSession(ctx, pos[0], wf.waitFor())
	stop()
	if err != nil {
		return explain(err)
	}
	return wf.finish(env, s, "started", time.Since(t0))
}

func runSessionRemove(ctx context.Context, env *Env, args []string) error {
	var purge bool
	c, id, asJSON, err := oneSession(env, "rm", args, func(fs flagSet) {
		fs.BoolVar(&purge, "purge", false, "delete the session's home too")
	})
	if err != nil {
		return err
	}
	if err := c.DeleteSession(ctx, id, purge); err != nil {
		return explain(err)
	}
	if asJSON {
		return printJSON(env.Stdout, map[string]any{"id": id, "removed": true, "purged": purge})
	}
	what := "home kept"
	if purge {
		what = "home deleted"
	}
	fmt.Fprintf(env.Stdout, "%s removed (%s)\n", id, what)
	return nil
}

func runSessionTheme(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "session theme", "SESSION THEME [--json]")
	pos, c, asJSON, err := clientCommand(env, fs, args, 2)
	if err != nil {
		return err
	}
	s, err := c.SetTheme(ctx, pos[0], pos[1])
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return printJSON(env.Stdout, s)
	}
	fmt.Fprintf(env.Stdout, "%s theme %s\n", s.ID, s.Theme)
	return nil
}

func runSessionResolution(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "session resolution", "SESSION WIDTHxHEIGHT [--json]")
	pos, c, asJSON, err := clientCommand(env, fs, args, 2)
	if err != nil {
		return err
	}
	s, err := c.SetResolution(ctx, pos[0], pos[1])
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return printJSON(env.Stdout, s)
	}
	fmt.Fprintf(env.Stdout, "%s resolution %s\n", s.ID, s.Resolution)
	return nil
}

func runSessionRevokeLinks(ctx context.Context, env *Env, args []string) error {
	c, id, asJSON, err := oneSession(env, "revoke-links", args, nil)
	if err != nil {
		return err
	}
	rv, err := c.RevokeEmbedTokens(ctx, id)
	if err != nil {
		return explain(err)
	}
	if asJSON {
		return printJSON(env.Stdout, rv)
	}
	fmt.Fprintf(env.Stdout, "%s: every earlier live-view link revoked, %d open views closed; the session's embed_url is a fresh link\n", rv.SessionID, rv.ClosedViews)
	return nil
}

// runSessionScreenshot saves a screenshot through the fleet's API.
func runSessionScreenshot(ctx context.Context, env *Env, args []string) error {
	var out string
	var o client.ScreenshotOptions
	_, id, asJSON, err := oneSession(env, "screenshot", args, func(fs flagSet) {
		fs.StringVar(&out, "o", "", "file to write (default SESSION.png or .jpeg; - for stdout)")
		fs.StringVar(&o.Format, "format", "", "png (default) or jpeg")
		fs.Float64Var(&o.Scale, "scale", 0, "scale from 0.05 to 1 (default 1)")
		fs.IntVar(&o.Quality, "quality", 0, "JPEG quality 1-100")
	})
	if err != nil {
		return err
	}
	return fleetScreenshot(ctx, env, id, out, o, asJSON)
}

// fleetScreenshot saves a screenshot of session id, taken through the
// fleet's API, to out (SESSION.png or .jpeg if empty; - for stdout).
func fleetScreenshot(ctx context.Context, env *Env, id, out string, o client.ScreenshotOptions, asJSON bool) error {
	c, err := newAPIClient(env)
	if err != nil {
		return err
	}
	im, err := c.Screenshot(ctx, id, o)
	if err != nil {
		return explain(err)
	}
	if out == "" {
		out = id + "." + im.Format
	}
	if err := writeOutput(env, out, im.Data); err != nil {
		return err
	}
	if asJSON {
		return printJSON(env.Stdout, map[string]any{"path": out, "format": im.Format, "width": im.Width, "height": im.Height, "scale": im.Scale})
	}
	if out != "-" {
		fmt.Fprintf(env.Stdout, "%s (%dx%d, scale %g)\n", out, im.Width, im.Height, im.Scale)
	}
	return nil
}

// writeOutput writes data to path, or to stdout for "-".
func writeOutput(env *Env, path string, data []byte) error {
	if path == "-" {
		_, err := env.Stdout.Write(data)
		return err
	}
	if err := writeFile(path, data); err != nil {
		return fmt.Errorf("write %s: %w", strings.TrimSpace(path), err)
	}
	return nil
}
