package fleetwire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/moby/moby/client"

	"atelier/internal/config"
	"atelier/internal/runtime"
	"atelier/internal/runtime/docker"
	"atelier/internal/runtime/local"
	"atelier/internal/snapshot"
)

// Runtime returns the runtime cfg names and, on runtimes that have images,
// what commits them for snapshots (nil otherwise). Closing the runtime
// releases all it holds (the docker runtime's engine client).
func Runtime(ctx context.Context, cfg config.Config, log *slog.Logger) (runtime.Runtime, snapshot.Images, error) {
	switch cfg.Runtime {
	case "local":
		agent := cfg.AgentPath
		if agent == "" {
			exe, err := os.Executable()
			if err != nil {
				return nil, nil, fmt.Errorf("find atelier-agent: %w (pass --agent)", err)
			}
			agent = filepath.Join(filepath.Dir(exe), "atelier-agent")
		}
		rt, err := local.New(local.Options{DataDir: cfg.DataDir, AgentPath: agent, Logger: log, Limits: Resources(cfg.Limits), HomeQuota: cfg.HomeQuota})
		return rt, nil, err
	case "docker":
		c, err := client.New(client.FromEnv)
		if err != nil {
			return nil, nil, fmt.Errorf("docker client: %w", err)
		}
		rt, err := docker.New(ctx, docker.Options{Client: c, Image: cfg.Docker.Image, DataDir: cfg.DataDir, Network: cfg.Docker.Network, Logger: log,
			Limits: Resources(cfg.Limits), HomeQuota: cfg.HomeQuota})
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		d := &dockerRuntime{Runtime: rt, client: c}
		return d, d, nil
	default:
		return nil, nil, fmt.Errorf("runtime %q is not built into this atelier", cfg.Runtime)
	}
}

// dockerRuntime is the docker runtime with the engine client it owns.
type dockerRuntime struct {
	*docker.Runtime
	client *client.Client
}

// Close closes the runtime, then its client.
func (d *dockerRuntime) Close() error {
	return errors.Join(d.Runtime.Close(), d.client.Close())
}

// Resources is the resources of each desktop l sets; zero fields take the
// runtime's defaults.
func Resources(l config.Limits) runtime.Resources {
	return runtime.Resources{MemoryBytes: l.DesktopMemory, CPUs: l.DesktopCPUs, PIDs: l.DesktopPIDs}
}
