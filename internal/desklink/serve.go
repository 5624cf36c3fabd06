package desklink

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"atelier/desktop"
	"atelier/internal/snapshot/archive"
)

// handshakeTimeout bounds a handshake: a peer that connects and says
// nothing holds no goroutine for long.
const handshakeTimeout = 10 * time.Second

// maxRunFile bounds a run file (a budget line, a theme name).
const maxRunFile = 64 << 10

// Server is the link server of one desktop.
type Server struct {
	// RunDir holds the desktop's agent.sock and vnc.sock and the run files.
	RunDir string
	// Home is the desktop's home volume, as mounted for the link server.
	Home   string
	Config *tls.Config // ServerConfig's
	Log    *slog.Logger
}

// Serve accepts connections on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeTLS(ctx, ln, s.Config, s.serve)
}

// ServeTLS accepts connections on ln until ctx is done, and calls handle
// with each whose handshake with cfg completed; the connection closes when
// handle returns or ctx is done.
func (s *Server) ServeTLS(ctx context.Context, ln net.Listener, cfg *tls.Config, handle func(context.Context, *tls.Conn)) error {
	return accept(ctx, ln, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			s.Log.Warn("link: handshake refused", "peer", c.RemoteAddr().String(), "err", err)
			return
		}
		stop := context.AfterFunc(ctx, func() { tc.Close() })
		defer stop()
		handle(ctx, tc)
	})
}

// accept calls handle with each connection ln accepts, in a goroutine of
// its own, until ctx is done; it closes the connection when handle
// returns, and returns once every handle has.
func accept(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() {
			defer c.Close()
			handle(c)
		})
	}
}

func (s *Server) serve(ctx context.Context, c *tls.Conn) {
	switch proto := c.ConnectionState().NegotiatedProtocol; proto {
	case ProtoAgent:
		s.splice(c, desktop.AgentSocket)
	case ProtoVNC:
		s.splice(c, desktop.VNCSocket)
	case ProtoRunFile:
		reply(c, s.writeRunFile(c))
	case ProtoHomeExport:
		tw := tar.NewWriter(c)
		_, err := archive.WriteTar(ctx, tw, s.Home, nil)
		if err == nil {
			err = tw.Close()
		}
		if err != nil {
			s.Log.Warn("link: home export", "err", err)
		}
	case ProtoHomeImport:
		reply(c, s.importHome(c))
	case ProtoFiles:
		s.serveFiles(c)
	default:
		s.Log.Warn("link: no protocol negotiated", "peer", c.RemoteAddr().String())
	}
}

// splice copies between the link and the run dir's socket name, both ways,
// until either side closes.
func (s *Server) splice(c *tls.Conn, name string) {
	u, err := net.Dial("unix", filepath.Join(s.RunDir, name))
	if err != nil {
		s.Log.Warn("link: desktop socket", "socket", name, "err", err)
		return
	}
	Pipe(c, u)
}

// reply ends a request with "ok" or the error's text, on one line.
func reply(c *tls.Conn, err error) {
	if err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return
	}
	io.WriteString(c, "ok\n")
}

// writeRunFile reads a name line and the file's bytes to EOF, and writes
// the file atomically in the run dir: the budget or the theme file only.
func (s *Server) writeRunFile(c io.Reader) error {
	br := bufio.NewReaderSize(io.LimitReader(c, maxRunFile+256), 256)
	name, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("run file: no name line: %w", err)
	}
	name = name[:len(name)-1]
	data, err := io.ReadAll(br)
	if err != nil {
		return err
	}
	if len(data) > maxRunFile {
		return fmt.Errorf("run file %s: more than %d bytes", name, maxRunFile)
	}
	return s.PutRunFile(name, data)
}

// PutRunFile writes run file name atomically in the run dir.
func (s *Server) PutRunFile(name string, data []byte) error {
	if err := CheckRunFile(name); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.RunDir, "."+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(s.RunDir, name))
}

// CheckRunFile refuses every run file name but the fleet's own.
func CheckRunFile(name string) error {
	if name != desktop.BudgetFile && name != desktop.ThemeFile {
		return fmt.Errorf("run file %q: only %s and %s are the fleet's to write", name, desktop.BudgetFile, desktop.ThemeFile)
	}
	return nil
}

// importHome extracts a tar stream into the empty home: whole or not at
// all (archive.ExtractTar), beside it on the same volume, then moved in.
func (s *Server) importHome(r io.Reader) error {
	ents, err := os.ReadDir(s.Home)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() != "lost+found" {
			return errors.New("import home: the home is not empty")
		}
	}
	staging := filepath.Join(s.Home, ".atelier-import")
	if err := archive.ExtractTar(staging, r, archive.ExtractOptions{}); err != nil {
		return err
	}
	ents, err = os.ReadDir(staging)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(staging, e.Name()), filepath.Join(s.Home, e.Name())); err != nil {
			return fmt.Errorf("import home: %w", err)
		}
	}
	return os.Remove(staging)
}
