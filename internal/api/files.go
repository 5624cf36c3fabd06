package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/homefiles"
)

// Uploads: the default size limit, and how long a body may take to
// arrive (the server's ReadTimeout is for small bodies).
const (
	DefaultMaxUpload = 1 << 30
	uploadTimeout    = 30 * time.Minute
)

// Audit detail ops of file entries.
const (
	fileGet    = "get"
	filePut    = "put"
	fileList   = "list"
	fileDelete = "delete"
)

// home opens the session's home and parses the request's {path}.
func (s *Server) home(r *http.Request) (homefiles.Files, string, error) {
	rel, err := homefiles.ParsePath(r.PathValue("path"))
	if err != nil {
		return nil, "", err
	}
	h, err := s.sessions.Home(r.Context(), r.PathValue("id"))
	return h, rel, err
}

// auditFile records one file operation; it has happened, so a client that
// left does not keep it out of the log.
func (s *Server) auditFile(ctx context.Context, id, op, rel string, bytes int64, sum string, extra map[string]any) {
	if s.opts.Audit == nil {
		return
	}
	d := map[string]any{"op": op, "path": rel}
	if op == filePut || op == fileGet {
		d["bytes"], d["sha256"] = bytes, sum
	}
	for k, v := range extra {
		d[k] = v
	}
	if _, err := s.opts.Audit.Append(context.WithoutCancel(ctx), audit.Entry{Session: id, Kind: audit.KindFile, Detail: d}); err != nil {
		s.log.Error("audit file", "session", id, "op", op, "err", err)
	}
}

// handlePutFile serves PUT /sessions/{id}/files/{path}: the body becomes
// the file, whole or not at all.
func (s *Server) handlePutFile(w http.ResponseWriter, r *http.Request) error {
	limit := s.opts.MaxUpload
	if r.ContentLength > limit {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: apitype.CodeTooLarge,
			msg: fmt.Sprintf("the file is over the upload limit of %s", formatBytes(limit))}
	}
	h, rel, err := s.home(r)
	if err != nil {
		return err
	}
	defer h.Close()
	// A large body may take longer than the server's read timeout; a
	// stalled one is still cut.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadTimeout))
	wr, err := h.Put(rel, r.Body, limit)
	if err != nil {
		return err
	}
	s.auditFile(r.Context(), r.PathValue("id"), filePut, rel, wr.Size, wr.SHA256, nil)
	encode(w, http.StatusOK, apitype.FileWritten{Path: rel, Size: wr.Size, SHA256: wr.SHA256})
	return nil
}

// handleGetFile serves GET /sessions/{id}/files/{path}: the file's bytes.
func (s *Server) handleGetFile(w http.ResponseWriter, r *http.Request) error {
	h, rel, err := s.home(r)
	if err != nil {
		return err
	}
	defer h.Close()
	f, info, err := h.Get(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.Header().Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	sum := sha256.New()
	// The file may grow meanwhile: what was announced is what is sent.
	n, err := io.Copy(io.MultiWriter(w, sum), io.LimitReader(f, info.Size))
	var extra map[string]any
	if err != nil || n != info.Size {
		extra = map[string]any{"complete": false}
	}
	s.auditFile(r.Context(), r.PathValue("id"), fileGet, rel, n, hex.EncodeToString(sum.Sum(nil)), extra)
	return nil
}

// handleDeleteFile serves DELETE /sessions/{id}/files/{path}: a file, a
// link (not its target) or an empty directory.
func (s *Server) handleDeleteFile(w http.ResponseWriter, r *http.Request) error {
	h, rel, err := s.home(r)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.Delete(rel); err != nil {
		return err
	}
	s.auditFile(r.Context(), r.PathValue("id"), fileDelete, rel, 0, "", nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleListDir serves GET /sessions/{id}/dir/{path}: a directory's
// entries; links are listed, never followed.
func (s *Server) handleListDir(w http.ResponseWriter, r *http.Request) error {
	h, rel, err := s.home(r)
	if err != nil {
		return err
	}
	defer h.Close()
	infos, err := h.List(rel)
	if err != nil {
		return err
	}
	out := apitype.FileList{Path: rel, Entries: make([]apitype.FileEntry, 0, len(infos))}
	for _, i := range infos {
		out.Entries = append(out.Entries, apitype.FileEntry{Name: i.Name, Type: fileType(i.Mode), Size: i.Size,
			Mode: fmt.Sprintf("%04o", i.Mode.Perm()), Modified: i.Modified.UTC()})
	}
	s.auditFile(r.Context(), r.PathValue("id"), fileList, rel, 0, "", map[string]any{"entries": len(out.Entries)})
	encode(w, http.StatusOK, out)
	return nil
}

func fileType(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return apitype.FileRegular
	case m.IsDir():
		return apitype.FileDir
	case m&os.ModeSymlink != 0:
		return apitype.FileSymlink
	}
	return apitype.FileOther
}

// classifyFile maps the file routes' refusals.
func classifyFile(err error) (status int, code string, ok bool) {
	switch {
	case errors.Is(err, homefiles.ErrBadPath):
		return http.StatusBadRequest, apitype.CodeBadPath, true
	case errors.Is(err, homefiles.ErrNotFound):
		return http.StatusNotFound, apitype.CodeNotFound, true
	case errors.Is(err, homefiles.ErrNotFile):
		return http.StatusConflict, apitype.CodeNotFile, true
	case errors.Is(err, homefiles.ErrNotDir):
		return http.StatusConflict, apitype.CodeNotDir, true
	case errors.Is(err, homefiles.ErrNotEmpty):
		return http.StatusConflict, apitype.CodeNotEmpty, true
	case errors.Is(err, homefiles.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, apitype.CodeTooLarge, true
	case errors.Is(err, homefiles.ErrFull):
		return http.StatusInsufficientStorage, apitype.CodeHomeFull, true
	}
	return 0, "", false
}
