package egress

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		mode, allow string
		want        string // Policy.String, or "" for an error
	}{
		{"open", "", "open"},
		{" OPEN ", "", "open"},
		{"none", "", "none"},
		{"allowlist", "GitHub.com., *.Example.org ,10.0.0.1", "allowlist github.com,*.example.org,10.0.0.1"},
		{"allowlist", "::ffff:1.2.3.4", "allowlist 1.2.3.4"},
		{"allowlist", "", ""},
		{"allowlist", ",,", ""},
		{"open", "github.com", ""},
		{"none", "github.com", ""},
		{"closed", "", ""},
		{"", "", ""},
		{"allowlist", "exa mple.com", ""},
		{"allowlist", "*.", ""},
		{"allowlist", "*", ""},
		{"allowlist", "a.*.com", ""},
		{"allowlist", "fe80::1%eth0", ""},
		{"allowlist", "127.1", ""},
		{"allowlist", "-bad.com", ""},
	} {
		p, err := ParsePolicy(tc.mode, tc.allow)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParsePolicy(%q, %q) = %v, want an error", tc.mode, tc.allow, p)
		case tc.want == "" && !errors.Is(err, ErrBadPolicy):
			t.Errorf("ParsePolicy(%q, %q): error %v does not wrap ErrBadPolicy", tc.mode, tc.allow, err)
		case tc.want != "" && err != nil:
			t.Errorf("ParsePolicy(%q, %q): %v", tc.mode, tc.allow, err)
		case tc.want != "" && p.String() != tc.want:
			t.Errorf("ParsePolicy(%q, %q) = %q, want %q", tc.mode, tc.allow, p, tc.want)
		case tc.want != "" && p.Validate() != nil:
			t.Errorf("ParsePolicy(%q, %q) does not validate: %v", tc.mode, tc.allow, p.Validate())
		}
	}
	if (Policy{}).Validate() == nil {
		t.Error("the zero policy validates")
	}
}

func TestPolicyAllows(t *testing.T) {
	p, err := ParsePolicy("allowlist", "github.com,*.example.org,192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"github.com":         true,
		"api.github.com":     false,
		"evilgithub.com":     false,
		"example.org":        false,
		"a.example.org":      true,
		"a.b.example.org":    true,
		"aexample.org":       false,
		"example.org.evil":   false,
		"192.0.2.7":          true,
		"192.0.2.8":          false,
		"github.com.example": false,
	} {
		if got, why := p.allows(host); got != want {
			t.Errorf("allowlist allows(%q) = %v (%s), want %v", host, got, why, want)
		} else if !got && why != "not in the allowlist" {
			t.Errorf("allows(%q): reason %q", host, why)
		}
	}
	if ok, _ := Default.allows("anything.example"); !ok {
		t.Error("open refuses a name")
	}
	if ok, why := (Policy{Mode: ModeNone}).allows("github.com"); ok || !strings.Contains(why, "none") {
		t.Errorf("none allows: %v %q", ok, why)
	}
}

func TestForbidden(t *testing.T) {
	forbiddenAddrs := []string{
		"0.0.0.0", "0.1.2.3", "10.1.2.3", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.255.255.255",
		"169.254.169.254", "169.254.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "192.0.0.8", "192.0.2.1",
		"198.18.0.1", "198.19.255.255", "198.51.100.3", "203.0.113.9", "224.0.0.1", "239.255.255.250",
		"240.0.0.1", "255.255.255.255",
		"::", "::1", "::127.0.0.1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:c0a8:101::1",
		"fc00::1", "fd12:3456::1", "fe80::1", "febf::1", "fec0::1", "ff02::1", "2001:db8::1", "2001::1", "100::1",
		"64:ff9b:1::1",
	}
	for _, s := range forbiddenAddrs {
		if bad, _ := Forbidden(netip.MustParseAddr(s)); !bad {
			t.Errorf("%s is allowed, want forbidden", s)
		}
	}
	for _, s := range []string{"1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.0", "172.32.0.1", "169.255.0.1",
		"192.169.0.1", "198.20.0.1", "223.255.255.255", "2606:4700::1111", "2a00:1450::1", "::ffff:8.8.8.8",
		"64:ff9b::808:808", "2002:808:808::1"} {
		if bad, p := Forbidden(netip.MustParseAddr(s)); bad {
			t.Errorf("%s is forbidden by %v, want allowed", s, p)
		}
	}
	if bad, _ := Forbidden(netip.MustParseAddr("fe80::1%eth0")); !bad {
		t.Error("a zoned address is allowed")
	}
	if bad, _ := Forbidden(netip.Addr{}); !bad {
		t.Error("the invalid address is allowed")
	}
	exempt := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}
	if bad, _ := forbiddenExcept(netip.MustParseAddr("198.18.0.2"), exempt); bad {
		t.Error("an exempt address is forbidden")
	}
	if bad, _ := forbiddenExcept(netip.MustParseAddr("127.0.0.1"), exempt); !bad {
		t.Error("the exemption lets loopback through")
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		method, uri string
		want        string // target, or "" for an error
	}{
		{"CONNECT", "github.com:443", "github.com:443"},
		{"CONNECT", "GitHub.COM.:443", "github.com:443"},
		{"CONNECT", "[::1]:443", "[::1]:443"},
		{"CONNECT", "[::ffff:127.0.0.1]:443", "127.0.0.1:443"},
		{"CONNECT", "1.2.3.4:80", "1.2.3.4:80"},
		{"CONNECT", "github.com", ""},
		{"CONNECT", "github.com:0", ""},
		{"CONNECT", "github.com:65536", ""},
		{"CONNECT", "github.com:0443", ""},
		{"CONNECT", "github.com:-1", ""},
		{"CONNECT", "[fe80::1%25eth0]:443", ""},
		{"CONNECT", "127.1:80", ""},
		{"CONNECT", "0x7f000001:80", ""},
		{"CONNECT", "[github.com]:443", ""},
		{"CONNECT", "a..b:443", ""},
		{"GET", "http://example.com/x?y", "example.com:80"},
		{"GET", "http://example.com:8080/", "example.com:8080"},
		{"GET", "http://[2606:4700::1111]/", "[2606:4700::1111]:80"},
		{"GET", "https://example.com/", ""},
		{"GET", "/relative", ""},
		{"GET", "http://user:pw@example.com/", ""},
		{"GET", "ftp://example.com/", ""},
	} {
		req, err := http.ReadRequest(bufioString(tc.method + " " + tc.uri + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		if err != nil {
			if tc.want != "" {
				t.Errorf("%s %s: ReadRequest: %v", tc.method, tc.uri, err)
			}
			continue
		}
		got, err := parseTarget(req)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s %s = %v, want an error", tc.method, tc.uri, got)
		case tc.want != "" && err != nil:
			t.Errorf("%s %s: %v", tc.method, tc.uri, err)
		case tc.want != "" && got.String() != tc.want:
			t.Errorf("%s %s = %v, want %v", tc.method, tc.uri, got, tc.want)
		}
	}
}
