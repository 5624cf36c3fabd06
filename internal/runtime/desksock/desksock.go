// Package desksock connects the fleet to a desktop's unix sockets
// (agent.sock, vnc.sock) so that it only ever talks to a listener of that
// desktop. The run dir holding them belongs to the desktop, which may plant
// a link there, hard-link another desktop's socket in, or swap either in
// between a check and a connect. So Dial opens the socket without following
// links, checks that it is a socket, connects through that descriptor (the
// inode checked is the inode connected), then asks the runtime whether the
// listening process, as the kernel reports it (SO_PEERCRED), is the
// desktop's.
package desksock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrForeign is wrapped by Dial's error when the socket is not the
// desktop's: not a socket, or its listener is another desktop's process.
var ErrForeign = errors.New("socket does not belong to the desktop")

// Owner reports nil when process pid (in the fleet's pid namespace) is one
// of the desktop's, else why not.
type Owner func(pid int) error

// Dial connects to the socket name in dir and returns the connection only if
// owns accepts its listener. dir itself must not be the desktop's to
// replace (its parent is the runtime's).
func Dial(ctx context.Context, dir, name string, owns Owner) (net.Conn, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("socket name %q: want a plain file name", name)
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	// O_PATH with O_NOFOLLOW opens a link itself, which the type check
	// below refuses, rather than failing with ELOOP or following it.
	fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%s: %w: not a socket (mode %#o)", name, ErrForeign, st.Mode&unix.S_IFMT)
	}
	// Connecting through the descriptor's magic link reaches the inode
	// opened above, whatever the name in dir points to by now.
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", name, err)
	}
	pid, err := peerPID(c.(*net.UnixConn))
	if err == nil {
		err = owns(pid)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w: %v", name, ErrForeign, err)
	}
	return c, nil
}

// peerPID returns the listening process of a connected unix socket, as the
// kernel recorded it when the listener was set up.
func peerPID(c *net.UnixConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if gerr != nil {
		return 0, fmt.Errorf("peer credentials: %w", gerr)
	}
	if cred.Pid <= 0 {
		// The kernel reports 0 for a process outside the fleet's pid
		// namespace: a fleet in a container must share the host's.
		return 0, errors.New("the listener is not visible in the fleet's pid namespace (a containerised fleet needs the host's: pid: host)")
	}
	return int(cred.Pid), nil
}

// SamePIDNamespace reports nil when processes pid and ref are in the same
// pid namespace. Both must be alive, so the namespaces compared are live
// ones and their identities unique.
func SamePIDNamespace(pid, ref int) error {
	ns := func(p int) (unix.Stat_t, error) {
		var st unix.Stat_t
		err := unix.Stat("/proc/"+strconv.Itoa(p)+"/ns/pid", &st)
		return st, err
	}
	a, err := ns(pid)
	if err != nil {
		return fmt.Errorf("pid namespace of %d: %w", pid, err)
	}
	b, err := ns(ref)
	if err != nil {
		return fmt.Errorf("pid namespace of %d: %w", ref, err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return fmt.Errorf("process %d is in another pid namespace than %d", pid, ref)
	}
	return nil
}

// InCgroup reports nil when a component of a cgroup path of process pid
// names group (such as a container's id: /docker/<id> or
// docker-<id>.scope). A process cannot leave its cgroup without write
// access to another's, which a desktop never has.
func InCgroup(pid int, group string) error {
	if group == "" {
		return errors.New("no cgroup to check against")
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return fmt.Errorf("cgroup of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[2], "/") {
			if strings.Contains(c, group) {
				return nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("cgroup of %d: %w", pid, err)
	}
	return fmt.Errorf("process %d is not in cgroup %s", pid, group)
}
