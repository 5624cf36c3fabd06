package supervisor

import (
	"encoding/binary"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestBackoff(t *testing.T) {
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}

func TestNextCheck(t *testing.T) {
	// Ready from the start: 2 s, doubling to the cap and staying there.
	var wait time.Duration
	for _, w := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second} {
		if wait = nextCheck(wait, true); wait != w {
			t.Fatalf("ready: wait %v, want %v", wait, w)
		}
	}
	// Not ready: checked closely, and once ready again the doubling restarts at 2 s.
	if wait = nextCheck(wait, false); wait != checkNotReady {
		t.Fatalf("not ready: wait %v, want %v", wait, checkNotReady)
	}
	if wait = nextCheck(wait, true); wait != checkReady {
		t.Fatalf("ready again: wait %v, want %v", wait, checkReady)
	}
}

func inotifyEvent(name string) []byte {
	padded := len(name) + 1
	for padded%unix.SizeofInotifyEvent != 0 {
		padded++
	}
	b := make([]byte, unix.SizeofInotifyEvent+padded)
	binary.NativeEndian.PutUint32(b[4:8], unix.IN_MOVED_TO)
	binary.NativeEndian.PutUint32(b[12:16], uint32(padded))
	copy(b[unix.SizeofInotifyEvent:], name)
	return b
}

func TestEventNames(t *testing.T) {
	batch := func(names ...string) []byte {
		var b []byte
		for _, n := range names {
			b = append(b, inotifyEvent(n)...)
		}
		return b
	}
	for _, tt := range []struct {
		batch []byte
		want  []string
	}{
		{batch("theme"), []string{"theme"}},
		{batch("budget", ".theme.tmp", "theme", "budget"), []string{"budget", ".theme.tmp", "theme"}},
		{append(batch("budget"), batch("theme")[:unix.SizeofInotifyEvent+2]...), []string{"budget"}}, // truncated
		{nil, nil},
	} {
		if got := eventNames(tt.batch); !slices.Equal(got, tt.want) {
			t.Errorf("eventNames(%q) = %q, want %q", tt.batch, got, tt.want)
		}
	}
}

// TestSweep starts a process that leaves its process group and session, as
// sway's exec does, and checks Sweep finds and kills it by its marker.
func TestSweep(t *testing.T) {
	runDir := t.TempDir()
	other := exec.Command("sleep", "60")
	other.Env = []string{MarkerEnv + "=" + runDir + "-other"}
	cmd := exec.Command("sleep", "60")
	cmd.Env = []string{"PATH=/usr/bin:/bin", MarkerEnv + "=" + runDir}
	for _, c := range []*exec.Cmd{cmd, other} {
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })

	n, err := Sweep(runDir)
	if n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want 1 killed", n, err)
	}
	select {
	case err := <-done:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("marked process ended with %v, want SIGKILL", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("marked process still runs")
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("Sweep killed the process of another desktop: %v", err)
	}
	if n, err := Sweep(runDir); n != 0 || err != nil {
		t.Errorf("second Sweep = %d, %v; want nothing to do", n, err)
	}
}
