package agent

// Captures is how many screenshots s captured and encoded, rather than
// returned again.
func Captures(s *Server) uint64 { return s.captures.Load() }

// PSNR is psnr for the external tests.
var PSNR = psnr

// MirrorState is the state of the display's current copy of the screen:
// full-size buffers held, screenshots served from it.
func MirrorState(s *Server) (buffers int, served uint64) {
	s.connMu.Lock()
	d := s.disp
	s.connMu.Unlock()
	if d == nil {
		return 0, 0
	}
	return d.MirrorState()
}
