package supervisor

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Sway IPC message types (sway-ipc(7)) the supervisor uses.
const (
	ipcRunCommand = 0
	ipcGetVersion = 7
)

const ipcMagic = "i3-ipc"

// ipcTimeout bounds one IPC exchange: sway answers in milliseconds unless it
// is hung, which is what the readiness check wants to find out.
const ipcTimeout = 3 * time.Second

// swayIPC sends one message to the sway IPC socket at path and returns the
// payload of its reply. The supervisor talks to sway rarely (readiness,
// reload), so each exchange has its own connection.
func swayIPC(ctx context.Context, path string, typ uint32, payload []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ipcTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("sway ipc: %w", err)
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)

	msg := make([]byte, 0, len(ipcMagic)+8+len(payload))
	msg = append(msg, ipcMagic...)
	msg = binary.NativeEndian.AppendUint32(msg, uint32(len(payload)))
	msg = binary.NativeEndian.AppendUint32(msg, typ)
	msg = append(msg, payload...)
	if _, err := c.Write(msg); err != nil {
		return nil, fmt.Errorf("sway ipc: %w", err)
	}
	var hdr [len(ipcMagic) + 8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, fmt.Errorf("sway ipc: read reply: %w", err)
	}
	if string(hdr[:len(ipcMagic)]) != ipcMagic {
		return nil, errors.New("sway ipc: reply without the i3-ipc magic")
	}
	n := binary.NativeEndian.Uint32(hdr[len(ipcMagic):])
	if n > 16<<20 {
		return nil, fmt.Errorf("sway ipc: reply of %d bytes", n)
	}
	reply := make([]byte, n)
	if _, err := io.ReadFull(c, reply); err != nil {
		return nil, fmt.Errorf("sway ipc: read reply: %w", err)
	}
	return reply, nil
}

// swayCommand runs a sway command (such as "reload") and reports sway's
// refusal as an error.
func swayCommand(ctx context.Context, path, command string) error {
	reply, err := swayIPC(ctx, path, ipcRunCommand, []byte(command))
	if err != nil {
		return err
	}
	var results []struct {
		Success bool   `json:"success"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal(reply, &results); err != nil {
		return fmt.Errorf("sway %q: decode reply: %w", command, err)
	}
	for _, r := range results {
		if !r.Success {
			return fmt.Errorf("sway %q: %s", command, r.Error)
		}
	}
	return nil
}
