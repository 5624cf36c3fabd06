package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"atelier/internal/agentapi"
)

// maxLogBytes bounds a component's log file: a larger one is truncated when
// the component next starts.
const maxLogBytes = 4 << 20

// proc is one running program. Its waiting goroutine ends when the program
// exits; stop makes sure it does.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the program has exited and been reaped
	err     error         // cmd.Wait's result, set before done closes
}

// spawn starts argv as the component name, its output appended to the
// component's log file.
func (s *Supervisor) spawn(name string, env []string, argv ...string) (*proc, error) {
	s.setState(name, agentapi.StateStarting, 0, nil)
	logPath := filepath.Join(s.logDir, name+".log")
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > maxLogBytes {
		flags |= os.O_TRUNC
	}
	logf, err := os.OpenFile(logPath, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "--- %s: atelier-agent starts %q\n", time.Now().Format(time.RFC3339), argv)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = s.opts.Home
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the agent die without stopping its programs, they follow it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the program to end (SIGTERM), kills it after stopTimeout, and
// returns once it is reaped.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// exitError describes how the program ended, with the last line it logged.
func (p *proc) exitError() error {
	err := p.err
	if err == nil {
		err = errors.New("exited")
	}
	if tail := lastLine(p.logPath); tail != "" {
		return fmt.Errorf("%s: %w (log: %s)", p.name, err, tail)
	}
	return fmt.Errorf("%s: %w", p.name, err)
}

// lastLine returns the last non-empty line of the file at path, shortened.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 2048
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		f.Seek(-tail, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// State changes. Each is logged by its caller and wakes the readiness loop.

func (s *Supervisor) setState(name, state string, pid int, err error) {
	s.mu.Lock()
	c := s.comps[name]
	if state == agentapi.StateRestarting && c.State != agentapi.StateRestarting {
		c.Restarts++
	}
	c.State, c.PID, c.Since = state, pid, time.Now()
	if err != nil {
		c.LastError = err.Error()
	}
	s.mu.Unlock()
	s.pokeReady()
}

func (s *Supervisor) setRunning(name string, p *proc) {
	s.setState(name, agentapi.StateRunning, p.pid(), nil)
}

func (s *Supervisor) setRestarting(name string, err error) {
	s.setState(name, agentapi.StateRestarting, 0, err)
}

func (s *Supervisor) setStopped(name string) { s.setState(name, agentapi.StateStopped, 0, nil) }

func (s *Supervisor) clearProc(name string) {
	s.mu.Lock()
	delete(s.procs, name)
	s.mu.Unlock()
}

// signal sends sig to the running component name, if any.
func (s *Supervisor) signal(name string, sig syscall.Signal) error {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s is not running", name)
	}
	return p.cmd.Process.Signal(sig)
}
