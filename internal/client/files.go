package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	"atelier/internal/apitype"
)

// homePath is the API path of p in session id's home under route (files,
// dir): each segment escaped, the slashes kept.
func homePath(id, route, p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/sessions/" + url.PathEscape(id) + "/" + route + "/" + strings.Join(segs, "/")
}

// PutFile uploads r as the file at p in session id's home (its directory
// must exist), size bytes if known (-1 if not).
func (c *Client) PutFile(ctx context.Context, id, p string, r io.Reader, size int64) (apitype.FileWritten, error) {
	var out apitype.FileWritten
	body := &sized{r, size}
	resp, err := c.do(ctx, http.MethodPut, homePath(id, "files", p), nil, body, http.Header{"Content-Type": {"application/octet-stream"}}, http.StatusOK)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	return out, decodeJSON(resp, &out)
}

// sized is an upload body; its length lets net/http send Content-Length,
// so the fleet refuses a file over its limit before reading it.
type sized struct {
	io.Reader
	n int64
}

// GetFile downloads the file at p in session id's home; the caller
// closes the body. Its length is the response's ContentLength.
func (c *Client) GetFile(ctx context.Context, id, p string) (*http.Response, error) {
	return c.do(ctx, http.MethodGet, homePath(id, "files", p), nil, nil, nil, http.StatusOK)
}

// ListDir lists the directory at p in session id's home ("" for the home).
func (c *Client) ListDir(ctx context.Context, id, p string) (apitype.FileList, error) {
	var out apitype.FileList
	return out, c.call(ctx, http.MethodGet, homePath(id, "dir", p), nil, nil, &out, http.StatusOK)
}

// DeleteFile deletes the file, link or empty directory at p in session
// id's home.
func (c *Client) DeleteFile(ctx context.Context, id, p string) error {
	return c.call(ctx, http.MethodDelete, homePath(id, "files", p), nil, nil, nil, http.StatusNoContent)
}

// Clipboard reads session id's clipboard; mime "" is text, or image/png.
func (c *Client) Clipboard(ctx context.Context, id, mime string) (apitype.Clipboard, error) {
	var out apitype.Clipboard
	var q url.Values
	if mime != "" {
		q = url.Values{"mime": {mime}}
	}
	return out, c.call(ctx, http.MethodGet, "/sessions/"+url.PathEscape(id)+"/clipboard", q, nil, &out, http.StatusOK)
}

// SetClipboard sets session id's clipboard (as input: refused while a
// person holds the session's control, unless lease is theirs).
func (c *Client) SetClipboard(ctx context.Context, id, lease string, clip apitype.Clipboard) error {
	var h http.Header
	if lease != "" {
		h = http.Header{apitype.HeaderLease: {lease}}
	}
	return c.callHeader(ctx, http.MethodPut, "/sessions/"+url.PathEscape(id)+"/clipboard", nil, clip, h, nil, http.StatusNoContent)
}
