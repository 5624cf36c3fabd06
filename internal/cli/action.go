package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"atelier/internal/agentapi"
)

// maxActionInput bounds what action reads on stdin.
const maxActionInput = 16 << 20

func runAction(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "action", "--socket PATH [-o FILE] < actions.json")
	socket := fs.String("socket", "", "the desktop's agent.sock")
	out := fs.String("o", "", "write a screenshot's image to `FILE` (a list's later screenshots go to FILE-2, FILE-3…)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *socket == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: action needs --socket and reads the actions on stdin", ErrUsage)
	}
	in, err := io.ReadAll(io.LimitReader(env.Stdin, maxActionInput+1))
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if len(in) > maxActionInput {
		return fmt.Errorf("stdin is over %d bytes", maxActionInput)
	}
	// Every action is checked before the first is sent: a bad one in a list
	// means none runs.
	reqs, err := decodeActions(in)
	if err != nil {
		return err
	}
	client := agentapi.UnixClient(*socket)
	defer client.Close()
	shots := 0
	for i, req := range reqs {
		resp, err := client.Do(ctx, req)
		if err != nil && resp.Error == nil {
			return fmt.Errorf("action %d (%s): %w", i+1, req.Action, err)
		}
		if resp.Image != nil {
			shots++
			if err := saveImage(env, *out, shots, resp.Image); err != nil {
				return err
			}
		}
		line, jerr := json.Marshal(resp)
		if jerr != nil {
			return jerr
		}
		if _, werr := fmt.Fprintf(env.Stdout, "%s\n", line); werr != nil {
			return werr
		}
		if err != nil {
			return fmt.Errorf("action %d (%s): %w", i+1, req.Action, err)
		}
	}
	return nil
}

// decodeActions parses one JSON action or a JSON list of them, strictly, as
// the agent does. "v" may be left out and means the current version, as the
// seed's atelier-action-cli allowed; any other explicit version is refused.
func decodeActions(in []byte) ([]agentapi.Request, error) {
	in = bytes.TrimSpace(in)
	var raws []json.RawMessage
	if bytes.HasPrefix(in, []byte("[")) {
		if err := json.Unmarshal(in, &raws); err != nil {
			return nil, fmt.Errorf("stdin: want one JSON action or a list of them: %w", err)
		}
	} else {
		raws = []json.RawMessage{in}
	}
	if len(raws) == 0 {
		return nil, errors.New("stdin: no action")
	}
	reqs := make([]agentapi.Request, len(raws))
	for i, raw := range raws {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
			return nil, fmt.Errorf("action %d: not a JSON object", i+1)
		}
		if _, ok := fields["v"]; !ok {
			fields["v"] = json.RawMessage(fmt.Sprint(agentapi.Version))
			raw, _ = json.Marshal(fields)
		}
		req, err := agentapi.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("action %d: %w", i+1, err)
		}
		reqs[i] = req
	}
	return reqs, nil
}

// saveImage writes the nth screenshot of a run to path (path-n.ext for
// n > 1). Without a path the bytes are dropped, never printed.
func saveImage(env *Env, path string, n int, im *agentapi.Image) error {
	if path == "" {
		fmt.Fprintf(env.Stderr, "atelier: screenshot %d (%d bytes) not saved: give -o FILE\n", n, im.Size)
		return nil
	}
	if n > 1 {
		ext := filepath.Ext(path)
		path = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(path, ext), n, ext)
	}
	if err := os.WriteFile(path, im.Data, 0o644); err != nil {
		return fmt.Errorf("save screenshot: %w", err)
	}
	return nil
}
