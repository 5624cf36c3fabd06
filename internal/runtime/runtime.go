// Package runtime is the contract between the fleet and the runtimes that
// run its desktops (local sandboxes, Docker containers): the Runtime
// interface, what a runtime is asked to make (Spec, Resources), what it
// reports (Instance), the sockets it dials (Endpoint) and the ids that name
// desktops. It knows nothing of the fleet's store, API or tasks, so a
// runtime depends on this and the desktop definition only.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"atelier/desktop"
)

// Runtime runs desktops: local sandboxed process trees, Docker containers,
// later Kubernetes pods. Every implementation passes the conformance suite
// in runtimetest. A runtime knows nothing of sessions beyond the Spec: it
// keeps no database, and List lets a restarted fleet re-adopt what runs.
type Runtime interface {
	// Name is the runtime's name as configured: "local", "docker".
	Name() string
	// Create prepares a desktop (home, run dir, container…) without starting
	// it. An existing home for the same id is kept.
	Create(ctx context.Context, spec Spec) error
	// Start starts a created or stopped desktop; starting a running one is a
	// no-op. It returns once the desktop's processes are launched, not ready.
	Start(ctx context.Context, id string) error
	// Stop stops a desktop, keeping its home; stopping a stopped one is a no-op.
	Stop(ctx context.Context, id string) error
	// Remove stops and removes a desktop; its home is kept unless purge.
	Remove(ctx context.Context, id string, purge bool) error
	// Inspect reports one desktop; ErrNotFound if the runtime has none.
	Inspect(ctx context.Context, id string) (Instance, error)
	// List reports every desktop the runtime has, running or not.
	List(ctx context.Context) ([]Instance, error)
	// Dial connects to the desktop's agent (EndpointAgent) or VNC server
	// (EndpointVNC).
	Dial(ctx context.Context, id string, endpoint Endpoint) (net.Conn, error)
	// WriteRunFile atomically writes a file into the desktop's run dir
	// (desktop.BudgetFile, desktop.ThemeFile, desktop.ResolutionFile).
	WriteRunFile(ctx context.Context, id, name string, data []byte) error
	// GateSocket returns the host path of the unix socket the fleet's
	// egress gateway listens on for desktop id. Its directory is the
	// fleet's, made by the runtime, and the desktop sees it read-only at
	// desktop.GateDirPath: the desktop can connect but never replace it.
	GateSocket(id string) (string, error)
	// ExportHome writes the desktop's home as a tar stream.
	ExportHome(ctx context.Context, id string, w io.Writer) error
	// Home reports where the desktop's home is on the host and who owns
	// it, for the fleet's file API; the home is the desktop's, so its
	// content is hostile (the caller resolves paths beneath it, never
	// through links), while the returned directory itself is the
	// runtime's to name.
	Home(ctx context.Context, id string) (HomeDir, error)
	// Close releases the runtime's resources and leaves desktops running.
	Close() error
}

// Endpoint names a socket in the desktop's run dir.
type Endpoint string

// Endpoints a runtime can dial.
const (
	EndpointAgent Endpoint = desktop.AgentSocket
	EndpointVNC   Endpoint = desktop.VNCSocket
)

// Spec is what a runtime needs to create a desktop.
type Spec struct {
	ID         string
	Label      string
	Theme      string
	Resolution desktop.Resolution
	Resources  Resources
	// HomeArchive, if set, is a tar stream the new home is filled from
	// (a snapshot); it is read once during Create.
	HomeArchive io.Reader
	// Image, if set, is a runtime image to start from (docker snapshots).
	Image string
}

// Resources limits one desktop; zero values mean the runtime's defaults.
type Resources struct {
	MemoryBytes int64
	CPUs        float64
	PIDs        int64
}

// ContainerLimits are the resources of a desktop in a container (docker,
// kube) whose spec and runtime name none.
var ContainerLimits = Resources{MemoryBytes: 4 << 30, CPUs: 2, PIDs: 1024}

// Check fills in the spec's defaults (desktop.DefaultResolution and
// desktop.DefaultTheme) and refuses a malformed id, a resolution or theme
// the desktop does not have, and bad resources.
func (s *Spec) Check() error {
	if err := CheckID(s.ID); err != nil {
		return err
	}
	if s.Resolution == (desktop.Resolution{}) {
		s.Resolution = desktop.DefaultResolution
	}
	if err := s.Resolution.Validate(); err != nil {
		return err
	}
	if s.Theme == "" {
		s.Theme = desktop.DefaultTheme
	}
	if _, err := desktop.LookupTheme(s.Theme); err != nil {
		return err
	}
	return s.Resources.Check()
}

// Or is r with its zero fields taken from def.
func (r Resources) Or(def Resources) Resources {
	if r.MemoryBytes == 0 {
		r.MemoryBytes = def.MemoryBytes
	}
	if r.CPUs == 0 {
		r.CPUs = def.CPUs
	}
	if r.PIDs == 0 {
		r.PIDs = def.PIDs
	}
	return r
}

// Check refuses negative resources and a memory limit too small for a
// desktop.
func (r Resources) Check() error {
	if r.MemoryBytes < 0 || r.CPUs < 0 || r.PIDs < 0 {
		return fmt.Errorf("negative resources %+v", r)
	}
	if r.MemoryBytes != 0 && r.MemoryBytes < 256<<20 {
		return fmt.Errorf("memory %d bytes: a desktop needs at least 256 MiB", r.MemoryBytes)
	}
	return nil
}

// Instance is what a runtime reports of one desktop.
type Instance struct {
	ID      string
	Running bool
	// Degraded is set while a component of a running desktop is being
	// restarted after a crash.
	Degraded  bool
	StartedAt time.Time
	// Restarts counts the times the runtime itself started the desktop
	// again after it exited while it should run (its supervisor, a
	// restart policy), since the runtime took it over.
	Restarts int
	// Detail is runtime-specific, for people: a container id, a pid.
	Detail string
	// Home is how full the desktop's home is; nil when the home has no
	// quota (it was made without one) or its filesystem is not mounted.
	Home *HomeUsage
}

// HomeUsage is how full a home with a disk quota is, in bytes.
type HomeUsage struct {
	// Used is what the home's files take; Free what may still be written.
	Used, Free int64
	// Quota is the filesystem's size. Its own journal and tables take a
	// few percent of it (more of a small one), so Used+Free is less.
	Quota int64
}

// HomeDir is a desktop's home as the host sees it.
type HomeDir struct {
	// Path is the home's root on the host.
	Path string
	// UID and GID own the home: files the fleet writes are given to them.
	UID, GID int
}

// ErrNotFound is returned by a runtime for an id it has no desktop for.
var ErrNotFound = errors.New("desktop not found")

// ErrInUse is wrapped by a runtime refusing to delete what a desktop still
// runs from (a snapshot's image that clones were started from).
var ErrInUse = errors.New("in use")
