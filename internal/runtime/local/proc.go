package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is a sandbox's outermost process (bwrap), held through a pidfd so a
// recycled pid can never be mistaken for it.
type proc struct {
	pid       int
	ticks     uint64 // start time, in clock ticks after boot
	startedAt time.Time
	fd        *os.File // the pidfd, readable once the process exits
	exit      string   // how it exited, when it was this process's child
}

// openProc returns the process pid if it runs and started at ticks.
func openProc(pid int, ticks uint64) (*proc, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open pid %d: %w", pid, err)
	}
	// Checked after opening: if the pid was recycled in between, the start
	// time differs; if not, the pidfd refers to the process checked.
	st, err := readStat(pid)
	if err != nil || st.ticks != ticks || st.state == 'Z' {
		unix.Close(fd)
		if err == nil {
			err = fmt.Errorf("pid %d is another process or has exited", pid)
		}
		reap(pid)
		return nil, err
	}
	return &proc{pid: pid, ticks: ticks, fd: os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))}, nil
}

func (p *proc) close() { p.fd.Close() }

// wait blocks until the process exits (nil) or ctx ends (its error).
func (p *proc) wait(ctx context.Context) error {
	rc, err := p.fd.SyscallConn()
	if err != nil {
		return err
	}
	// A deadline set by an earlier, cancelled wait would still hold.
	if err := p.fd.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { p.fd.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	// The poller wakes this when the pidfd turns readable: the process exited.
	err = rc.Read(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(pfd, 0)
		return n > 0
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("wait for pid %d: %w", p.pid, err)
	}
	p.exit = reap(p.pid)
	return nil
}

// exited reports whether the process has exited, without blocking.
func (p *proc) exited() bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return p.wait(ctx) == nil
}

// reap collects pid's exit status if it is a child of this process, so it
// does not linger as a zombie, and describes it; for other processes it does
// nothing and returns "".
func reap(pid int) string {
	var ws unix.WaitStatus
	if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil || got != pid {
		return ""
	}
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// stat is what the runtime reads of /proc/<pid>/stat.
type stat struct {
	state byte
	ppid  int
	ticks uint64
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	st, err := parseStat(string(b))
	if err != nil {
		return stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// parseStat parses the content of a /proc/<pid>/stat file.
func parseStat(s string) (stat, error) {
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, errors.New("no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return stat{}, fmt.Errorf("%d fields after the command name, want 20 or more", len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	ticks, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || len(f[0]) != 1 || ppid < 0 {
		return stat{}, errors.New("malformed state, ppid or start time")
	}
	return stat{state: f[0][0], ppid: ppid, ticks: ticks}, nil
}

// tree returns pid and all its descendants, found through /proc.
func tree(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(c); err == nil {
			children[st.ppid] = append(children[st.ppid], c)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treeMemory returns the summed memory of pid and its descendants, in
// bytes, as the field of /proc/<pid>/smaps_rollup named: "Rss" counts
// shared libraries once per process, "Pss" shares them out.
func treeMemory(pid int, field string) (int64, error) {
	var sum int64
	for _, p := range tree(pid) {
		n, err := procMemory(p, field)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// procMemory returns one field of /proc/<pid>/smaps_rollup in bytes; 0 if
// the process has exited.
func procMemory(pid int, field string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return 0, nil
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s of %d: %w", field, pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, nil
}

// terminate sends SIGTERM to the sandbox's processes (not to bwrap itself,
// which would exit and orphan its sandbox), waits up to the stop timeout,
// then kills the tree. Once the sandbox's pid 1 is gone the kernel has
// killed everything else in its pid namespace, so nothing is left over.
func (r *Runtime) terminate(ctx context.Context, p *proc) error {
	procs := tree(p.pid)
	// However the sandbox ends, none of its processes may outlive Stop:
	// they hold its mounts, sockets and files.
	defer awaitGone(procs, 5*time.Second)
	for _, c := range procs[1:] {
		syscall.Kill(c, syscall.SIGTERM)
	}
	wctx, cancel := context.WithTimeout(ctx, r.opts.StopTimeout)
	err := p.wait(wctx)
	cancel()
	if err == nil {
		return nil
	}
	r.log.Warn("desktop did not stop in time; killing it", "pid", p.pid, "timeout", r.opts.StopTimeout)
	for _, c := range tree(p.pid) {
		syscall.Kill(c, syscall.SIGKILL)
	}
	kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.wait(kctx); err != nil {
		return fmt.Errorf("pid %d survived SIGKILL: %w", p.pid, err)
	}
	return nil
}

// awaitGone waits, for at most timeout, until none of pids runs (gone, or
// a zombie left for its reaper): a killed process takes a moment to exit.
func awaitGone(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if st, err := readStat(pid); err != nil || st.state == 'Z' {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
