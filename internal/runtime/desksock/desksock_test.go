package desksock_test

import (
	"bufio"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"atelier/internal/runtime/desksock"
)

// serve listens on dir/name and answers every connection with greeting.
func serve(t *testing.T, dir, name, greeting string) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(greeting + "\n"))
			c.Close()
		}
	}()
}

func greeting(t *testing.T, c net.Conn) string {
	t.Helper()
	defer c.Close()
	s, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(s)
}

func self(pid int) error {
	if pid != os.Getpid() {
		return errors.New("not this process")
	}
	return nil
}

// TestDial: the socket itself connects; a link to another socket, a hard
// link the owner check refuses, a plain file and bad names never do, and
// the error says why.
func TestDial(t *testing.T) {
	mine, other := t.TempDir(), t.TempDir()
	serve(t, mine, "agent.sock", "mine")
	serve(t, other, "agent.sock", "other")
	c, err := desksock.Dial(t.Context(), mine, "agent.sock", self)
	if err != nil {
		t.Fatal(err)
	}
	if got := greeting(t, c); got != "mine" {
		t.Fatalf("reached %q, want mine", got)
	}

	if err := os.Symlink(filepath.Join(other, "agent.sock"), filepath.Join(mine, "link.sock")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(other, "agent.sock"), filepath.Join(mine, "hard.sock")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mine, "file.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refuse := func(pid int) error { return errors.New("listener of another desktop") }
	for name, owner := range map[string]desksock.Owner{"link.sock": self, "file.sock": self, "hard.sock": refuse, "agent.sock": refuse} {
		c, err := desksock.Dial(t.Context(), mine, name, owner)
		if err == nil {
			t.Errorf("%s: connected, reaching %q", name, greeting(t, c))
		} else if !errors.Is(err, desksock.ErrForeign) {
			t.Errorf("%s: %v, want ErrForeign", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "../agent.sock", "missing.sock"} {
		if c, err := desksock.Dial(t.Context(), mine, name, self); err == nil {
			c.Close()
			t.Errorf("%q: connected", name)
		}
	}
	// The dir itself must not be a link either.
	linkDir := filepath.Join(t.TempDir(), "run")
	if err := os.Symlink(other, linkDir); err != nil {
		t.Fatal(err)
	}
	if c, err := desksock.Dial(t.Context(), linkDir, "agent.sock", self); err == nil {
		t.Errorf("through a linked dir: connected, reaching %q", greeting(t, c))
	}
}

func TestOwnerChecks(t *testing.T) {
	me := os.Getpid()
	if err := desksock.SamePIDNamespace(me, me); err != nil {
		t.Errorf("SamePIDNamespace(self, self): %v", err)
	}
	if err := desksock.SamePIDNamespace(me, 1<<30); err == nil {
		t.Error("SamePIDNamespace with a process that does not exist: nil")
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if err := desksock.InCgroup(me, "no-such-group-0123456789abcdef"); err == nil {
		t.Errorf("InCgroup accepted a group not in\n%s", b)
	}
	if err := desksock.InCgroup(me, ""); err == nil {
		t.Error("InCgroup accepted an empty group")
	}
}
