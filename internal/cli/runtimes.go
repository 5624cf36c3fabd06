package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"atelier/internal/config"
	"atelier/internal/runtime/local"
	"atelier/internal/sessions"
)

// newRuntime returns the runtime cfg names.
func newRuntime(cfg config.Config, log *slog.Logger) (sessions.Runtime, error) {
	switch cfg.Runtime {
	case "local":
		agent := cfg.AgentPath
		if agent == "" {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("find atelier-agent: %w (pass --agent)", err)
			}
			agent = filepath.Join(filepath.Dir(exe), "atelier-agent")
		}
		return local.New(local.Options{DataDir: cfg.DataDir, AgentPath: agent, Logger: log})
	default:
		return nil, fmt.Errorf("runtime %q is not built into this atelier", cfg.Runtime)
	}
}
