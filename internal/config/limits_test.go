package config_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"atelier/internal/config"
)

// TestLimits checks the admission derived from the host: the desktops'
// memory limits together never exceed what the host has for them.
func TestLimits(t *testing.T) {
	const gib = int64(1) << 30
	tests := []struct {
		name string
		host config.Host
		env  map[string]string
		want config.Limits // Host and MaxStreams left out
	}{
		{"23 GiB host", config.Host{MemoryBytes: 23 * gib, CPUs: 8}, nil,
			config.Limits{MaxSessions: 10, DesktopMemory: 2 * gib, DesktopCPUs: 2, DesktopPIDs: 1024, Overcommit: 1}},
		{"small host", config.Host{MemoryBytes: 2 * gib, CPUs: 1}, nil,
			config.Limits{MaxSessions: 1, DesktopMemory: 1 * gib, DesktopCPUs: 1, DesktopPIDs: 1024, Overcommit: 1}},
		{"bigger desktops", config.Host{MemoryBytes: 23 * gib, CPUs: 8}, map[string]string{"ATELIER_DESKTOP_MEMORY": "4GiB"},
			config.Limits{MaxSessions: 5, DesktopMemory: 4 * gib, DesktopCPUs: 2, DesktopPIDs: 1024, Overcommit: 1}},
		{"overcommit", config.Host{MemoryBytes: 23 * gib, CPUs: 8}, map[string]string{"ATELIER_MEMORY_OVERCOMMIT": "2", "ATELIER_DESKTOP_CPUS": "0.5", "ATELIER_DESKTOP_PIDS": "300"},
			config.Limits{MaxSessions: 20, DesktopMemory: 2 * gib, DesktopCPUs: 0.5, DesktopPIDs: 300, Overcommit: 2}},
		{"explicit and fitting", config.Host{MemoryBytes: 23 * gib, CPUs: 8}, map[string]string{"ATELIER_MAX_SESSIONS": "3", "ATELIER_DESKTOP_MEMORY": "512MiB"},
			config.Limits{MaxSessions: 3, DesktopMemory: 512 << 20, DesktopCPUs: 2, DesktopPIDs: 1024, Overcommit: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer config.SetHost(tt.host)()
			c, err := config.Load(env(tt.env), nil, new(bytes.Buffer))
			if err != nil {
				t.Fatal(err)
			}
			got := c.Limits
			if got.Host != tt.host || got.MaxStreams != config.DefaultMaxStreams {
				t.Errorf("host %+v, max streams %d", got.Host, got.MaxStreams)
			}
			got.Host, got.MaxStreams = config.Host{}, 0
			if got != tt.want {
				t.Errorf("limits %+v, want %+v", got, tt.want)
			}
			if promised := int64(got.MaxSessions) * got.DesktopMemory; float64(promised) > float64(tt.host.Usable())*got.Overcommit {
				t.Errorf("promises %d bytes of %d usable", promised, tt.host.Usable())
			}
		})
	}
}

func TestLimitsRefused(t *testing.T) {
	defer config.SetHost(config.Host{MemoryBytes: 8 << 30, CPUs: 2})()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"more than the host has", map[string]string{"ATELIER_MAX_SESSIONS": "30"}, nil, "ATELIER_MEMORY_OVERCOMMIT"},
		{"bad size", map[string]string{"ATELIER_DESKTOP_MEMORY": "lots"}, nil, "ATELIER_DESKTOP_MEMORY"},
		{"tiny desktop", nil, []string{"--desktop-memory", "10MiB"}, "256MiB"},
		{"no sessions", nil, []string{"--max-sessions", "-1"}, "ATELIER_MAX_SESSIONS"},
		{"undercommit", map[string]string{"ATELIER_MEMORY_OVERCOMMIT": "0.5"}, nil, "ATELIER_MEMORY_OVERCOMMIT"},
		{"no streams", map[string]string{"ATELIER_MAX_STREAMS_PER_TOKEN": "0"}, nil, "ATELIER_MAX_STREAMS_PER_TOKEN"},
		{"bad timeout", map[string]string{"ATELIER_HTTP_READ_TIMEOUT": "soon"}, nil, "ATELIER_HTTP_READ_TIMEOUT"},
		{"zero idle", nil, []string{"--http-idle-timeout", "0s"}, "ATELIER_HTTP_IDLE_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(env(tt.env), tt.args, new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error naming %q", err, tt.want)
			}
		})
	}
	c, err := config.Load(env(map[string]string{"ATELIER_HTTP_READ_TIMEOUT": "5s"}), []string{"--http-idle-timeout", "7s"}, new(bytes.Buffer))
	if err != nil || c.HTTP != (config.HTTP{ReadTimeout: 5 * time.Second, IdleTimeout: 7 * time.Second}) {
		t.Errorf("http timeouts: %+v, %v", c.HTTP, err)
	}
}
