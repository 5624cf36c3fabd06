package local

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"atelier/internal/runtime"
)

// cgroupRoot is where the host mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// cgroups applies limits through whichever hierarchy the host lets us
// write: cgroup v2 with the memory, cpu and pids controllers delegated, else
// the v1 memory, cpu and pids hierarchies, else none (kind "").
type cgroups struct {
	kind string   // "v2", "v1" or ""
	dirs []string // per controller hierarchy, the dir desktop cgroups go in
}

// detectCgroups probes the host once.
func detectCgroups() cgroups {
	if dir, ok := v2Parent(); ok {
		return cgroups{kind: "v2", dirs: []string{dir}}
	}
	var dirs []string
	for _, c := range []string{"memory", "cpu", "pids"} {
		dir := filepath.Join(cgroupRoot, c, "atelier")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return cgroups{}
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			return cgroups{}
		}
		dirs = append(dirs, dir)
	}
	return cgroups{kind: "v1", dirs: dirs}
}

// v2Parent returns a cgroup v2 directory for desktops if the memory, cpu
// and pids controllers are available to it.
func v2Parent() (string, bool) {
	mount := ""
	for _, m := range []string{cgroupRoot, filepath.Join(cgroupRoot, "unified")} {
		if _, err := os.Stat(filepath.Join(m, "cgroup.subtree_control")); err == nil {
			mount = m
			break
		}
	}
	if mount == "" {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		return "", false
	}
	have := strings.Fields(string(b))
	for _, c := range []string{"memory", "cpu", "pids"} {
		if !slices.Contains(have, c) {
			return "", false
		}
	}
	dir := filepath.Join(mount, "atelier")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false
	}
	for _, d := range []string{mount, dir} {
		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory +cpu +pids"), 0); err != nil {
			return "", false
		}
	}
	return dir, true
}

// cgName is the cgroup name of desktop id: the data dir is hashed in, since
// several runtimes (tests, two fleets) may share the host.
func (r *Runtime) cgName(id string) string {
	h := sha256.Sum256([]byte(r.root))
	return hex.EncodeToString(h[:4]) + "-" + id
}

// create makes the desktop's cgroups and writes its limits.
func (c cgroups) create(name string, l runtime.Resources) error {
	const period = 100000 // µs
	quota := strconv.FormatInt(int64(l.CPUs*period), 10)
	for _, parent := range c.dirs {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		var files map[string]string
		switch {
		case c.kind == "v2":
			files = map[string]string{"memory.max": strconv.FormatInt(l.MemoryBytes, 10), "cpu.max": quota + " " + strconv.Itoa(period), "pids.max": strconv.FormatInt(l.PIDs, 10)}
		case strings.HasSuffix(parent, "/memory/atelier"):
			files = map[string]string{"memory.limit_in_bytes": strconv.FormatInt(l.MemoryBytes, 10)}
		case strings.HasSuffix(parent, "/cpu/atelier"):
			files = map[string]string{"cpu.cfs_period_us": strconv.Itoa(period), "cpu.cfs_quota_us": quota}
		case strings.HasSuffix(parent, "/pids/atelier"):
			files = map[string]string{"pids.max": strconv.FormatInt(l.PIDs, 10)}
		}
		// Ordered, since v1 refuses a quota before its period is set.
		for _, k := range slices.Sorted(maps.Keys(files)) {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(files[k]), 0); err != nil {
				return fmt.Errorf("write %s: %w", filepath.Join(dir, k), err)
			}
		}
	}
	return nil
}

// add moves pid into the desktop's cgroups.
func (c cgroups) add(name string, pid int) error {
	for _, parent := range c.dirs {
		p := filepath.Join(parent, name, "cgroup.procs")
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// procs lists the processes in the desktop's cgroup (nil without cgroups).
func (c cgroups) procs(name string) ([]int, error) {
	if len(c.dirs) == 0 {
		return nil, nil
	}
	f, err := os.Open(filepath.Join(c.dirs[0], name, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pid, err := strconv.Atoi(sc.Text()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, sc.Err()
}

// remove deletes the desktop's cgroups, killing what is left in them. A
// stopped sandbox's last processes may linger a moment as zombies of the
// host's init, which keep the groups busy: removal is retried for a while.
func (c cgroups) remove(name string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, _ := c.procs(name)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		var errs []error
		for _, parent := range c.dirs {
			if err := os.Remove(filepath.Join(parent, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 || time.Now().After(deadline) {
			return errors.Join(errs...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
