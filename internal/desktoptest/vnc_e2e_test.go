package desktoptest_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/agent/supervisor"
	"atelier/internal/agentapi"
	"atelier/internal/desktoptest"
)

// rfbHandshake dials vnc.sock and goes through the RFB 3.8 handshake with
// no authentication, returning the connection and the framebuffer size.
func rfbHandshake(t *testing.T, d *desktoptest.Desktop) (net.Conn, uint16, uint16) {
	t.Helper()
	conn, err := net.Dial("unix", filepath.Join(d.RunDir, desktop.VNCSocket))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	read := func(n int) []byte {
		b := make([]byte, n)
		if _, err := io.ReadFull(conn, b); err != nil {
			t.Fatalf("rfb handshake: %v", err)
		}
		return b
	}
	if v := string(read(12)); v != "RFB 003.008\n" {
		t.Fatalf("banner %q", v)
	}
	conn.Write([]byte("RFB 003.008\n"))
	types := read(int(read(1)[0]))
	none := false
	for _, ty := range types {
		none = none || ty == 1
	}
	if !none {
		t.Fatalf("security types %v offer no None", types)
	}
	conn.Write([]byte{1})
	if r := binary.BigEndian.Uint32(read(4)); r != 0 {
		t.Fatalf("security result %d", r)
	}
	conn.Write([]byte{1}) // ClientInit: shared
	init := read(24)
	w, h := binary.BigEndian.Uint16(init[0:2]), binary.BigEndian.Uint16(init[2:4])
	read(int(binary.BigEndian.Uint32(init[20:24]))) // the desktop's name
	return conn, w, h
}

// TestDesktopVNCViewerLeavesMidFrame closes viewers in the middle of a
// full, uncompressed frame: wayvnc then writes to a closed socket, which
// must not kill it (SIGPIPE).
func TestDesktopVNCViewerLeavesMidFrame(t *testing.T) {
	skipShort(t)
	d := desktoptest.Start(t, desktoptest.Options{})
	before := component(t, d, supervisor.WayVNC)
	if !ignoresSIGPIPE(t, before.PID) {
		t.Errorf("wayvnc (pid %d) does not ignore SIGPIPE", before.PID)
	}
	// Raw, then the encodings noVNC asks for, each encoded its own way.
	for _, enc := range []int32{0, 16, 7, 0, 16, 7} {
		conn, w, h := rfbHandshake(t, d)
		setEnc := []byte{2, 0, 0, 1, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(setEnc[4:], uint32(enc))
		if _, err := conn.Write(setEnc); err != nil {
			t.Fatal(err)
		}
		// FramebufferUpdateRequest, not incremental, the whole screen: with
		// the default raw encoding, megabytes follow.
		req := []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(req[6:], w)
		binary.BigEndian.PutUint16(req[8:], h)
		if _, err := conn.Write(req); err != nil {
			t.Fatal(err)
		}
		// The update's header and first rectangle header: the frame is under way.
		if _, err := io.ReadFull(conn, make([]byte, 4+12+64)); err != nil {
			t.Fatalf("no frame after a full update request: %v", err)
		}
		conn.Close()
	}
	// Still the same wayvnc, and it answers.
	conn, _, _ := rfbHandshake(t, d)
	conn.Close()
	if c := component(t, d, supervisor.WayVNC); c.State != agentapi.StateRunning || c.PID != before.PID {
		t.Errorf("wayvnc after viewers left mid-frame: %+v, want running as pid %d", c, before.PID)
	}
}

// ignoresSIGPIPE reads whether process pid ignores SIGPIPE.
func ignoresSIGPIPE(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if hex, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatalf("SigIgn %q: %v", hex, err)
			}
			return mask&(1<<(syscall.SIGPIPE-1)) != 0
		}
	}
	t.Fatalf("no SigIgn in /proc/%d/status", pid)
	return false
}
