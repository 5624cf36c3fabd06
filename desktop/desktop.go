// Package desktop defines what one desktop is, whatever runs it: the files of
// its run dir, its resolution and theme, the budget file waybar reads, and
// the configuration files (sway, waybar, foot, GTK) of the Atelier look. It is
// the one Go package outside internal/, because //go:embed cannot reach a
// parent directory.
package desktop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Files in a desktop's run dir, shared between the desktop and the fleet.
const (
	AgentSocket = "agent.sock" // protocol v1 (internal/agentapi)
	VNCSocket   = "vnc.sock"   // RFB, served by wayvnc
	BudgetFile  = "budget"     // JSON Budget, written by the fleet, read by waybar
	ThemeFile   = "theme"      // a palette name, written by the fleet; the agent applies it live
	// ResolutionFile holds WIDTHxHEIGHT, written by the fleet; the agent
	// sets the output's mode to it live.
	ResolutionFile = "resolution"
	ReadyFile      = "ready" // exists once sway, wayvnc and the agent all answer
)

// Paths inside a container or sandbox.
const (
	RunDirPath = "/run/atelier"
	HomePath   = "/home/operator"
	// GateDirPath is the fleet's gate dir, read-only in the desktop: the
	// egress gateway listens on GateSocket in it.
	GateDirPath = "/run/atelier-gate"
	GateSocket  = "egress.sock"
)

// FrameClockFile is the library (built from frameclock/frameclock.c) that
// lets an idle sway sleep instead of waking 60 times a second. The agent
// preloads it into sway when it lies beside the agent's own executable; a
// desktop without it works the same, only with the busier clock.
const FrameClockFile = "atelier-frameclock.so"

// ImageUID and ImageGID are the desktop user's (operator) in the desktop
// image (desktop/Dockerfile): the owner of the home in a container.
const (
	ImageUID = 1000
	ImageGID = 1000
)

// ProxyAddr is where the agent serves the egress proxy on the desktop's own
// loopback; the desktop's programs get it as their http(s)_proxy.
const ProxyAddr = "127.0.0.1:3128"

// Ready reports whether the agent's ready file is in runDir, a desktop's
// run dir seen from the host. A link the desktop planted there is not
// followed.
func Ready(runDir string) bool {
	_, err := os.Lstat(filepath.Join(runDir, ReadyFile))
	return err == nil
}

// ProxyEnv is the environment that points a desktop's programs (curl,
// Firefox through its "system" proxy setting, most tools) at the egress
// proxy, in both the lower- and uppercase spellings tools read.
func ProxyEnv() []string {
	url := "http://" + ProxyAddr
	return []string{
		"http_proxy=" + url, "https_proxy=" + url, "HTTP_PROXY=" + url, "HTTPS_PROXY=" + url,
		"ALL_PROXY=" + url, "all_proxy=" + url,
		"no_proxy=localhost,127.0.0.1,::1", "NO_PROXY=localhost,127.0.0.1,::1",
	}
}

// Resolution is the size of the desktop's output in pixels.
type Resolution struct{ Width, Height int }

// DefaultResolution is used when a session names none.
var DefaultResolution = Resolution{1280, 720}

// Bounds of a resolution a desktop accepts.
const (
	MinWidth, MinHeight = 640, 480
	MaxWidth, MaxHeight = 3840, 2160
)

func (r Resolution) String() string { return fmt.Sprintf("%dx%d", r.Width, r.Height) }

// ParseResolution parses "WIDTHxHEIGHT" and checks its bounds.
func ParseResolution(s string) (Resolution, error) {
	ws, hs, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	w, errW := strconv.Atoi(ws)
	h, errH := strconv.Atoi(hs)
	if !ok || errW != nil || errH != nil {
		return Resolution{}, fmt.Errorf("resolution %q: want WIDTHxHEIGHT, such as 1280x720", s)
	}
	r := Resolution{w, h}
	return r, r.Validate()
}

// Validate checks that r is within the bounds a desktop accepts.
func (r Resolution) Validate() error {
	if r.Width < MinWidth || r.Height < MinHeight || r.Width > MaxWidth || r.Height > MaxHeight {
		return fmt.Errorf("resolution %s: want from %dx%d to %dx%d", r, MinWidth, MinHeight, MaxWidth, MaxHeight)
	}
	if r.Width%2 != 0 || r.Height%2 != 0 {
		return fmt.Errorf("resolution %s: width and height must be even", r)
	}
	return nil
}

// ErrUnknownTheme is returned for a palette name that does not exist.
var ErrUnknownTheme = errors.New("unknown theme")
