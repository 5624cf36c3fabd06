package config

import (
	"flag"
	"fmt"

	"atelier/internal/egress"
)

// Environment variables of the desktops' egress.
const (
	EnvEgress      = "ATELIER_EGRESS"
	EnvEgressAllow = "ATELIER_EGRESS_ALLOW"
)

// egressFlags registers --egress and --egress-allow over the environment;
// parse reads them once the flags are parsed.
type egressFlags struct{ mode, allow string }

func (e *egressFlags) register(getenv func(string) string, fs *flag.FlagSet) {
	e.mode, e.allow = string(egress.Default.Mode), getenv(EnvEgressAllow)
	if v := getenv(EnvEgress); v != "" {
		e.mode = v
	}
	fs.StringVar(&e.mode, "egress", e.mode, "what desktops may reach through the fleet's egress gateway: open (public internet only), allowlist or none (env "+EnvEgress+")")
	fs.StringVar(&e.allow, "egress-allow", e.allow, "the allowlist, comma-separated: github.com,*.example.org (env "+EnvEgressAllow+")")
}

func (e *egressFlags) parse() (egress.Policy, error) {
	p, err := egress.ParsePolicy(e.mode, e.allow)
	if err != nil {
		return egress.Policy{}, fmt.Errorf("%s=%q %s=%q: %w", EnvEgress, e.mode, EnvEgressAllow, e.allow, err)
	}
	return p, nil
}
