package desklink

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"atelier/internal/homefiles"
)

// ProtoFiles is the ALPN protocol of one file operation on the home
// (package homefiles, confined beneath the home with openat2 as on the
// fleet's host): a request line, for a put the file's bytes until the
// fleet's half-close, then an answer line, for a get the file's bytes.
const ProtoFiles = "atelier-files/1"

// maxFilesLine bounds a request or answer line (a listing is one line).
const maxFilesLine = 16 << 20

// File operations.
const (
	opPut    = "put"
	opGet    = "get"
	opList   = "list"
	opDelete = "delete"
	opUsage  = "usage"
)

type filesRequest struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Limit int64  `json:"limit,omitempty"`
}

type filesAnswer struct {
	Code    string             `json:"code,omitempty"` // a key of homefiles.Errs, or "" for another error
	Error   string             `json:"error,omitempty"`
	Written *homefiles.Written `json:"written,omitempty"`
	Info    *homefiles.Info    `json:"info,omitempty"`
	List    []homefiles.Info   `json:"list,omitempty"`
	Usage   *Usage             `json:"usage,omitempty"`
}

// Usage is how full the home volume's filesystem is, in bytes.
type Usage struct {
	Size, Used, Free int64
}

// serveFiles performs one file operation on the home.
func (s *Server) serveFiles(c *tls.Conn) {
	br := bufio.NewReaderSize(c, 4096)
	var req filesRequest
	line, err := br.ReadSlice('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var a filesAnswer
	var body io.ReadCloser
	if err == nil {
		a, body, err = s.doFiles(req, br)
	}
	if err != nil {
		a = filesAnswer{Error: err.Error()}
		for code, e := range homefiles.Errs {
			if errors.Is(err, e) {
				a.Code = code
			}
		}
	}
	b, _ := json.Marshal(a)
	if _, err := c.Write(append(b, '\n')); err == nil && body != nil {
		io.CopyN(c, body, a.Info.Size)
	}
	if body != nil {
		body.Close()
	}
}

func (s *Server) doFiles(req filesRequest, r io.Reader) (filesAnswer, io.ReadCloser, error) {
	if req.Op == opUsage {
		var st unix.Statfs_t
		if err := unix.Statfs(s.Home, &st); err != nil {
			return filesAnswer{}, nil, fmt.Errorf("home usage: %w", err)
		}
		bs := int64(st.Bsize)
		return filesAnswer{Usage: &Usage{Size: int64(st.Blocks) * bs, Used: int64(st.Blocks-st.Bfree) * bs, Free: int64(st.Bavail) * bs}}, nil, nil
	}
	rel, err := homefiles.ParsePath(req.Path)
	if err != nil {
		return filesAnswer{}, nil, err
	}
	h, err := homefiles.Open(s.Home, os.Getuid(), os.Getgid())
	if err != nil {
		return filesAnswer{}, nil, err
	}
	defer h.Close()
	switch req.Op {
	case opPut:
		w, err := h.Put(rel, r, req.Limit)
		return filesAnswer{Written: &w}, nil, err
	case opGet:
		f, info, err := h.Get(rel)
		return filesAnswer{Info: &info}, f, err
	case opList:
		l, err := h.List(rel)
		return filesAnswer{List: l}, nil, err
	case opDelete:
		return filesAnswer{}, nil, h.Delete(rel)
	}
	return filesAnswer{}, nil, fmt.Errorf("file operation %q: want put, get, list, delete or usage", req.Op)
}

// Files are the file operations on a desktop's home through its link:
// dial opens a ProtoFiles connection for each.
type Files struct {
	Dial func() (*tls.Conn, error)
}

var _ homefiles.Files = Files{}

// Close: each operation closes its own connection.
func (Files) Close() error { return nil }

// do sends a request and, for a put, body; it returns the answer and, for
// a get, the file's bytes.
func (f Files) do(req filesRequest, body io.Reader) (filesAnswer, io.ReadCloser, error) {
	c, err := f.Dial()
	if err != nil {
		return filesAnswer{}, nil, err
	}
	b, _ := json.Marshal(req)
	_, err = c.Write(append(b, '\n'))
	if err == nil && body != nil {
		_, err = io.Copy(c, body)
	}
	if err == nil {
		err = c.CloseWrite()
	}
	// A refused put is answered before its body is read: the answer
	// tells more than the write's error.
	br := bufio.NewReaderSize(io.LimitReader(c, maxFilesLine), 4096)
	line, rerr := br.ReadSlice('\n')
	var a filesAnswer
	if rerr == nil {
		rerr = json.Unmarshal(line, &a)
	}
	if rerr != nil {
		c.Close()
		if err == nil {
			err = rerr
		}
		return filesAnswer{}, nil, fmt.Errorf("link: file operation: %w", err)
	}
	if a.Error != "" {
		c.Close()
		if e, ok := homefiles.Errs[a.Code]; ok {
			return a, nil, fmt.Errorf("%w: %s", e, a.Error)
		}
		return a, nil, errors.New(a.Error)
	}
	if req.Op != opGet || a.Info == nil {
		c.Close()
		if req.Op == opGet || req.Op == opPut && a.Written == nil || req.Op == opUsage && a.Usage == nil {
			return a, nil, errors.New("link: file operation: an answer without its result")
		}
		return a, nil, nil
	}
	return a, &tlsBody{Reader: io.LimitReader(io.MultiReader(br, c), a.Info.Size), c: c}, nil
}

type tlsBody struct {
	io.Reader
	c *tls.Conn
}

func (b *tlsBody) Close() error { return b.c.Close() }

// Put writes r (at most limit bytes) to rel, whole or not at all.
func (f Files) Put(rel string, r io.Reader, limit int64) (homefiles.Written, error) {
	a, _, err := f.do(filesRequest{Op: opPut, Path: rel, Limit: limit}, r)
	if err != nil {
		return homefiles.Written{}, err
	}
	return *a.Written, nil
}

// Get opens the regular file at rel; the caller reads Info.Size bytes.
func (f Files) Get(rel string) (io.ReadCloser, homefiles.Info, error) {
	a, body, err := f.do(filesRequest{Op: opGet, Path: rel}, nil)
	if err != nil {
		return nil, homefiles.Info{}, err
	}
	return body, *a.Info, nil
}

// List reports the entries of the directory at rel.
func (f Files) List(rel string) ([]homefiles.Info, error) {
	a, _, err := f.do(filesRequest{Op: opList, Path: rel}, nil)
	return a.List, err
}

// Delete removes the file, link or empty directory at rel.
func (f Files) Delete(rel string) error {
	_, _, err := f.do(filesRequest{Op: opDelete, Path: rel}, nil)
	return err
}

// Usage reports how full the home volume's filesystem is.
func (f Files) Usage() (Usage, error) {
	a, _, err := f.do(filesRequest{Op: opUsage}, nil)
	if err != nil {
		return Usage{}, err
	}
	return *a.Usage, nil
}
