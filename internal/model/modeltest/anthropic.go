package modeltest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// AnthropicStep is one reply of an Anthropic Messages transcript.
type AnthropicStep struct {
	// Content is the list of content blocks, as the API sends them
	// ({"type":"text",…}, {"type":"tool_use","id":…,"name":"computer","input":{…}}).
	Content    []json.RawMessage `json:"content"`
	StopReason string            `json:"stop_reason"` // default: tool_use if any tool_use, else end_turn
	Usage      AnthropicUsage    `json:"usage"`
	// Failure instead of a reply: status 429, 529, 500…; ErrorType as the
	// API names it (rate_limit_error, overloaded_error, api_error).
	Status    int    `json:"status"`
	ErrorType string `json:"error_type"`
	Error     string `json:"error"`
	Hang      bool   `json:"hang"`
}

// AnthropicUsage is the usage of one reply.
type AnthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// Anthropic starts a fake Anthropic API replaying the transcript at path.
func Anthropic(t testing.TB, path string) *Server {
	return AnthropicSteps(t, loadTranscript[AnthropicStep](t, path))
}

// AnthropicSteps is Anthropic with the steps given directly.
func AnthropicSteps(t testing.TB, steps []AnthropicStep) *Server {
	return start(t, func(s *Server, w http.ResponseWriter, r *http.Request) {
		req, n := s.record(r)
		reqID := fmt.Sprintf("req_011CV%014d", n+1)
		w.Header().Set("request-id", reqID)
		fail := func(status int, typ, msg string) {
			writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}, "request_id": reqID})
		}
		if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
			fail(http.StatusNotFound, "not_found_error", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
			return
		}
		// SDK v2 sends the key as a bearer token; older clients as x-api-key.
		if r.Header.Get("x-api-key") == "" && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			fail(http.StatusUnauthorized, "authentication_error", "x-api-key or Authorization header is required")
			return
		}
		if msg := unpairedToolUse(req.Body); msg != "" {
			fail(http.StatusBadRequest, "invalid_request_error", msg)
			return
		}
		if n >= len(steps) {
			fail(http.StatusInternalServerError, "api_error", "transcript exhausted")
			return
		}
		st := steps[n]
		switch {
		case st.Hang:
			s.hang(r)
			return
		case st.Status != 0:
			if st.Status == http.StatusTooManyRequests {
				w.Header().Set("retry-after", "0")
			}
			fail(st.Status, st.ErrorType, st.Error)
			return
		}
		stop := st.StopReason
		if stop == "" {
			stop = "end_turn"
			for _, b := range st.Content {
				var head struct{ Type string }
				if json.Unmarshal(b, &head) == nil && head.Type == "tool_use" {
					stop = "tool_use"
				}
			}
		}
		model, _ := req.Body["model"].(string)
		u := st.Usage
		writeJSON(w, http.StatusOK, map[string]any{
			"id": fmt.Sprintf("msg_01%022d", n+1), "type": "message", "role": "assistant", "model": model,
			"content": st.Content, "stop_reason": stop, "stop_sequence": nil,
			"usage": map[string]any{
				"input_tokens": u.InputTokens, "output_tokens": u.OutputTokens,
				"cache_creation_input_tokens": u.CacheCreationInputTokens, "cache_read_input_tokens": u.CacheReadInputTokens,
				"cache_creation":  map[string]any{"ephemeral_5m_input_tokens": u.CacheCreationInputTokens, "ephemeral_1h_input_tokens": 0},
				"server_tool_use": nil, "service_tier": "standard",
			},
		})
	})
}

// unpairedToolUse says what the real API refuses about a conversation's
// tool use: a tool_use without a tool_result in the very next message.
func unpairedToolUse(body map[string]any) string {
	msgs, _ := body["messages"].([]any)
	blocks := func(i int) []any {
		if i >= len(msgs) {
			return nil
		}
		m, _ := msgs[i].(map[string]any)
		c, _ := m["content"].([]any)
		return c
	}
	for i := range msgs {
		answered := map[any]bool{}
		for _, b := range blocks(i + 1) {
			if bm, _ := b.(map[string]any); bm["type"] == "tool_result" {
				answered[bm["tool_use_id"]] = true
			}
		}
		for _, b := range blocks(i) {
			if bm, _ := b.(map[string]any); bm["type"] == "tool_use" && i+1 < len(msgs) && !answered[bm["id"]] {
				return fmt.Sprintf("messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %v", i, bm["id"])
			}
		}
	}
	return ""
}
