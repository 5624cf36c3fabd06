// Package desktop defines what one desktop is, whatever runs it: the files of
// its run dir, its resolution and theme, the budget file waybar reads, and
// the configuration files (sway, waybar, foot, GTK) of the Atelier look. It is
// the one Go package outside internal/, because //go:embed cannot reach a
// parent directory.
package desktop

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Files in a desktop's run dir, shared between the desktop and the fleet.
const (
	AgentSocket = "agent.sock" // protocol v1 (internal/agentapi)
	VNCSocket   = "vnc.sock"   // RFB, served by wayvnc
	BudgetFile  = "budget"     // JSON Budget, written by the fleet, read by waybar
	ThemeFile   = "theme"      // a palette name, written by the fleet; the agent applies it live
	ReadyFile   = "ready"      // exists once sway, wayvnc and the agent all answer
)

// Paths inside a container or sandbox.
const (
	RunDirPath = "/run/atelier"
	HomePath   = "/home/operator"
)

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
