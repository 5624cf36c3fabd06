package console

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		origin, site string
		want         bool
	}{
		{"", "", true}, // a client that is no browser, or an old one: the CSRF token decides
		{"http://fleet.test:8090", "same-origin", true},
		{"", "none", true},
		{"http://fleet.test:8090", "", true},
		{"http://evil.test", "", false},
		{"http://fleet.test:8091", "", false},
		{"http://fleet.test:8090", "same-site", false},
		{"http://fleet.test:8090", "cross-site", false},
		{"null", "", false},
		{"javascript://fleet.test:8090", "", false},
		{"http://fleet.test:8090/path", "", false},
		{"http://user@fleet.test:8090", "", true},
	} {
		r := httptest.NewRequest("POST", "http://fleet.test:8090/console/api/sessions", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		if got := sameOrigin(r); got != c.want {
			t.Errorf("Origin %q, Sec-Fetch-Site %q: sameOrigin %v, want %v", c.origin, c.site, got, c.want)
		}
	}
}

func TestCSRF(t *testing.T) {
	s := signin{csrf: "the-token"}
	for _, c := range []struct {
		header, form, ctype string
		want                bool
	}{
		{"the-token", "", "application/json", true},
		{"", "the-token", "application/x-www-form-urlencoded", true},
		{"", "the-token", "text/plain", false}, // a form field counts only in a form
		{"", "", "application/json", false},
		{"the-token-", "", "application/json", false},
		{"wrong", "the-token", "application/x-www-form-urlencoded", false},
	} {
		r := httptest.NewRequest("POST", "/console/signout", strings.NewReader(url.Values{FieldCSRF: {c.form}}.Encode()))
		r.Header.Set("Content-Type", c.ctype)
		if c.header != "" {
			r.Header.Set(HeaderCSRF, c.header)
		}
		if got := csrfOK(r, s); got != c.want {
			t.Errorf("header %q, form %q (%s): csrfOK %v, want %v", c.header, c.form, c.ctype, got, c.want)
		}
	}
}

// FuzzSameOrigin: any Origin and Sec-Fetch-Site are judged without
// panicking, and one naming another host is never let through.
func FuzzSameOrigin(f *testing.F) {
	f.Add("http://fleet.test", "same-origin")
	f.Add("http://evil.test", "cross-site")
	f.Add("%zz", "")
	f.Fuzz(func(t *testing.T, origin, site string) {
		r := httptest.NewRequest("POST", "http://fleet.test/console/api/x", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Sec-Fetch-Site", site)
		ok := sameOrigin(r)
		if u, err := url.Parse(origin); ok && origin != "" && (err != nil || !strings.EqualFold(u.Host, "fleet.test")) {
			t.Errorf("Origin %q let through", origin)
		}
	})
}
