package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"

	"atelier/internal/config"
	"atelier/internal/fleet"
	"atelier/internal/version"
)

// runServe is `atelier serve`: the fleet, opened by the composition root
// (package fleet) from the configuration. On SIGINT or SIGTERM it stops accepting,
// lets requests in flight finish, and leaves the desktops running for the
// next fleet to re-adopt.
func runServe(ctx context.Context, env *Env, args []string) error {
	cfg, err := config.Load(env.Getenv, args, env.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	log.Info("atelier starting", "version", version.Version, "config", cfg)
	if cfg.InsecureNoToken {
		log.Warn("INSECURE: no " + config.EnvToken + " (--insecure-no-token): anything on this machine that reaches " + cfg.Addr +
			" can drive, read and delete every desktop; the API listens on loopback only. Set a token for anything but a trial.")
	}
	f, err := fleet.Open(ctx, cfg, fleet.Options{Logger: log, Version: version.Version})
	if err != nil {
		return err
	}
	defer f.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("atelier listening", "url", "http://"+ln.Addr().String())
	if err := f.Serve(ctx, ln); err != nil {
		return err
	}
	log.Info("atelier stopped; desktops keep running")
	return nil
}
