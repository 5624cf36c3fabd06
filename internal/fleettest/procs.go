package fleettest

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Proc is one process as /proc/<pid>/stat shows it.
type Proc struct {
	PPID int
	Comm string
	// CPU is the user and system time it has used.
	CPU time.Duration
}

// Procs reads every process's /proc/<pid>/stat, by pid; a process that
// ends while being read is left out.
func Procs() (map[int]Proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]Proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces, so cut at the last ')'.
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		fields := strings.Fields(s[close+1:])
		if len(fields) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		// Clock ticks are USER_HZ, 100 a second on Linux.
		out[pid] = Proc{PPID: ppid, Comm: s[open+1 : close], CPU: time.Duration(utime+stime) * 10 * time.Millisecond}
	}
	return out, nil
}

// Descends reports whether pid runs under root in procs, passing through
// no process for which skip is true.
func Descends(procs map[int]Proc, pid, root int, skip func(Proc) bool) bool {
	for p := procs[pid].PPID; p > 1; p = procs[p].PPID {
		if p == root {
			return true
		}
		if skip != nil && skip(procs[p]) {
			return false
		}
	}
	return false
}
