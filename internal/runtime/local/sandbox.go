package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"atelier/desktop"

	"golang.org/x/sys/unix"
)

// maxLogBytes is the size beyond which a desktop's log is started afresh.
const maxLogBytes = 8 << 20

// agentInSandbox is where the agent binary is bound, read-only.
const agentInSandbox = "/opt/atelier/atelier-agent"

// Descriptors the sandbox's directories and agent are passed on: bwrap
// binds them from these, so the desktop user never needs a path into the
// fleet's data dir.
const (
	fdHome    = 3
	fdRun     = 4
	fdAgent   = 5
	fdGate    = 6
	fdSeccomp = 7 // the seccomp filter, read by bwrap to its end
	// fdFrameClock is desktop.FrameClockFile, bound beside the agent, when
	// the runtime has one.
	fdFrameClock = 8
)

// gate holds the launched shell until the fleet has put it in its cgroups,
// so every process of the sandbox is born inside them.
const gate = `read _ && exec "$@" </dev/null`

// launch starts d's sandbox detached and returns its outermost process.
// d.op must be held, or the caller be d's supervisor.
func (r *Runtime) launch(ctx context.Context, d *desk) (*proc, error) {
	d.mu.Lock()
	sp := d.spec
	d.mu.Unlock()
	if err := r.prepareDirs(ctx, d); err != nil {
		return nil, err
	}
	// Stale sockets and a stale ready file would make a starting desktop
	// look up.
	for _, name := range []string{desktop.ReadyFile, desktop.AgentSocket, desktop.VNCSocket} {
		if err := os.Remove(filepath.Join(d.run(), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	cgName := r.cgName(d.id)
	if err := r.cg.create(cgName, sp.Resources); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}

	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, p := range []string{d.home(), d.run(), r.opts.AgentPath, d.gate()} {
		f, err := os.OpenFile(p, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	// The log is kept across restarts (it tells why the last run ended)
	// but not forever.
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if fi, err := os.Stat(d.logFile()); err == nil && fi.Size() > maxLogBytes {
		flags |= os.O_TRUNC
	}
	logf, err := os.OpenFile(d.logFile(), flags, 0o600)
	if err != nil {
		return nil, err
	}
	files = append(files, logf)
	gr, gw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	files = append(files, gr, gw)
	// The filter (about 1 KiB) fits in the pipe's buffer: written whole
	// now, read by bwrap up to the end the close marks.
	sr, sw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	files = append(files, sr)
	_, err = sw.Write(r.seccomp)
	if cerr := sw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}

	args := append([]string{"-c", gate, "sh", r.bwrap}, r.bwrapArgs(sp)...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = gr, logf, logf
	cmd.ExtraFiles = append(files[:4:4], sr) // fdHome, fdRun, fdAgent, fdGate, fdSeccomp
	if r.frameClock != "" {
		f, err := os.OpenFile(r.frameClock, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, fmt.Errorf("frame clock: %w", err)
		}
		files = append(files, f)
		cmd.ExtraFiles = append(cmd.ExtraFiles, f) // fdFrameClock
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true, // detached: a fleet exit or its terminal's signals leave it running
		Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid), Groups: []uint32{}},
	}
	fmt.Fprintf(logf, "%s desktop %s starting\n", time.Now().UTC().Format(time.RFC3339), d.id)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	fail := func(err error) (*proc, error) {
		syscall.Kill(pid, syscall.SIGKILL)
		reap(pid)
		return nil, err
	}
	if err := r.cg.add(cgName, pid); err != nil {
		return fail(fmt.Errorf("cgroup: %w", err))
	}
	if _, err := gw.Write([]byte("\n")); err != nil {
		return fail(fmt.Errorf("release sandbox: %w", err))
	}
	st, err := readStat(pid)
	if err != nil {
		return fail(err)
	}
	p, err := openProc(pid, st.ticks)
	if err != nil {
		return fail(fmt.Errorf("sandbox exited at once (see %s): %w", d.logFile(), err))
	}
	p.startedAt = time.Now().UTC()
	b, _ := json.Marshal(pidFile{PID: pid, StartTicks: st.ticks, StartedAt: p.startedAt})
	if err := writeFileAtomic(d.dir, filepath.Base(d.pidFile()), b, 0, 0, 0o600); err != nil {
		p.close()
		return fail(err)
	}
	return p, nil
}

// bwrapArgs builds the sandbox: the host's system read-only, fresh /tmp,
// /dev and /proc, the desktop's own home and run dir writable, nothing else
// of the host's data. Its user, pid, mount, ipc, uts and network
// namespaces are its own: its network is loopback only, and its one way
// out is the egress gateway's socket in the fleet's gate dir, bound
// read-only. It may make no nested user namespace, and every process runs
// under the seccomp filter (package seccomp).
func (r *Runtime) bwrapArgs(sp spec) []string {
	uid := strconv.Itoa(r.uid)
	xdg := "/run/user/" + uid
	a := []string{
		"--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--unshare-net", "--disable-userns", "--seccomp", strconv.Itoa(fdSeccomp),
		"--new-session",
		"--hostname", "atelier",
		"--ro-bind", "/usr", "/usr",
		"--ro-bind", "/etc", "/etc",
		"--ro-bind-try", "/var/cache/fontconfig", "/var/cache/fontconfig",
	}
	// Merged-/usr systems have these as links into /usr; others as dirs.
	for _, top := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(top)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(top); err == nil {
				a = append(a, "--symlink", target, top)
			}
		case fi.IsDir():
			a = append(a, "--ro-bind", top, top)
		}
	}
	a = append(a,
		"--proc", "/proc",
		"--dev", "/dev",
		"--tmpfs", "/tmp",
		"--tmpfs", "/var/tmp",
		"--perms", "0700", "--tmpfs", xdg,
		"--bind-fd", strconv.Itoa(fdHome), desktop.HomePath,
		"--bind-fd", strconv.Itoa(fdRun), desktop.RunDirPath,
		"--ro-bind-fd", strconv.Itoa(fdAgent), agentInSandbox,
		"--ro-bind-fd", strconv.Itoa(fdGate), desktop.GateDirPath,
	)
	if r.frameClock != "" {
		a = append(a, "--ro-bind-fd", strconv.Itoa(fdFrameClock), filepath.Join(filepath.Dir(agentInSandbox), desktop.FrameClockFile))
	}
	a = append(a,
		"--chdir", desktop.HomePath,
		"--clearenv",
		"--setenv", "HOME", desktop.HomePath,
		"--setenv", "USER", r.opts.User,
		"--setenv", "LOGNAME", r.opts.User,
		"--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
		"--setenv", "XDG_RUNTIME_DIR", xdg,
		"--setenv", "LANG", "C.UTF-8",
		"--",
		agentInSandbox,
		"--run-dir", desktop.RunDirPath,
		"--home", desktop.HomePath,
		"--resolution", sp.Resolution.String(),
		"--egress-gate", filepath.Join(desktop.GateDirPath, desktop.GateSocket),
	)
	if sp.Theme != "" {
		a = append(a, "--theme", sp.Theme)
	}
	return a
}
