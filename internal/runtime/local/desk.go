package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"atelier/desktop"
	"atelier/internal/homefs"
	"atelier/internal/runtime"
	"atelier/internal/runtime/desksock"
)

// desk is one desktop known to the runtime.
type desk struct {
	id  string
	dir string // DataDir/desktops/<id>: root's; holds spec, pid file, log

	// op serializes lifecycle operations (Create, Start, Stop, Remove,
	// Close) on this desktop. It is taken before mu, never after.
	op  sync.Mutex
	sup *supervisor // set while a supervisor runs; guarded by op

	// mu guards what the supervisor changes.
	mu         sync.Mutex
	spec       spec
	proc       *proc // the running sandbox, nil when stopped
	restarting bool  // the supervisor is bringing the sandbox back
	restarts   int   // sandboxes the supervisor launched again
	// readyRun is the start time of the sandbox last seen ready: once a
	// sandbox has been ready, losing the ready file means a component is
	// down (see inspect).
	readyRun time.Time
}

func (d *desk) run() string      { return filepath.Join(d.dir, "run") }
func (d *desk) gate() string     { return filepath.Join(d.dir, "gate") } // root's; read-only in the sandbox
func (d *desk) specFile() string { return filepath.Join(d.dir, "spec.json") }
func (d *desk) pidFile() string  { return filepath.Join(d.dir, "pid.json") }
func (d *desk) logFile() string  { return filepath.Join(d.dir, "desktop.log") }

// fs is the desktop's home filesystem, if its home has one (homefs).
func (d *desk) fs() homefs.Home { return homefs.In(d.dir) }

// plainHome is where a home without a filesystem of its own is kept.
func (d *desk) plainHome() string { return filepath.Join(d.dir, "home") }

// home is the desktop's home: in its own filesystem if it has one (a
// quota), else a plain directory.
func (d *desk) home() string {
	if ok, _ := d.fs().Exists(); ok {
		return d.fs().Path()
	}
	return d.plainHome()
}

// current reports the running sandbox (if any) and whether the supervisor
// is restarting it.
func (d *desk) current() (*proc, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc, d.restarting
}

// findProc reads the pid file and returns the sandbox it names if that
// process still runs and is the one started (same start time), else nil.
// A stale pid file is removed.
func (d *desk) findProc() (*proc, error) {
	b, err := os.ReadFile(d.pidFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pf pidFile
	if err := json.Unmarshal(b, &pf); err != nil || pf.PID <= 0 {
		os.Remove(d.pidFile())
		return nil, nil
	}
	p, err := openProc(pf.PID, pf.StartTicks)
	if err != nil {
		os.Remove(d.pidFile())
		return nil, nil
	}
	p.startedAt = pf.StartedAt
	return p, nil
}

// dial connects to endpoint in the run dir, and only to a listener of
// this desktop: the run dir is the desktop's, which may plant links or
// other desktops' sockets there (see desksock).
func (d *desk) dial(ctx context.Context, endpoint runtime.Endpoint) (net.Conn, error) {
	if endpoint != runtime.EndpointAgent && endpoint != runtime.EndpointVNC {
		return nil, fmt.Errorf("dial %s: unknown endpoint %q", d.id, endpoint)
	}
	conn, err := desksock.Dial(ctx, d.run(), string(endpoint), d.owns)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.id, err)
	}
	return conn, nil
}

// owns reports whether process pid runs in d's sandbox: in the pid
// namespace of its running sandbox, which only the sandbox's processes
// share (they may not make new ones: see seccomp).
func (d *desk) owns(pid int) error {
	p, _ := d.current()
	if p == nil {
		found, err := d.findProc()
		if err != nil {
			return err
		}
		if found == nil {
			return errors.New("the desktop is not running")
		}
		defer found.close()
		p = found
	}
	init, err := sandboxInit(p.pid)
	if err != nil {
		return err
	}
	return desksock.SamePIDNamespace(pid, init)
}

// sandboxInit returns the first process of the sandbox whose bwrap is pid:
// bwrap's one child, in the sandbox's namespaces. The kernel's list of
// children is read when it keeps one (CONFIG_PROC_CHILDREN): scanning
// /proc costs a dial milliseconds.
func sandboxInit(pid int) (int, error) {
	var kids []int
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				kids = append(kids, c)
			}
		}
	} else {
		kids = tree(pid)[1:]
	}
	if len(kids) == 0 {
		return 0, errors.New("the desktop's sandbox has no process yet")
	}
	return kids[0], nil
}

// pidFile is the JSON pid file of a running sandbox.
type pidFile struct {
	PID        int       `json:"pid"`
	StartTicks uint64    `json:"start_ticks"` // field 22 of /proc/<pid>/stat
	StartedAt  time.Time `json:"started_at"`
}

// spec is what the runtime keeps of a desktop, so List and Inspect work
// without the fleet's database.
type spec struct {
	ID         string             `json:"id"`
	Label      string             `json:"label,omitempty"`
	Theme      string             `json:"theme,omitempty"`
	Resolution desktop.Resolution `json:"resolution"`
	Resources  runtime.Resources  `json:"resources"`
	CreatedAt  time.Time          `json:"created_at"`
}

// newSpec checks s and fills in the runtime's defaults.
func (r *Runtime) newSpec(s runtime.Spec) (spec, error) {
	sp := spec{ID: s.ID, Label: s.Label, Theme: s.Theme, Resolution: s.Resolution, Resources: s.Resources, CreatedAt: time.Now().UTC()}
	if sp.Resolution == (desktop.Resolution{}) {
		sp.Resolution = desktop.DefaultResolution
	}
	if err := sp.Resolution.Validate(); err != nil {
		return spec{}, err
	}
	if sp.Theme != "" && !themeRE.MatchString(sp.Theme) {
		return spec{}, fmt.Errorf("theme %q: want lowercase letters, digits and dashes", sp.Theme)
	}
	sp.Resources = sp.Resources.Or(r.opts.Limits)
	if err := checkLimits(sp.Resources); err != nil {
		return spec{}, err
	}
	return sp, nil
}

var themeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// checkLimits refuses limits no desktop can run within.
func checkLimits(l runtime.Resources) error {
	switch {
	case l.MemoryBytes < 64<<20:
		return fmt.Errorf("memory limit %d bytes: want at least 64 MiB", l.MemoryBytes)
	case l.CPUs < 0.1 || l.CPUs > 1024:
		return fmt.Errorf("cpu limit %g: want from 0.1 to 1024", l.CPUs)
	case l.PIDs < 16:
		return fmt.Errorf("pids limit %d: want at least 16", l.PIDs)
	}
	return nil
}

func readSpec(dir string) (spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, "spec.json"))
	if err != nil {
		return spec{}, err
	}
	var sp spec
	if err := json.Unmarshal(b, &sp); err != nil {
		return spec{}, fmt.Errorf("desktop spec %s: %w", dir, err)
	}
	return sp, nil
}

func writeSpec(dir string, sp spec) error {
	b, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(dir, "spec.json", append(b, '\n'), 0, 0, 0o600)
}

// idRE is what the runtime accepts as a desktop id: safe as a path
// component and a cgroup name. Session ids ("sess_…") match.
var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func checkID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("desktop id %q: want 1 to 64 lowercase letters, digits, _ and -", id)
	}
	return nil
}

// writeFileAtomic writes dir/name through a temporary file and a rename, so
// readers see the old or the new content, never a part. The file is owned
// by uid:gid, with mode perm.
func writeFileAtomic(dir, name string, data []byte, uid, gid int, perm os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	_, err = f.Write(data)
	if err == nil {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
