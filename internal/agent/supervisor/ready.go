package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"atelier/desktop"
	"atelier/internal/agentapi"
)

// Readiness is checked this often, sooner after any component changes state.
// While the desktop stays ready the interval doubles up to checkReadyMax: an
// exit already wakes the loop at once, so the periodic check only looks for a
// component that runs but no longer answers, and each check wakes sway, wayvnc
// and the agent (most of an idle desktop's agent CPU at a fixed 2 s).
const (
	checkReady    = 2 * time.Second
	checkReadyMax = 16 * time.Second
	checkNotReady = 250 * time.Millisecond
	probeTimeout  = 2 * time.Second
)

// nextCheck is the wait after a check that found the desktop ready or not,
// given the previous wait.
func nextCheck(prev time.Duration, ready bool) time.Duration {
	if !ready {
		return checkNotReady
	}
	if prev < checkReady {
		return checkReady
	}
	return min(2*prev, checkReadyMax)
}

// rfbBanner is how an RFB 3.8 server (wayvnc) greets a client.
const rfbBanner = "RFB 003.008\n"

// pokeReady asks the readiness loop to check now.
func (s *Supervisor) pokeReady() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// watchReady keeps the ready file in step with the desktop until ctx is done.
func (s *Supervisor) watchReady(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	var wait time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.poke:
			wait = 0 // a state change: check closely again
		}
		err := s.check(ctx)
		if ctx.Err() != nil {
			return
		}
		s.setReady(err == nil, err)
		wait = nextCheck(wait, err == nil)
		t.Reset(wait)
	}
}

// check reports why the desktop is not ready, or nil: sway must answer on
// IPC, wayvnc must greet on vnc.sock and the agent must answer a status
// request on agent.sock.
func (s *Supervisor) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	s.mu.Lock()
	swayState := s.comps[Sway].State
	s.mu.Unlock()
	if swayState != agentapi.StateRunning {
		return fmt.Errorf("sway is %s", swayState)
	}
	if _, err := swayIPC(ctx, s.swaySock, ipcGetVersion, nil); err != nil {
		return err
	}
	if err := checkRFB(ctx, s.vncSock); err != nil {
		return fmt.Errorf("wayvnc: %w", err)
	}
	c := agentapi.UnixClient(s.agentSock)
	defer c.Close()
	if _, err := c.Do(ctx, agentapi.Request{Action: agentapi.StatusVerb}); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// checkRFB connects to the RFB server at path and reads its banner.
func checkRFB(ctx context.Context, path string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	b := make([]byte, len(rfbBanner))
	if _, err := io.ReadFull(c, b); err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	if !bytes.Equal(b, []byte(rfbBanner)) {
		return fmt.Errorf("banner %q, want %q", b, rfbBanner)
	}
	return nil
}

// setReady writes or removes the ready file when readiness changes.
func (s *Supervisor) setReady(ready bool, why error) {
	s.mu.Lock()
	changed := ready != s.ready
	s.ready = ready
	s.mu.Unlock()
	path := filepath.Join(s.opts.RunDir, desktop.ReadyFile)
	if ready {
		if !changed {
			return
		}
		tmp := path + ".tmp"
		err := os.WriteFile(tmp, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			s.log.Error("write ready file", "err", err)
			return
		}
		s.log.Info("desktop ready")
		return
	}
	os.Remove(path)
	if changed {
		s.log.Warn("desktop not ready", "err", why)
	}
}
