package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Sweep kills every process whose environment marks it as part of the
// desktop whose run dir is runDir (MarkerEnv), except the caller, and waits
// (a few seconds at most) until they are gone. Programs a desktop starts
// often leave its process group (sway runs each exec in a new session), so
// the marker is what finds them all. It reports how many it killed; an error
// means some survived. Processes of other users are only found when the
// caller may read their environment (root may).
func Sweep(runDir string) (int, error) {
	marker := []byte(MarkerEnv + "=" + runDir)
	killed := map[int]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		alive := 0
		for _, pid := range marked(marker) {
			alive++
			if !killed[pid] {
				syscall.Kill(pid, syscall.SIGKILL)
				killed[pid] = true
			}
		}
		if alive == 0 {
			return len(killed), nil
		}
		if time.Now().After(deadline) {
			return len(killed), fmt.Errorf("sweep %s: %d processes survive SIGKILL", runDir, alive)
		}
		// Bounded polling: the kernel tells nobody but the parent when a process ends.
		time.Sleep(20 * time.Millisecond)
	}
}

// marked lists the live processes (not zombies) whose environment holds marker.
func marked(marker []byte) []int {
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !hasEntry(env, marker) || zombie(d) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// hasEntry reports whether the NUL-separated environment env holds entry.
func hasEntry(env, entry []byte) bool {
	for e := range bytes.SplitSeq(env, []byte{0}) {
		if bytes.Equal(e, entry) {
			return true
		}
	}
	return false
}

func zombie(procDir string) bool {
	stat, err := os.ReadFile(filepath.Join(procDir, "stat"))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}
