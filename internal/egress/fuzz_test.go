package egress

import (
	"bufio"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func bufioString(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// FuzzParseTarget feeds raw request heads to the parser the gateway uses:
// whatever it accepts must be a canonical host (a name it would accept
// again, or an IP address without zone) and a port from 1 to 65535.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"CONNECT github.com:443 HTTP/1.1\r\n\r\n",
		"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
		"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET http://[::ffff:7f00:1]:80/ HTTP/1.1\r\n\r\n",
		"CONNECT 0x7f.1:80 HTTP/1.1\r\n\r\n",
		"GET http://a.b.c./x HTTP/1.0\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := http.ReadRequest(bufioString(raw))
		if err != nil {
			return
		}
		tg, err := parseTarget(req)
		if err != nil {
			return
		}
		if tg.port == 0 {
			t.Fatalf("%q: port 0 accepted", raw)
		}
		if tg.ip.IsValid() {
			if tg.ip.Zone() != "" || tg.ip.Is4In6() || tg.host != tg.ip.String() {
				t.Fatalf("%q: address %v (host %q) not canonical", raw, tg.ip, tg.host)
			}
			return
		}
		if _, err := netip.ParseAddr(tg.host); err == nil {
			t.Fatalf("%q: IP address %q taken as a name", raw, tg.host)
		}
		if again, err := canonicalName(tg.host); err != nil || again != tg.host {
			t.Fatalf("%q: host %q not canonical (%q, %v)", raw, tg.host, again, err)
		}
	})
}
