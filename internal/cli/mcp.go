package cli

import (
	"context"
	"io"
	"log/slog"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/apitype"
	"atelier/internal/mcp"
	"atelier/internal/version"
)

// runMCP serves the fleet's sessions as MCP tools over stdio, for an MCP
// client that starts atelier mcp as its server.
func runMCP(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "mcp", "   (an MCP server on stdin/stdout, for an MCP client to start; ATELIER_URL and ATELIER_API_TOKEN name the fleet)")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	c, err := newAPIClient(env)
	if err != nil {
		return err
	}
	c = c.Via(apitype.ViaMCP) // audited as mcp, as /mcp is
	t := &sdk.IOTransport{Reader: io.NopCloser(env.Stdin), Writer: nopWriteCloser{env.Stdout}}
	// Its stdout is the protocol's: warnings go to stderr, which MCP
	// clients show in their logs.
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := mcp.NewServer(c, version.Version, log)
	defer s.Close()
	return s.Run(ctx, t)
}

// nopWriteCloser leaves closing stdout to the process.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
