package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/audit"
)

func taskPath(id string) string { return "/tasks/" + url.PathEscape(id) }

// SubmitTask gives a session a goal (or a script).
func (c *Client) SubmitTask(ctx context.Context, sessionID string, spec apitype.TaskSpec) (apitype.TaskSubmitted, error) {
	var sub apitype.TaskSubmitted
	return sub, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(sessionID)+"/task", nil, spec, &sub, http.StatusAccepted)
}

// Task returns a task with its events so far.
func (c *Client) Task(ctx context.Context, id string) (apitype.Task, error) {
	var t apitype.Task
	return t, c.call(ctx, http.MethodGet, taskPath(id), nil, nil, &t, http.StatusOK)
}

// Tasks lists a session's tasks, newest first.
func (c *Client) Tasks(ctx context.Context, sessionID string) ([]apitype.Task, error) {
	var l apitype.TaskList
	return l.Tasks, c.call(ctx, http.MethodGet, "/sessions/"+url.PathEscape(sessionID)+"/tasks", nil, nil, &l, http.StatusOK)
}

// CancelTask cancels a running task; it ends cancelled soon after.
func (c *Client) CancelTask(ctx context.Context, id string) (apitype.TaskCancel, error) {
	var out apitype.TaskCancel
	return out, c.call(ctx, http.MethodPost, taskPath(id)+"/cancel", nil, nil, &out, http.StatusAccepted)
}

// TaskEvents reads a task's event stream over one connection, the events
// after the one numbered after (0: all), calling each as they come, until
// the fleet ends the stream (after the final event), the connection
// drops, or each returns an error.
func (c *Client) TaskEvents(ctx context.Context, id string, after int, each func(apitype.TaskEvent) error) error {
	h := http.Header{"Accept": {"text/event-stream"}}
	if after > 0 {
		h.Set(apitype.HeaderLastEventID, strconv.Itoa(after))
	}
	resp, err := c.do(ctx, http.MethodGet, taskPath(id)+"/stream", nil, nil, h, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = apitype.ReadEvents(resp.Body, each)
	return err
}

// FollowTask streams a task's events to each until the final event, which
// it returns, resuming with Last-Event-ID when the connection drops (five
// drops in a row are an error).
func (c *Client) FollowTask(ctx context.Context, id string, each func(apitype.TaskEvent)) (apitype.TaskEvent, error) {
	last, drops := 0, 0
	for {
		var end *apitype.TaskEvent
		err := c.TaskEvents(ctx, id, last, func(ev apitype.TaskEvent) error {
			last = ev.ID
			each(ev)
			if ev.Type == apitype.EventEnd {
				end = &ev
			}
			return nil
		})
		if end != nil {
			return *end, nil
		}
		if _, refused := errors.AsType[*Error](err); refused {
			return apitype.TaskEvent{}, err
		}
		if ctx.Err() != nil {
			return apitype.TaskEvent{}, ctx.Err()
		}
		if drops++; drops > 5 {
			return apitype.TaskEvent{}, fmt.Errorf("the stream of %s keeps dropping: %v", id, err)
		}
		select {
		case <-time.After(time.Duration(drops) * time.Second):
		case <-ctx.Done():
			return apitype.TaskEvent{}, ctx.Err()
		}
	}
}

// TaskScreenshot returns the image the model saw at a step of a task
// (the event's screenshot path names it), while retention keeps it.
func (c *Client) TaskScreenshot(ctx context.Context, id string, step int) (format string, data []byte, err error) {
	resp, err := c.do(ctx, http.MethodGet, taskPath(id)+"/steps/"+strconv.Itoa(step)+"/screenshot", nil, nil, nil, http.StatusOK)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	if data, err = io.ReadAll(resp.Body); err != nil {
		return "", nil, fmt.Errorf("screenshot of %s step %d: %w", id, step, err)
	}
	return strings.TrimPrefix(resp.Header.Get("Content-Type"), "image/"), data, nil
}

// Audit reads a session's audit entries selected by q (the parameters of
// audit.ParseFilter; follow=1 keeps the stream open for new ones), calling
// each with every line as the fleet sent it, until the stream ends or
// each returns an error.
func (c *Client) Audit(ctx context.Context, sessionID string, q url.Values, each func(line []byte) error) error {
	h := http.Header{"Accept": {"application/jsonl"}}
	resp, err := c.do(ctx, http.MethodGet, "/sessions/"+url.PathEscape(sessionID)+"/audit", q, nil, h, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, audit.MaxLineBytes+1)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		if err := each(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}
