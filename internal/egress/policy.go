package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Mode is what a desktop may reach through its gateway.
type Mode string

// Modes of a Policy.
const (
	// ModeOpen allows the public internet: any host whose addresses are all
	// outside the forbidden ranges.
	ModeOpen Mode = "open"
	// ModeAllowlist allows only the hosts its patterns name, and only at
	// public addresses.
	ModeAllowlist Mode = "allowlist"
	// ModeNone allows nothing.
	ModeNone Mode = "none"
)

// MaxPatterns bounds an allowlist.
const MaxPatterns = 256

// Policy says which hosts a desktop may reach. The zero Policy is invalid;
// Default is the fleet's usual one.
type Policy struct {
	Mode Mode `json:"mode"`
	// Allow holds the allowlist's patterns, canonical (lowercase, no
	// trailing dot): a host name ("github.com"), "*." and a name
	// ("*.example.org": any name under it, not the name itself), or an IP
	// address. Empty unless Mode is ModeAllowlist.
	Allow []string `json:"allow,omitempty"`
}

// Default is the policy of a fleet that sets none: public internet only.
var Default = Policy{Mode: ModeOpen}

// ErrBadPolicy wraps every reason a policy is refused.
var ErrBadPolicy = errors.New("bad egress policy")

// NewPolicy checks mode and patterns and returns the canonical policy.
// Patterns are for ModeAllowlist only, which needs at least one.
func NewPolicy(mode string, patterns []string) (Policy, error) {
	p := Policy{Mode: Mode(strings.ToLower(strings.TrimSpace(mode)))}
	switch p.Mode {
	case ModeOpen, ModeNone:
		if len(patterns) > 0 {
			return Policy{}, fmt.Errorf("%w: an allowlist is only for mode %s, not %s", ErrBadPolicy, ModeAllowlist, p.Mode)
		}
		return p, nil
	case ModeAllowlist:
	default:
		return Policy{}, fmt.Errorf("%w: mode %q: want %s, %s or %s", ErrBadPolicy, mode, ModeOpen, ModeAllowlist, ModeNone)
	}
	if len(patterns) == 0 {
		return Policy{}, fmt.Errorf("%w: mode %s needs at least one pattern (such as github.com,*.example.org)", ErrBadPolicy, ModeAllowlist)
	}
	if len(patterns) > MaxPatterns {
		return Policy{}, fmt.Errorf("%w: %d patterns: at most %d", ErrBadPolicy, len(patterns), MaxPatterns)
	}
	for _, raw := range patterns {
		pat, err := canonicalPattern(raw)
		if err != nil {
			return Policy{}, err
		}
		p.Allow = append(p.Allow, pat)
	}
	return p, nil
}

// ParsePolicy reads the configuration's form: a mode and a comma-separated
// allowlist ("github.com,*.example.org").
func ParsePolicy(mode, allow string) (Policy, error) {
	var patterns []string
	for f := range strings.SplitSeq(allow, ",") {
		if f = strings.TrimSpace(f); f != "" {
			patterns = append(patterns, f)
		}
	}
	return NewPolicy(mode, patterns)
}

// Validate reports whether p is a policy NewPolicy would return.
func (p Policy) Validate() error {
	_, err := NewPolicy(string(p.Mode), p.Allow)
	return err
}

// String is the policy for people and logs: "open", "none",
// "allowlist github.com,*.example.org".
func (p Policy) String() string {
	if p.Mode != ModeAllowlist {
		return string(p.Mode)
	}
	return string(p.Mode) + " " + strings.Join(p.Allow, ",")
}

func canonicalPattern(raw string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap().String(), nil
	}
	name, wild := strings.CutPrefix(s, "*.")
	name, err := canonicalName(name)
	if err != nil || name == "" {
		return "", fmt.Errorf("%w: pattern %q: want a host name, *.name or an IP address", ErrBadPolicy, raw)
	}
	if wild {
		return "*." + name, nil
	}
	return name, nil
}

// allows reports whether p lets a desktop ask for host (canonical, as
// parseTarget returns it); the reason says why not.
func (p Policy) allows(host string) (bool, string) {
	switch p.Mode {
	case ModeOpen:
		return true, ""
	case ModeAllowlist:
		for _, pat := range p.Allow {
			if matches(pat, host) {
				return true, ""
			}
		}
		return false, "not in the allowlist"
	default:
		return false, "egress is off for this desktop (policy none)"
	}
}

// matches reports whether a canonical pattern covers a canonical host.
func matches(pattern, host string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(host) > len(suffix) && strings.HasSuffix(host, suffix)
	}
	return pattern == host
}
