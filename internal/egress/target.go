package egress

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// target is where a desktop asks to go: a canonical host (a lowercase name
// without trailing dot, or an IP address) and a port.
type target struct {
	host string
	ip   netip.Addr // set when host is an IP literal
	port uint16
}

func (t target) String() string { return net.JoinHostPort(t.host, strconv.Itoa(int(t.port))) }

var errBadTarget = errors.New("bad target")

// parseTarget reads where a proxy request goes: the authority of a CONNECT,
// or the host of an absolute http:// URI (port 80 by default).
func parseTarget(req *http.Request) (target, error) {
	if req.Method == http.MethodConnect {
		// The authority form: host:port, with the port required.
		return parseAuthority(req.RequestURI, "")
	}
	if req.URL == nil || !req.URL.IsAbs() {
		return target{}, fmt.Errorf("%w: %q: a proxy takes CONNECT host:port or an absolute http:// URI", errBadTarget, req.RequestURI)
	}
	if req.URL.Scheme != "http" {
		return target{}, fmt.Errorf("%w: scheme %q: plain requests are http only (https goes through CONNECT)", errBadTarget, req.URL.Scheme)
	}
	if req.URL.User != nil {
		return target{}, fmt.Errorf("%w: credentials in the URL", errBadTarget)
	}
	return parseAuthority(req.URL.Host, "80")
}

// parseAuthority reads host:port; defPort, if set, is the port when none
// is given.
func parseAuthority(s, defPort string) (target, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil && defPort != "" {
		// No port: a name, an IPv4 address or a bracketed IPv6 one.
		host, port, err = s, defPort, nil
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			host = s[1 : len(s)-1]
		} else if strings.Contains(s, ":") {
			err = errBadTarget
		}
	}
	if err != nil {
		return target{}, fmt.Errorf("%w: %q: want host:port", errBadTarget, s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || port[0] == '0' {
		return target{}, fmt.Errorf("%w: port %q: want 1 to 65535", errBadTarget, port)
	}
	t := target{port: uint16(n)}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return target{}, fmt.Errorf("%w: %q: zoned addresses are not reachable", errBadTarget, host)
		}
		t.ip = a.Unmap()
		t.host = t.ip.String()
		return t, nil
	}
	if strings.HasPrefix(s, "[") {
		return target{}, fmt.Errorf("%w: %q: only an IPv6 address goes in brackets", errBadTarget, s)
	}
	if t.host, err = canonicalName(host); err != nil {
		return target{}, fmt.Errorf("%w: host %q: want a DNS name or an IP address", errBadTarget, host)
	}
	return t, nil
}

// canonicalName lowercases a DNS name and drops its trailing dot; it
// refuses anything that is not letters, digits, '-' and '_' in labels of
// 1 to 63 bytes, 253 in all. A name of digits and dots only (an IPv4
// address in a form netip does not read, such as 0x7f.1 or 127.1) is
// refused: resolvers disagree on what it means.
func canonicalName(s string) (string, error) {
	s = strings.TrimSuffix(strings.ToLower(s), ".")
	if s == "" || len(s) > 253 {
		return "", errBadTarget
	}
	numeric := true
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", errBadTarget
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c == '-', c == '_':
				numeric = false
			default:
				return "", errBadTarget
			}
		}
	}
	last := s[strings.LastIndexByte(s, '.')+1:]
	if numeric || strings.HasPrefix(last, "0x") {
		return "", errBadTarget
	}
	return s, nil
}
