// Package agentapitest gives tests stand-ins for a desktop's agent on a
// unix socket, for what a real one cannot be made to do on demand (answer
// as an older build would).
package agentapitest

import (
	"bufio"
	"encoding/json"
	"net"
	"testing"

	"atelier/internal/agentapi"
)

// OlderAgent serves protocol v1 as an agent of a build before every verb:
// it refuses each request with unknown_action. It returns the socket's
// path; the listener closes when the test ends.
func OlderAgent(t testing.TB) string {
	t.Helper()
	sock := t.TempDir() + "/agent.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go refuseAll(conn)
		}
	}()
	return sock
}

func refuseAll(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		line, err := agentapi.ReadRequestLine(r)
		if err != nil {
			return
		}
		var req struct {
			ID     string `json:"id"`
			Action string `json:"action"`
		}
		json.Unmarshal(line, &req)
		agentapi.WriteResponse(conn, &agentapi.Response{ID: req.ID, Error: agentapi.Errorf(agentapi.CodeUnknownAction, "unknown action %q", req.Action)})
	}
}
