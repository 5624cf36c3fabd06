package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"atelier/internal/apitype"
)

// Dispatch gives one goal to many sessions (by id or label): one task
// each, every session's outcome in the batch.
func (c *Client) Dispatch(ctx context.Context, d apitype.Dispatch) (apitype.Batch, error) {
	var b apitype.Batch
	return b, c.call(ctx, http.MethodPost, "/tasks", nil, d, &b, http.StatusCreated)
}

// Batch returns a batch with its members' tasks as they stand.
func (c *Client) Batch(ctx context.Context, id string) (apitype.Batch, error) {
	var b apitype.Batch
	return b, c.call(ctx, http.MethodGet, "/batches/"+url.PathEscape(id), nil, nil, &b, http.StatusOK)
}

// FollowBatch streams a batch's member task events to each until every
// member task has ended, and returns the batch as it ended.
func (c *Client) FollowBatch(ctx context.Context, id string, each func(apitype.BatchEvent)) (apitype.Batch, error) {
	resp, err := c.do(ctx, http.MethodGet, "/batches/"+url.PathEscape(id)+"/events", nil, nil, http.Header{"Accept": {"text/event-stream"}}, http.StatusOK)
	if err != nil {
		return apitype.Batch{}, err
	}
	defer resp.Body.Close()
	var end *apitype.Batch
	err = apitype.ReadSSE(resp.Body, func(name string, data []byte) error {
		var ev apitype.BatchEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("decode batch event: %w", err)
		}
		if name == apitype.BatchEventEnd && ev.Batch != nil {
			end = ev.Batch
			return nil
		}
		each(ev)
		return nil
	})
	if err != nil {
		return apitype.Batch{}, err
	}
	if end == nil {
		return apitype.Batch{}, fmt.Errorf("the stream of batch %s ended before the batch did", id)
	}
	return *end, nil
}
