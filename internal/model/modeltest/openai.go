package modeltest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// OpenAIStep is one reply of an OpenAI-compatible transcript.
type OpenAIStep struct {
	// Content is the assistant message's content. A JSON object is sent as
	// its compact text (what structured output produces); a string as is.
	Content json.RawMessage `json:"content"`
	// Reasoning is the thinking trace, sent as vLLM does in "reasoning"
	// (or as H's API does in "reasoning_content" when ReasoningContent).
	Reasoning        string `json:"reasoning"`
	ReasoningContent bool   `json:"reasoning_content"`
	// ToolCalls are native function calls (as Holo3.1 makes when sent
	// tools), sent in the message's tool_calls.
	ToolCalls        []OpenAIToolCall `json:"tool_calls"`
	FinishReason     string           `json:"finish_reason"` // default "stop", or "tool_calls" with ToolCalls
	PromptTokens     int64            `json:"prompt_tokens"`
	CompletionTokens int64            `json:"completion_tokens"`
	CachedTokens     int64            `json:"cached_tokens"`
	// DelayMS holds the reply this long, as a slow model would.
	DelayMS int `json:"delay_ms"`
	// Failure instead of a reply.
	Status int    `json:"status"`
	Error  string `json:"error"`
	Hang   bool   `json:"hang"`
}

// OpenAIToolCall is one function call of a reply.
type OpenAIToolCall struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"` // sent as its text, as the API does
}

// OpenAI starts a fake OpenAI-compatible server (as vLLM serves
// /v1/chat/completions) replaying the transcript at path. Its URL ends in
// /v1, like HOLO3_ENDPOINT.
func OpenAI(t testing.TB, path string) *Server {
	return OpenAISteps(t, loadTranscript[OpenAIStep](t, path))
}

// OpenAISteps is OpenAI with the steps given directly.
func OpenAISteps(t testing.TB, steps []OpenAIStep) *Server {
	s := start(t, func(s *Server, w http.ResponseWriter, r *http.Request) {
		req, n := s.record(r)
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			writeJSON(w, http.StatusNotFound, openAIError(fmt.Sprintf("no route %s %s", r.Method, r.URL.Path), "NotFoundError", 404))
			return
		}
		if n >= len(steps) {
			writeJSON(w, http.StatusInternalServerError, openAIError("transcript exhausted", "InternalServerError", 500))
			return
		}
		if msg := badToolUse(req.Body); msg != "" {
			writeJSON(w, http.StatusBadRequest, openAIError(msg, "BadRequestError", 400))
			return
		}
		st := steps[n]
		if st.DelayMS > 0 {
			select {
			case <-time.After(time.Duration(st.DelayMS) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case st.Hang:
			s.hang(r)
			return
		case st.Status != 0:
			writeJSON(w, st.Status, openAIError(st.Error, http.StatusText(st.Status), st.Status))
			return
		}
		var content any = string(st.Content)
		var str string
		if json.Unmarshal(st.Content, &str) == nil {
			content = str
		}
		finish := st.FinishReason
		calls := []any{}
		for i, tc := range st.ToolCalls {
			calls = append(calls, map[string]any{
				"id": fmt.Sprintf("chatcmpl-tool-%d%d", n+1, i), "type": "function",
				"function": map[string]any{"name": tc.Name, "arguments": string(tc.Arguments)},
			})
			finish = cmp.Or(finish, "tool_calls")
			if len(st.Content) == 0 {
				content = nil
			}
		}
		model, _ := req.Body["model"].(string)
		msg := map[string]any{
			"role": "assistant", "content": content, "refusal": nil, "annotations": nil, "audio": nil,
			"function_call": nil, "tool_calls": calls,
		}
		if st.ReasoningContent {
			msg["reasoning_content"] = st.Reasoning
		} else {
			msg["reasoning"] = st.Reasoning
		}
		finish = cmp.Or(finish, "stop")
		var details any
		if st.CachedTokens > 0 {
			details = map[string]any{"cached_tokens": st.CachedTokens}
		}
		w.Header().Set("x-request-id", fmt.Sprintf("chatcmpl-%d", n))
		writeJSON(w, http.StatusOK, map[string]any{
			"id": fmt.Sprintf("chatcmpl-%016x", n+1), "object": "chat.completion", "created": time.Now().Unix(),
			"model": model,
			"choices": []any{map[string]any{
				"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish, "stop_reason": nil,
			}},
			"service_tier": nil, "system_fingerprint": nil,
			"usage": map[string]any{
				"prompt_tokens": st.PromptTokens, "completion_tokens": st.CompletionTokens,
				"total_tokens": st.PromptTokens + st.CompletionTokens, "prompt_tokens_details": details,
			},
			"prompt_logprobs": nil, "kv_transfer_params": nil,
		})
	})
	s.URL += "/v1"
	return s
}

// badToolUse says what a real server would refuse about a request's tool
// use: tools together with H's structured_outputs (H: pick one), or a
// function call of the history not answered by a tool message right after
// it (OpenAI's rule).
func badToolUse(body map[string]any) string {
	if body["tools"] != nil && body["structured_outputs"] != nil {
		return "tools and structured_outputs cannot be combined"
	}
	msgs, _ := body["messages"].([]any)
	for i, m := range msgs {
		mm, _ := m.(map[string]any)
		calls, _ := mm["tool_calls"].([]any)
		for j, c := range calls {
			id, _ := c.(map[string]any)["id"].(string)
			next, _ := get(msgs, i+1+j).(map[string]any)
			if next["role"] != "tool" || next["tool_call_id"] != id {
				return fmt.Sprintf("messages[%d]: tool call %s is not answered by a tool message", i, id)
			}
		}
	}
	return ""
}

func get(s []any, i int) any {
	if i < len(s) {
		return s[i]
	}
	return nil
}

func openAIError(msg, typ string, code int) map[string]any {
	return map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}}
}
