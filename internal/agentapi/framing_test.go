package agentapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/agentapi/agentapitest"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func TestResponseFramingCarriesImageBytes(t *testing.T) {
	var buf bytes.Buffer
	img := []byte("\x89PNG\r\n\x1a\n\n\nbinary\x00with newlines\n")
	if err := agentapi.WriteResponse(&buf, &agentapi.Response{ID: "a", OK: true, Image: &agentapi.Image{Format: "png", Width: 2, Height: 1, Scale: 1, Data: img}}); err != nil {
		t.Fatal(err)
	}
	if err := agentapi.WriteResponse(&buf, &agentapi.Response{ID: "b", OK: true, Cursor: &agentapi.Point{X: 3, Y: 4}}); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(&buf)
	first, err := agentapi.ReadResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != "a" || first.V != agentapi.Version || !bytes.Equal(first.Image.Data, img) {
		t.Fatalf("first response = %+v (image %q), want id a with the image bytes", first, first.Image.Data)
	}
	second, err := agentapi.ReadResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != "b" || *second.Cursor != (agentapi.Point{X: 3, Y: 4}) {
		t.Fatalf("second response = %+v, want id b at [3,4]", second)
	}
}

func TestReadRequestLineResyncsAfterOversizedLine(t *testing.T) {
	in := strings.Repeat("x", agentapi.MaxRequestBytes+10) + "\n" + `{"v":1,"action":"status"}` + "\n"
	r := bufio.NewReaderSize(strings.NewReader(in), 4096)
	_, err := agentapi.ReadRequestLine(r)
	var pe *agentapi.Error
	if !errors.As(err, &pe) || pe.Code != agentapi.CodeTooLarge {
		t.Fatalf("oversized line: got %v, want %s", err, agentapi.CodeTooLarge)
	}
	line, err := agentapi.ReadRequestLine(r)
	if err != nil || string(line) != `{"v":1,"action":"status"}` {
		t.Fatalf("next line = %q, %v; want the status request", line, err)
	}
}

// TestClientRedialsAndTimesOut runs the client against a small server on a
// real unix socket: a dropped connection is redialled, and a server that
// never answers yields CodeTimeout once the context expires.
func TestClientRedialsAndTimesOut(t *testing.T) {
	sock := t.TempDir() + "/agent.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// hungUp tells the test a connection is closed, so its next request
	// meets a stale connection rather than racing the close.
	hungUp := make(chan struct{}, 4)
	go func() {
		for n := 0; ; n++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(conn)
			line, err := agentapi.ReadRequestLine(r)
			if err != nil {
				conn.Close()
				continue
			}
			req, _ := agentapi.Decode(line)
			switch req.Action {
			case agentapi.StatusVerb: // answer, then hang up to force a redial
				agentapi.WriteResponse(conn, &agentapi.Response{ID: req.ID, OK: true, Status: &agentapi.Status{Width: 1280}})
				conn.Close()
				hungUp <- struct{}{}
			case agentapi.Wait: // never answer
				defer conn.Close()
			default:
				agentapi.WriteResponse(conn, &agentapi.Response{ID: req.ID, Error: agentapi.Errorf(agentapi.CodeBadKey, "no")})
				conn.Close()
				hungUp <- struct{}{}
			}
		}
	}()

	c := agentapi.UnixClient(sock)
	defer c.Close()
	ctx := t.Context()
	for i := range 2 {
		resp, err := c.Do(ctx, agentapi.Request{Action: agentapi.StatusVerb})
		if err != nil || resp.Status.Width != 1280 {
			t.Fatalf("status #%d = %+v, %v", i, resp, err)
		}
		<-hungUp
	}
	_, err = c.Do(ctx, agentapi.Request{Action: agentapi.Key, Text: "nope"})
	var pe *agentapi.Error
	if !errors.As(err, &pe) || pe.Code != agentapi.CodeBadKey {
		t.Fatalf("key: got %v, want %s", err, agentapi.CodeBadKey)
	}
	<-hungUp
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = c.Do(tctx, agentapi.Request{Action: agentapi.Wait, Duration: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung server: got %v, want the context's deadline", err)
	}
}

// An agent older than its fleet refuses a verb the fleet's protocol has:
// the client says so and how to mend it, rather than "unknown action".
func TestClientReportsOutdatedAgent(t *testing.T) {
	sock := agentapitest.OlderAgent(t)
	c := agentapi.UnixClient(sock)
	defer c.Close()
	_, err := c.Do(t.Context(), agentapi.Request{Action: agentapi.HoldKey, Text: "shift", Duration: 0.1})
	var pe *agentapi.Error
	if !errors.As(err, &pe) || pe.Code != agentapi.CodeAgentOutdated || !strings.Contains(pe.Message, "stop and start the session") {
		t.Fatalf("a known verb refused as unknown: got %v, want %s with the remedy", err, agentapi.CodeAgentOutdated)
	}
	_, err = c.Do(t.Context(), agentapi.Request{Action: "teleport"})
	if !errors.As(err, &pe) || pe.Code != agentapi.CodeUnknownAction {
		t.Fatalf("a verb nobody has: got %v, want %s unchanged", err, agentapi.CodeUnknownAction)
	}
}
