// Package sessionstest provides an in-memory runtime.Runtime for unit
// tests of the logic above runtimes (the session manager, the API). It runs
// nothing: its desktops have no agent, so every Dial fails. Tests of real
// behaviour use a real runtime (runtime/local, via fleettest). Act drives
// a real agent as the input pipeline does, for tests of its callers.
package sessionstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"atelier/internal/runtime"
)

// Runtime keeps desktops in a map. Its func fields, when set, run first in
// the method of the same name and may fail it.
type Runtime struct {
	CreateHook func(runtime.Spec) error
	StartHook  func(id string) error

	mu       sync.Mutex
	desktops map[string]*Desktop
	starts   map[string]int
}

// Desktop is what the fake runtime holds of one desktop.
type Desktop struct {
	Spec    runtime.Spec
	Running bool
	// Files are the run files written, by name.
	Files map[string]string
	// Home is what Inspect reports of the home: FakeHome for every new
	// desktop.
	Home runtime.HomeUsage
}

// FakeHome is the home usage every desktop of the fake runtime reports.
var FakeHome = runtime.HomeUsage{Used: 3 << 19, Free: 10<<30 - 3<<19 - 256<<20, Quota: 10 << 30}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns an empty fake runtime.
func New() *Runtime {
	return &Runtime{desktops: map[string]*Desktop{}, starts: map[string]int{}}
}

// SetStartHook replaces StartHook while the runtime is in use.
func (f *Runtime) SetStartHook(h func(id string) error) {
	f.mu.Lock()
	f.StartHook = h
	f.mu.Unlock()
}

// Name returns "fake".
func (f *Runtime) Name() string { return "fake" }

// Create records a stopped desktop.
func (f *Runtime) Create(_ context.Context, s runtime.Spec) error {
	if f.CreateHook != nil {
		if err := f.CreateHook(s); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.desktops[s.ID] = &Desktop{Spec: s, Files: map[string]string{}, Home: FakeHome}
	return nil
}

// Start marks a desktop running.
func (f *Runtime) Start(_ context.Context, id string) error {
	f.mu.Lock()
	hook := f.StartHook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(id); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.desktops[id]
	if !ok {
		return runtime.ErrNotFound
	}
	if !d.Running {
		d.Running = true
		f.starts[id]++
	}
	return nil
}

// Stop marks a desktop stopped.
func (f *Runtime) Stop(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.desktops[id]
	if !ok {
		return runtime.ErrNotFound
	}
	d.Running = false
	return nil
}

// Remove forgets a desktop.
func (f *Runtime) Remove(_ context.Context, id string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.desktops[id]; !ok {
		return runtime.ErrNotFound
	}
	delete(f.desktops, id)
	return nil
}

// Inspect reports a desktop, started just now.
func (f *Runtime) Inspect(_ context.Context, id string) (runtime.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.desktops[id]
	if !ok {
		return runtime.Instance{}, runtime.ErrNotFound
	}
	home := d.Home
	return runtime.Instance{ID: id, Running: d.Running, StartedAt: time.Now(), Home: &home}, nil
}

// List reports every desktop.
func (f *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	f.mu.Lock()
	ids := make([]string, 0, len(f.desktops))
	for id := range f.desktops {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	out := make([]runtime.Instance, 0, len(ids))
	for _, id := range ids {
		if in, err := f.Inspect(ctx, id); err == nil {
			out = append(out, in)
		}
	}
	return out, nil
}

// Dial always fails: the fake runs no agent.
func (f *Runtime) Dial(context.Context, string, runtime.Endpoint) (net.Conn, error) {
	return nil, errors.New("the fake runtime runs no agent")
}

// WriteRunFile records the file.
func (f *Runtime) WriteRunFile(_ context.Context, id, name string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.desktops[id]
	if !ok {
		return runtime.ErrNotFound
	}
	d.Files[name] = string(data)
	return nil
}

// GateSocket returns a path under /nonexistent: the fake makes no socket
// dir, so only a fake gateway can be given it.
func (f *Runtime) GateSocket(id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.desktops[id]; !ok {
		return "", fmt.Errorf("%w: %s", runtime.ErrNotFound, id)
	}
	return "/nonexistent/" + id + "/egress.sock", nil
}

// ExportHome writes nothing.
func (f *Runtime) ExportHome(context.Context, string, io.Writer) error { return nil }

// Home fails: the fake keeps no home.
func (f *Runtime) Home(context.Context, string) (runtime.HomeDir, error) {
	return runtime.HomeDir{}, errors.New("the fake runtime keeps no home")
}

// Close does nothing.
func (f *Runtime) Close() error { return nil }

// Desktop returns a copy of desktop id, if the runtime has it.
func (f *Runtime) Desktop(id string) (Desktop, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.desktops[id]
	if !ok {
		return Desktop{}, false
	}
	c := *d
	c.Files = map[string]string{}
	for k, v := range d.Files {
		c.Files[k] = v
	}
	return c, true
}

// Len returns how many desktops the runtime has.
func (f *Runtime) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.desktops)
}

// Starts returns how many times desktop id went from stopped to running.
func (f *Runtime) Starts(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[id]
}
