package egress

import "net/netip"

// forbidden lists what a desktop must never reach: this machine, private
// and shared networks, link-local (the cloud metadata address
// 169.254.169.254 among them), multicast, broadcast and ranges reserved for
// documentation or benchmarks. IPv6 forms that carry an IPv4 address are
// checked by the address they carry (see embedded).
var forbidden = prefixes(
	// IPv4
	"0.0.0.0/8",       // "this network", the unspecified address
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // carrier-grade NAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, broadcast
	// IPv6
	"::/96",          // unspecified, loopback, IPv4-compatible
	"64:ff9b:1::/48", // local-use NAT64
	"100::/64",       // discard
	"2001::/23",      // IETF protocol assignments, Teredo
	"2001:db8::/32",  // documentation
	"fc00::/7",       // unique local
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
)

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixToF  = netip.MustParsePrefix("2002::/16")
	mapped4 = netip.MustParsePrefix("::ffff:0:0/96")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// embedded returns the IPv4 address an IPv6 address carries by a standard
// translation (IPv4-mapped, NAT64, 6to4), if it carries one.
func embedded(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case mapped4.Contains(a), nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToF.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Forbidden reports whether a desktop must not reach a, and which range
// forbids it. A zoned address is always forbidden: a zone names one of
// this machine's links.
func Forbidden(a netip.Addr) (bool, netip.Prefix) {
	return forbiddenExcept(a, nil)
}

// forbiddenExcept is Forbidden with the exempted prefixes let through
// (tests stand in for the internet with a benchmarking range).
func forbiddenExcept(a netip.Addr, exempt []netip.Prefix) (bool, netip.Prefix) {
	if !a.IsValid() || a.Zone() != "" {
		return true, netip.Prefix{}
	}
	if v4, ok := embedded(a); ok {
		a = v4
	}
	for _, p := range exempt {
		if p.Contains(a) {
			return false, netip.Prefix{}
		}
	}
	for _, p := range forbidden {
		if p.Contains(a) {
			return true, p
		}
	}
	return false, netip.Prefix{}
}
