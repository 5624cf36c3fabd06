package agent

// Captures is how many screenshots s captured and encoded, rather than
// returned again.
func Captures(s *Server) uint64 { return s.captures.Load() }

// PSNR is psnr for the external tests.
var PSNR = psnr
