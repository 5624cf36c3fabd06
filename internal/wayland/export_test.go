package wayland

import "time"

// SetKeepMirror makes the mirror stop keep after the last screenshot, until
// the returned func restores it.
func SetKeepMirror(keep time.Duration) (restore func()) {
	old := keepMirror
	keepMirror = keep
	return func() { keepMirror = old }
}
