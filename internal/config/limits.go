package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Admission and HTTP environment variables.
const (
	EnvMaxSessions        = "ATELIER_MAX_SESSIONS"
	EnvDesktopMemory      = "ATELIER_DESKTOP_MEMORY"
	EnvDesktopCPUs        = "ATELIER_DESKTOP_CPUS"
	EnvDesktopPIDs        = "ATELIER_DESKTOP_PIDS"
	EnvMemoryOvercommit   = "ATELIER_MEMORY_OVERCOMMIT"
	EnvMaxStreamsPerToken = "ATELIER_MAX_STREAMS_PER_TOKEN"
	EnvHTTPReadTimeout    = "ATELIER_HTTP_READ_TIMEOUT"
	EnvHTTPIdleTimeout    = "ATELIER_HTTP_IDLE_TIMEOUT"
)

// Defaults of admission and of the HTTP server.
const (
	// DefaultDesktopMemory fits sway, wayvnc and firefox-esr with a few
	// tabs; smaller hosts get less (see Limits).
	DefaultDesktopMemory = 2 << 30
	DefaultDesktopCPUs   = 2
	DefaultDesktopPIDs   = 1024
	// DefaultMaxStreams bounds the open streams (task SSE, audit follow)
	// of one API token, and the live views of one session.
	DefaultMaxStreams      = 16
	DefaultHTTPReadTimeout = 30 * time.Second
	DefaultHTTPIdleTimeout = 2 * time.Minute
	// minDesktopMemory is what the runtimes accept at least.
	minDesktopMemory = 256 << 20
)

// Limits is the fleet's admission: how many desktops run at once, the
// resources of each, and how many streams a credential may hold open.
// Load fills what the settings leave out from the host, so that the
// desktops' memory limits together never exceed the host's memory less a
// reserve for the host itself, unless Overcommit says so.
type Limits struct {
	// MaxSessions is how many sessions may be running (or wanted running)
	// at once; past it a create or start is refused.
	MaxSessions int
	// DesktopMemory, DesktopCPUs and DesktopPIDs limit each desktop.
	DesktopMemory int64
	DesktopCPUs   float64
	DesktopPIDs   int64
	// Overcommit multiplies the memory the desktops may be promised; 1
	// (the default) never promises more than the host has.
	Overcommit float64
	// MaxStreams is how many streams one API token may hold open, and how
	// many live views one session may have.
	MaxStreams int
	// Host is the machine the limits were derived from.
	Host Host
}

// Host is what the limits are derived from.
type Host struct {
	MemoryBytes int64
	CPUs        int
}

// ReadHost reads this machine's memory (/proc/meminfo) and CPU count.
func ReadHost() (Host, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return Host{}, fmt.Errorf("host memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return Host{}, fmt.Errorf("host memory: MemTotal %q: %w", v, err)
			}
			return Host{MemoryBytes: kb << 10, CPUs: runtime.NumCPU()}, nil
		}
	}
	return Host{}, errors.New("host memory: no MemTotal in /proc/meminfo")
}

// Usable is the memory desktops may be promised on h: all of it less a
// reserve for the host and the fleet (an eighth, at least 1 GiB).
func (h Host) Usable() int64 {
	reserve := max(int64(1<<30), h.MemoryBytes/8)
	return max(0, h.MemoryBytes-reserve)
}

// HTTP is the API server's timeouts.
type HTTP struct {
	// ReadTimeout bounds reading a request, headers and body; a slow
	// body is cut after it.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends nothing.
	IdleTimeout time.Duration
}

// readHost is ReadHost; tests of this package replace it.
var readHost = ReadHost

// loadLimits reads admission and HTTP settings from getenv and declares
// their flags on fs; what is left zero is derived from the host once the
// flags are parsed (resolveLimits).
func (c *Config) loadLimits(getenv func(string) string, fs *flag.FlagSet) error {
	c.Limits = Limits{Overcommit: 1, MaxStreams: DefaultMaxStreams}
	c.HTTP = HTTP{ReadTimeout: DefaultHTTPReadTimeout, IdleTimeout: DefaultHTTPIdleTimeout}
	var err error
	get := func(name string, parse func(string) error) {
		if v := getenv(name); v != "" && err == nil {
			if perr := parse(v); perr != nil {
				err = fmt.Errorf("%s=%q: %v", name, v, perr)
			}
		}
	}
	get(EnvMaxSessions, intTo(&c.Limits.MaxSessions))
	get(EnvDesktopMemory, func(v string) error { return setSize(v, &c.Limits.DesktopMemory) })
	get(EnvDesktopCPUs, floatTo(&c.Limits.DesktopCPUs))
	get(EnvDesktopPIDs, func(v string) error { return parseInt64(v, &c.Limits.DesktopPIDs) })
	get(EnvMemoryOvercommit, floatTo(&c.Limits.Overcommit))
	get(EnvMaxStreamsPerToken, intTo(&c.Limits.MaxStreams))
	get(EnvHTTPReadTimeout, durationTo(&c.HTTP.ReadTimeout))
	get(EnvHTTPIdleTimeout, durationTo(&c.HTTP.IdleTimeout))
	if err != nil {
		return err
	}
	fs.IntVar(&c.Limits.MaxSessions, "max-sessions", c.Limits.MaxSessions, "sessions running at once (default: as many as the host's memory holds; env "+EnvMaxSessions+")")
	fs.Func("desktop-memory", "memory limit of each desktop, such as 2GiB (default: 2GiB, less on small hosts; env "+EnvDesktopMemory+")", func(v string) error {
		return setSize(v, &c.Limits.DesktopMemory)
	})
	fs.Float64Var(&c.Limits.DesktopCPUs, "desktop-cpus", c.Limits.DesktopCPUs, "CPUs of each desktop (default: 2, at most the host's; env "+EnvDesktopCPUs+")")
	fs.Int64Var(&c.Limits.DesktopPIDs, "desktop-pids", c.Limits.DesktopPIDs, "processes of each desktop (default 1024; env "+EnvDesktopPIDs+")")
	fs.Float64Var(&c.Limits.Overcommit, "memory-overcommit", c.Limits.Overcommit, "promise desktops this many times the host's usable memory (env "+EnvMemoryOvercommit+")")
	fs.IntVar(&c.Limits.MaxStreams, "max-streams-per-token", c.Limits.MaxStreams, "open streams per API token, and live views per session (env "+EnvMaxStreamsPerToken+")")
	fs.DurationVar(&c.HTTP.ReadTimeout, "http-read-timeout", c.HTTP.ReadTimeout, "longest time to read a request's headers and body (env "+EnvHTTPReadTimeout+")")
	fs.DurationVar(&c.HTTP.IdleTimeout, "http-idle-timeout", c.HTTP.IdleTimeout, "how long an idle keep-alive connection stays open (env "+EnvHTTPIdleTimeout+")")
	return nil
}

func intTo(p *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("want a whole number")
		}
		*p = n
		return nil
	}
}

func parseInt64(v string, p *int64) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return errors.New("want a whole number")
	}
	*p = n
	return nil
}

func floatTo(p *float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return errors.New("want a number such as 1.5")
		}
		*p = f
		return nil
	}
}

func durationTo(p *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("want a duration such as 30s")
		}
		*p = d
		return nil
	}
}

// byteUnits are the suffixes parseBytes knows, longest first.
var byteUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"G", 30}, {"M", 20}, {"K", 10}, {"B", 0}}

// parseBytes parses a size such as 2GiB, 512M or 1073741824.
func parseBytes(v string, p *int64) error {
	num, shift := v, uint(0)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64>>shift {
		return errors.New("want a size such as 2GiB, 512MiB or a number of bytes")
	}
	*p = n << shift
	return nil
}

// resolveLimits fills the limits the settings left zero from the host.
func (c *Config) resolveLimits() error {
	host, err := readHost()
	if err != nil {
		return err
	}
	l := &c.Limits
	l.Host = host
	usable := host.Usable()
	if l.DesktopMemory == 0 {
		l.DesktopMemory = max(min(DefaultDesktopMemory, usable), minDesktopMemory)
	}
	if l.DesktopCPUs == 0 {
		l.DesktopCPUs = float64(min(DefaultDesktopCPUs, max(host.CPUs, 1)))
	}
	if l.DesktopPIDs == 0 {
		l.DesktopPIDs = DefaultDesktopPIDs
	}
	if l.MaxSessions == 0 && l.DesktopMemory > 0 && l.Overcommit >= 1 {
		l.MaxSessions = max(1, int(l.promisable()/l.DesktopMemory))
	}
	return nil
}

// promisable is the memory the desktops may be promised together.
func (l Limits) promisable() int64 {
	return int64(float64(l.Host.Usable()) * l.Overcommit)
}

// validateLimits checks the admission and HTTP settings.
func (c Config) validateLimits() []error {
	var errs []error
	l := c.Limits
	if l.MaxSessions < 1 {
		errs = append(errs, fmt.Errorf("%s %d: want at least 1", EnvMaxSessions, l.MaxSessions))
	}
	if l.DesktopMemory < minDesktopMemory {
		errs = append(errs, fmt.Errorf("%s %d bytes: a desktop needs at least 256MiB", EnvDesktopMemory, l.DesktopMemory))
	}
	if l.DesktopCPUs < 0.1 || l.DesktopCPUs > 1024 {
		errs = append(errs, fmt.Errorf("%s %g: want from 0.1 to 1024", EnvDesktopCPUs, l.DesktopCPUs))
	}
	if l.DesktopPIDs < 16 {
		errs = append(errs, fmt.Errorf("%s %d: want at least 16", EnvDesktopPIDs, l.DesktopPIDs))
	}
	if l.Overcommit < 1 || l.Overcommit > 100 {
		errs = append(errs, fmt.Errorf("%s %g: want from 1 (never promise more memory than the host has) to 100", EnvMemoryOvercommit, l.Overcommit))
	}
	if l.MaxStreams < 1 {
		errs = append(errs, fmt.Errorf("%s %d: want at least 1", EnvMaxStreamsPerToken, l.MaxStreams))
	}
	if len(errs) == 0 && int64(l.MaxSessions)*l.DesktopMemory > l.promisable() {
		errs = append(errs, fmt.Errorf("%d sessions of %s each promise %s, but this host has %s for desktops (%s less a reserve): lower %s or %s, or set %s",
			l.MaxSessions, sizeText(l.DesktopMemory), sizeText(int64(l.MaxSessions)*l.DesktopMemory), sizeText(l.promisable()), sizeText(l.Host.MemoryBytes),
			EnvMaxSessions, EnvDesktopMemory, EnvMemoryOvercommit))
	}
	for name, d := range map[string]time.Duration{EnvHTTPReadTimeout: c.HTTP.ReadTimeout, EnvHTTPIdleTimeout: c.HTTP.IdleTimeout} {
		if d < 100*time.Millisecond || d > time.Hour {
			errs = append(errs, fmt.Errorf("%s %v: want from 100ms to 1h", name, d))
		}
	}
	return errs
}

// LogValue logs l's figures.
func (l Limits) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("max_sessions", l.MaxSessions),
		slog.String("desktop_memory", sizeText(l.DesktopMemory)),
		slog.Float64("desktop_cpus", l.DesktopCPUs),
		slog.Int64("desktop_pids", l.DesktopPIDs),
		slog.Float64("memory_overcommit", l.Overcommit),
		slog.Int("max_streams", l.MaxStreams),
		slog.String("host_memory", sizeText(l.Host.MemoryBytes)),
	)
}
