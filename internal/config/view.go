package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"atelier/internal/version"
)

// Environment variables of the live view and the docker runtime.
const (
	EnvPublicURL      = "ATELIER_PUBLIC_URL"
	EnvFrameAncestors = "ATELIER_FRAME_ANCESTORS"
	EnvEmbedTTL       = "ATELIER_EMBED_TTL"
	EnvNoVNCDir       = "ATELIER_NOVNC_DIR"
	EnvDockerImage    = "ATELIER_DOCKER_IMAGE"
	EnvDockerNetwork  = "ATELIER_DOCKER_NETWORK"
	EnvControlIdle    = "ATELIER_CONTROL_IDLE"
)

// Defaults of the live view.
const (
	DefaultFrameAncestors = "*"
	DefaultEmbedTTL       = time.Hour
	DefaultNoVNCDir       = "/usr/share/novnc"
	// DefaultControlIdle is how long a person's control lease lasts
	// without input before it returns by itself.
	DefaultControlIdle = 5 * time.Minute
)

// DefaultDockerImage is the desktop image scripts/build-image.sh tags for
// this build's version.
func DefaultDockerImage() string { return "atelier/desktop:" + version.Version }

// View configures the live view.
type View struct {
	// PublicURL prefixes the links in the session JSON
	// ("https://fleet.example"); empty means origin-relative links.
	PublicURL string
	// FrameAncestors is the CSP frame-ancestors list: which pages may
	// embed the viewer.
	FrameAncestors string
	// EmbedTTL is the lifetime of the links in the session JSON.
	EmbedTTL time.Duration
	// NoVNCDir holds noVNC's files (core/rfb.js).
	NoVNCDir string
	// ControlIdle returns a person's control lease after this long
	// without input.
	ControlIdle time.Duration
}

// Docker configures the docker runtime.
type Docker struct {
	// Image is the desktop image.
	Image string
	// Network is the Docker network desktops join; "" means none.
	Network string
}

// loadExtras reads the live view's and the docker runtime's settings from
// getenv and declares their flags on fs.
func (c *Config) loadExtras(getenv func(string) string, fs *flag.FlagSet) error {
	c.View = View{PublicURL: getenv(EnvPublicURL), FrameAncestors: DefaultFrameAncestors, EmbedTTL: DefaultEmbedTTL, NoVNCDir: DefaultNoVNCDir, ControlIdle: DefaultControlIdle}
	if v := getenv(EnvFrameAncestors); v != "" {
		c.View.FrameAncestors = v
	}
	if v := getenv(EnvNoVNCDir); v != "" {
		c.View.NoVNCDir = v
	}
	if v := getenv(EnvEmbedTTL); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s=%q: want a duration such as 1h or 30m", EnvEmbedTTL, v)
		}
		c.View.EmbedTTL = d
	}
	if v := getenv(EnvControlIdle); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s=%q: want a duration such as 5m or 90s", EnvControlIdle, v)
		}
		c.View.ControlIdle = d
	}
	c.Docker = Docker{Image: DefaultDockerImage(), Network: getenv(EnvDockerNetwork)}
	if v := getenv(EnvDockerImage); v != "" {
		c.Docker.Image = v
	}
	fs.StringVar(&c.View.PublicURL, "public-url", c.View.PublicURL, "URL the fleet is reached at, prefixing live-view links (env "+EnvPublicURL+")")
	fs.StringVar(&c.View.FrameAncestors, "frame-ancestors", c.View.FrameAncestors, "pages that may embed the live view, a CSP source list (env "+EnvFrameAncestors+")")
	fs.DurationVar(&c.View.EmbedTTL, "embed-ttl", c.View.EmbedTTL, "lifetime of the live-view links in session JSON (env "+EnvEmbedTTL+")")
	fs.StringVar(&c.View.NoVNCDir, "novnc-dir", c.View.NoVNCDir, "directory of noVNC's files (env "+EnvNoVNCDir+")")
	fs.DurationVar(&c.View.ControlIdle, "control-idle", c.View.ControlIdle, "a person's control lease returns after this long without input (env "+EnvControlIdle+")")
	fs.StringVar(&c.Docker.Image, "docker-image", c.Docker.Image, "desktop image of the docker runtime (env "+EnvDockerImage+")")
	fs.StringVar(&c.Docker.Network, "docker-network", c.Docker.Network, "Docker network desktops join; empty: none (env "+EnvDockerNetwork+")")
	c.loadKube(getenv, fs)
	return nil
}

// validateExtras checks the live view's and the docker runtime's settings.
func (c Config) validateExtras() []error {
	var errs []error
	if u := c.View.PublicURL; u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || strings.HasSuffix(u, "/") || p.RawQuery != "" {
			errs = append(errs, fmt.Errorf("%s %q: want an http(s) URL with no trailing slash, such as https://fleet.example", EnvPublicURL, u))
		}
	}
	if c.View.EmbedTTL <= 0 || c.View.EmbedTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("embed ttl %v: want more than 0 and at most 720h", c.View.EmbedTTL))
	}
	if c.View.ControlIdle < time.Second || c.View.ControlIdle > 24*time.Hour {
		errs = append(errs, fmt.Errorf("control idle %v: want from 1s to 24h", c.View.ControlIdle))
	}
	if c.View.FrameAncestors == "" || strings.ContainsAny(c.View.FrameAncestors, ";,\r\n") {
		errs = append(errs, fmt.Errorf("frame ancestors %q: want a CSP source list such as * or 'self' https://app.example", c.View.FrameAncestors))
	}
	if c.Runtime == "docker" && c.Docker.Image == "" {
		errs = append(errs, errors.New("docker image is empty: pass --docker-image"))
	}
	return append(errs, c.validateKube()...)
}
