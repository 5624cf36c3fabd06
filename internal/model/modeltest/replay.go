package modeltest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/model"
)

// Replay drives c through one Next per reply of want, as the task loop
// would: every turn reports the previous reply's actions as done, and the
// turn after a reply that asked for help carries answer. It fails t when a
// reply (usage aside) differs from want or is not charged to c's model, and
// returns what srv received, one request per reply.
func Replay(t *testing.T, srv *Server, c model.Conversation, goal string, shot model.Screenshot, answer string, want []model.Reply) []Request {
	t.Helper()
	var prev model.Reply
	for i, w := range want {
		turn := model.Turn{Goal: goal, Step: i + 1, Screenshot: shot, Results: make([]model.Result, len(prev.Actions))}
		if prev.Help != "" {
			turn.Answered, turn.Answer = true, answer
		}
		got, err := c.Next(t.Context(), turn)
		if err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
		if got.Usage.InputTokens == 0 || got.Usage.Model != c.Model() {
			t.Errorf("step %d usage = %+v, want tokens under %s", i+1, got.Usage, c.Model())
		}
		prev = got
		got.Usage = model.Usage{}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("step %d (-want +got):\n%s", i+1, diff)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != len(want) {
		t.Fatalf("server got %d requests, want %d", len(reqs), len(want))
	}
	return reqs
}
