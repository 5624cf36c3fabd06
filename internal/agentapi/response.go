package agentapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Response answers one request. OK is false exactly when Error is set.
type Response struct {
	V     int    `json:"v"`
	ID    string `json:"id,omitempty"`
	OK    bool   `json:"ok"`
	Error *Error `json:"error,omitempty"`
	// Cursor is where the pointer is after the action.
	Cursor *Point `json:"cursor,omitempty"`
	// Image describes the screenshot whose bytes follow the line.
	Image  *Image  `json:"image,omitempty"`
	Status *Status `json:"status,omitempty"`
	// Settle reports how a settle went.
	Settle *SettleResult `json:"settle,omitempty"`
	// Clipboard is what clipboard_get read.
	Clipboard *Clipboard `json:"clipboard,omitempty"`
}

// maxResponseLine bounds a response's line: a clipboard's text of
// MaxClipboardBytes, every byte escaped (\u0000) at worst.
const maxResponseLine = 6*MaxClipboardBytes + 4<<10

// Clipboard is the clipboard's content: Data is the text itself, or for
// image/png the PNG in standard base64; Size is the content's bytes.
type Clipboard struct {
	Mime string `json:"mime"`
	Data string `json:"data"`
	Size int    `json:"size"`
}

// SettleResult is the outcome of a settle: whether the screen went still
// (or the ceiling came first), how long it took in seconds, and how many
// changed frames were seen meanwhile.
type SettleResult struct {
	Still  bool    `json:"still"`
	Waited float64 `json:"waited"`
	Frames int     `json:"frames"`
}

// Image is a screenshot. Width and Height are the image's own pixels; Scale
// is image pixels per output pixel, so output = image / Scale.
type Image struct {
	Format string  `json:"format"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	Scale  float64 `json:"scale"`
	// Region is the part of the output captured (the whole output if nil).
	Region *Region `json:"region,omitempty"`
	Size   int     `json:"size"`
	Data   []byte  `json:"-"`
}

// Status reports the desktop: its output size and the state of each
// supervised component.
type Status struct {
	Width      int         `json:"width"`
	Height     int         `json:"height"`
	Ready      bool        `json:"ready"`
	Components []Component `json:"components"`
	// AgentVersion is the agent's build and Verbs the verbs it serves, so
	// a fleet can tell an agent older than itself (added 2026-12-04; an
	// agent from before reports neither).
	AgentVersion string `json:"agent_version,omitempty"`
	Verbs        []Verb `json:"verbs,omitempty"`
}

// Component states.
const (
	StateStarting   = "starting"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateStopped    = "stopped"
)

// Component is one supervised process of the desktop.
type Component struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	PID       int       `json:"pid,omitempty"`
	Restarts  int       `json:"restarts"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
}

// WriteResponse writes resp as one line, then the image bytes if any.
func WriteResponse(w io.Writer, resp *Response) error {
	resp.V = Version
	if resp.Image != nil {
		resp.Image.Size = len(resp.Image.Data)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return err
	}
	if resp.Image != nil {
		if _, err := w.Write(resp.Image.Data); err != nil {
			return err
		}
	}
	return nil
}

// ReadResponse reads one response line and the image bytes that follow it.
func ReadResponse(r *bufio.Reader) (Response, error) {
	var resp Response
	line, err := readLine(r, maxResponseLine)
	if err != nil {
		return resp, err
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return resp, fmt.Errorf("decode response: %w", err)
	}
	if im := resp.Image; im != nil {
		if im.Size < 0 || im.Size > MaxImageBytes {
			return resp, fmt.Errorf("image of %d bytes is over the %d limit", im.Size, MaxImageBytes)
		}
		im.Data = make([]byte, im.Size)
		if _, err := io.ReadFull(r, im.Data); err != nil {
			return resp, fmt.Errorf("read image: %w", err)
		}
	}
	return resp, nil
}

// ReadRequestLine reads one request line of at most MaxRequestBytes. A
// longer line is consumed whole and reported as CodeTooLarge, so the stream
// stays in step for the next request.
func ReadRequestLine(r *bufio.Reader) ([]byte, error) {
	return readLine(r, MaxRequestBytes)
}

func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > limit+1 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			if err == io.EOF && (len(line) > 0 || tooLong) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if tooLong {
			return nil, Errorf(CodeTooLarge, "request line is over %d bytes", limit)
		}
		return line[:len(line)-1], nil
	}
}
