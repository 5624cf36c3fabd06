// Package config is the fleet's configuration: flags over environment over
// defaults, loaded once at start, validated with messages that say what to
// change, and printable with its secrets masked.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"atelier/internal/egress"
)

// Environment variables the fleet reads. The first four are the seed's names.
const (
	EnvPort    = "FLEET_PORT"
	EnvToken   = "ATELIER_API_TOKEN"
	EnvMaxUSD  = "MAX_USD_PER_DAY"
	EnvRuntime = "ATELIER_RUNTIME"
	EnvDataDir = "ATELIER_DATA_DIR"
	// EnvInsecureNoToken lets the fleet run without a token, on loopback.
	EnvInsecureNoToken = "ATELIER_INSECURE_NO_TOKEN"
	EnvURL             = "ATELIER_URL"
	EnvAgent           = "ATELIER_AGENT"
	// EnvMetricsToken is a second bearer token that opens GET /metrics
	// alone, for scrapers.
	EnvMetricsToken = "ATELIER_METRICS_TOKEN"
)

// Defaults.
const (
	DefaultPort    = 8090
	DefaultRuntime = "local"
	// DefaultDataDir is where a root fleet (a service) keeps its state;
	// anyone else gets DefaultUserDataDir, relative to the working
	// directory, so trying the fleet needs no privileges.
	DefaultDataDir     = "/var/lib/atelier"
	DefaultUserDataDir = ".data"
	DefaultURL         = "http://127.0.0.1:8090"
)

// Runtimes lists the runtimes a fleet can use.
var Runtimes = []string{"local", "docker", "kube"}

// Config is the fleet server's configuration.
type Config struct {
	// Addr is the host:port the API listens on.
	Addr string
	// DataDir holds the database, the homes and the run dirs.
	DataDir string
	// Runtime runs the desktops: "local", "docker" or "kube".
	Runtime string
	// APIToken, if set, is the bearer token every route but /health needs.
	APIToken string
	// MetricsToken, if set, is a bearer token that opens GET /metrics
	// (and nothing else) beside APIToken.
	MetricsToken string
	// MaxUSDPerDay caps model spend per UTC day; 0 means no cap.
	MaxUSDPerDay float64
	// InsecureNoToken lets the fleet start without APIToken: its API is
	// then open to anything on this machine, so it listens on loopback
	// only. Never the default.
	InsecureNoToken bool
	// AgentPath is the atelier-agent binary the local runtime runs in each
	// desktop; empty means the one beside the atelier binary.
	AgentPath string
	// View configures the live view; Docker the docker runtime.
	View   View
	Docker Docker
	// Kube configures the kube runtime.
	Kube Kube
	// Model configures the task backends.
	Model Model
	// Records configures the audit log and the kept step screenshots.
	Records Records
	// Limits is admission: how many desktops, of what size, how many
	// open streams. HTTP is the server's timeouts.
	Limits Limits
	HTTP   HTTP
	// Egress is what desktops may reach through the egress gateway, unless
	// a session says otherwise; the zero Policy means egress.Default.
	Egress egress.Policy
	// HomeQuota is the disk quota of each new desktop home, in bytes; 0
	// means none.
	HomeQuota int64
}

// Load reads the server's configuration from args (the flags of atelier
// serve) over getenv over the defaults, and validates it. Flag errors and
// help go to out.
func Load(getenv func(string) string, args []string, out io.Writer) (Config, error) {
	c := Config{
		Runtime:      DefaultRuntime,
		APIToken:     getenv(EnvToken),
		MetricsToken: getenv(EnvMetricsToken),
		DataDir:      DefaultUserDataDir,
	}
	if os.Geteuid() == 0 {
		c.DataDir = DefaultDataDir
	}
	if v := getenv(EnvDataDir); v != "" {
		c.DataDir = v
	}
	c.AgentPath = getenv(EnvAgent)
	if v := getenv(EnvRuntime); v != "" {
		c.Runtime = v
	}
	port := DefaultPort
	if v := getenv(EnvPort); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			return Config{}, fmt.Errorf("%s=%q: want a port number from 1 to 65535", EnvPort, v)
		}
		port = p
	}
	if v := getenv(EnvMaxUSD); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return Config{}, fmt.Errorf("%s=%q: want an amount of USD such as 5 or 12.50", EnvMaxUSD, v)
		}
		c.MaxUSDPerDay = f
	}
	m, err := loadModel(getenv)
	if err != nil {
		return Config{}, err
	}
	c.Model = m
	if c.Records, err = loadRecords(getenv); err != nil {
		return Config{}, err
	}
	if v := getenv(EnvInsecureNoToken); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("%s=%q: want true or false", EnvInsecureNoToken, v)
		}
		c.InsecureNoToken = b
	}
	// Without a token the API is open, so it listens on loopback only;
	// with one, on every interface, as the seed did.
	host := "127.0.0.1"
	if c.APIToken != "" {
		host = ""
	}
	c.Addr = net.JoinHostPort(host, strconv.Itoa(port))

	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: atelier serve [flags]\n\nEach setting is a flag or an environment variable (named in its help); a flag wins.\n\nflags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address host:port (env "+EnvPort+" sets the port)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the database, homes and run dirs (env "+EnvDataDir+")")
	fs.StringVar(&c.Runtime, "runtime", c.Runtime, "desktop runtime: "+strings.Join(Runtimes, " or ")+" (env "+EnvRuntime+")")
	fs.BoolVar(&c.InsecureNoToken, "insecure-no-token", c.InsecureNoToken, "run without "+EnvToken+": an open API, on loopback only (env "+EnvInsecureNoToken+")")
	// The token itself is no flag (argv is readable by every user); its
	// file is.
	fs.Func("metrics-token-file", "file holding the bearer token of GET /metrics, for scrapers (env "+EnvMetricsToken+" holds the token itself)", func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("metrics token: %w", err)
		}
		c.MetricsToken = strings.TrimSpace(string(b))
		return nil
	})
	fs.StringVar(&c.AgentPath, "agent", c.AgentPath, "atelier-agent binary for the local runtime (default: beside atelier; env "+EnvAgent+")")
	if err := c.loadExtras(getenv, fs); err != nil {
		return Config{}, err
	}
	if err := c.loadLimits(getenv, fs); err != nil {
		return Config{}, err
	}
	var eg egressFlags
	eg.register(getenv, fs)
	if err := c.loadHome(getenv, fs); err != nil {
		return Config{}, err
	}
	c.Model.flags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if c.Egress, err = eg.parse(); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.resolveLimits(); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate checks c and says what to change.
func (c Config) Validate() error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Addr)
	if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("addr %q: want host:port, such as 127.0.0.1:8090", c.Addr))
	} else if c.APIToken == "" && c.InsecureNoToken && !isLoopback(host) {
		errs = append(errs, fmt.Errorf("addr %q is beyond loopback and %s is not set: anyone who can reach it could drive the desktops; set a token, or listen on 127.0.0.1", c.Addr, EnvToken))
	}
	switch {
	case c.APIToken == "" && !c.InsecureNoToken:
		errs = append(errs, fmt.Errorf("%s is not set: set one (openssl rand -hex 32), or pass --insecure-no-token (%s=1) to run an open API on loopback", EnvToken, EnvInsecureNoToken))
	case c.APIToken != "" && c.InsecureNoToken:
		errs = append(errs, fmt.Errorf("%s is set and so is --insecure-no-token (%s): drop one", EnvToken, EnvInsecureNoToken))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty: pass --data-dir"))
	}
	if !isRuntime(c.Runtime) {
		errs = append(errs, fmt.Errorf("runtime %q: want one of %s", c.Runtime, strings.Join(Runtimes, ", ")))
	}
	if c.MaxUSDPerDay < 0 || math.IsNaN(c.MaxUSDPerDay) || math.IsInf(c.MaxUSDPerDay, 0) {
		errs = append(errs, fmt.Errorf("%s %v: want 0 (no cap) or a positive amount", EnvMaxUSD, c.MaxUSDPerDay))
	}
	if c.APIToken != "" && len(c.APIToken) < 16 {
		errs = append(errs, fmt.Errorf("%s is %d characters: use at least 16 (openssl rand -hex 32)", EnvToken, len(c.APIToken)))
	}
	switch {
	case c.MetricsToken != "" && len(c.MetricsToken) < 16:
		errs = append(errs, fmt.Errorf("%s is %d characters: use at least 16 (openssl rand -hex 32)", EnvMetricsToken, len(c.MetricsToken)))
	case c.MetricsToken != "" && c.MetricsToken == c.APIToken:
		errs = append(errs, fmt.Errorf("%s is %s: give scrapers a token of their own", EnvMetricsToken, EnvToken))
	}
	if c.Egress.Mode != "" {
		if err := c.Egress.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.validateExtras()...)
	errs = append(errs, c.validateLimits()...)
	errs = append(errs, c.validateHome()...)
	errs = append(errs, c.Model.validate()...)
	return errors.Join(errs...)
}

func isRuntime(name string) bool {
	for _, r := range Runtimes {
		if r == name {
			return true
		}
	}
	return false
}

// isLoopback reports whether host names only this machine. An empty host
// means every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Loopback reports whether the server listens on loopback only.
func (c Config) Loopback() bool {
	host, _, err := net.SplitHostPort(c.Addr)
	return err == nil && isLoopback(host)
}

// DBPath is the database file in the data dir.
func (c Config) DBPath() string { return filepath.Join(c.DataDir, "atelier.db") }

// mask shows whether a secret is set without showing it.
func mask(s string) string {
	if s == "" {
		return "(not set)"
	}
	return "****"
}

// String prints c for people, secrets masked.
func (c Config) String() string {
	capUSD := "none"
	if c.MaxUSDPerDay > 0 {
		capUSD = strconv.FormatFloat(c.MaxUSDPerDay, 'f', 2, 64) + " USD/day"
	}
	return fmt.Sprintf("addr=%s data_dir=%s runtime=%s api_token=%s max_usd_per_day=%s insecure_no_token=%t agent=%s",
		c.Addr, c.DataDir, c.Runtime, mask(c.APIToken), capUSD, c.InsecureNoToken, c.AgentPath)
}

// LogValue logs c as attributes, secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("data_dir", c.DataDir),
		slog.String("runtime", c.Runtime),
		slog.String("api_token", mask(c.APIToken)),
		slog.String("metrics_token", mask(c.MetricsToken)),
		slog.Float64("max_usd_per_day", c.MaxUSDPerDay),
		slog.Bool("insecure_no_token", c.InsecureNoToken),
		slog.String("agent", c.AgentPath),
		slog.Int64("home_quota", c.HomeQuota),
		slog.Any("model", c.Model),
		slog.String("audit_sync", c.Records.AuditSync.String()),
		slog.Bool("audit_redact_typed", c.Records.AuditRedactTyped),
		slog.Duration("step_retention", c.Records.StepRetention),
		slog.Any("limits", c.Limits),
		slog.Any("http", c.HTTP),
		slog.String("egress", c.Egress.String()),
	)
}

// Client is the configuration of the CLI's API client.
type Client struct {
	// URL is the fleet's base URL.
	URL string
	// Token is the bearer token, if the fleet needs one.
	Token string
}

// LoadClient reads the client's configuration from getenv.
func LoadClient(getenv func(string) string) (Client, error) {
	c := Client{URL: DefaultURL, Token: getenv(EnvToken)}
	if v := getenv(EnvURL); v != "" {
		c.URL = strings.TrimRight(v, "/")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Client{}, fmt.Errorf("%s=%q: want a URL such as %s", EnvURL, c.URL, DefaultURL)
	}
	return c, nil
}

// String prints c for people, the token masked.
func (c Client) String() string { return fmt.Sprintf("url=%s token=%s", c.URL, mask(c.Token)) }
