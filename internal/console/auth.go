package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"atelier/internal/store"
)

// CookieName is the console's sign-in cookie; it holds a random id whose
// hash is the stored sign-in's key.
const CookieName = "atelier_console"

// HeaderCSRF carries a sign-in's CSRF token on every state-changing
// request the console's script makes; FieldCSRF carries it in a form.
const (
	HeaderCSRF = "X-CSRF-Token"
	FieldCSRF  = "csrf"
)

// DefaultTTL is how long a sign-in lasts.
const DefaultTTL = 12 * time.Hour

// signin is a request's valid sign-in.
type signin struct {
	idHash string
	csrf   string
}

func randomText() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// secure reports whether cookies must be Secure: under TLS, or behind a
// proxy the fleet was told serves it over https.
func (c *Console) secure(r *http.Request) bool { return r.TLS != nil || c.opts.Secure }

// signIn checks token against the fleet's and records a new sign-in; the
// cookie is set on w.
func (c *Console) signIn(ctx context.Context, w http.ResponseWriter, r *http.Request, token string) error {
	if subtle.ConstantTimeCompare([]byte(token), []byte(c.opts.Token)) != 1 {
		return errors.New("wrong token")
	}
	id, now := randomText(), c.now()
	cs := store.ConsoleSession{IDHash: hash(id), CSRF: randomText(), TokenHash: hash(c.opts.Token), ExpiresAt: now.Add(c.opts.TTL)}
	if err := c.opts.Store.InsertConsoleSession(ctx, cs, now); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: Prefix, Expires: cs.ExpiresAt, MaxAge: int(c.opts.TTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
	return nil
}

// current returns the request's sign-in, if its cookie names one that is
// stored, unexpired and made with the fleet's current token.
func (c *Console) current(r *http.Request) (signin, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return signin{}, false
	}
	cs, err := c.opts.Store.GetConsoleSession(r.Context(), hash(ck.Value))
	if err != nil {
		if !errors.Is(err, store.ErrConsoleSessionNotFound) {
			c.log.ErrorContext(r.Context(), "console: read sign-in", "err", err)
		}
		return signin{}, false
	}
	if !c.now().Before(cs.ExpiresAt) || subtle.ConstantTimeCompare([]byte(cs.TokenHash), []byte(hash(c.opts.Token))) != 1 {
		return signin{}, false
	}
	return signin{idHash: cs.IDHash, csrf: cs.CSRF}, true
}

// signOut ends the sign-in and clears the cookie.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s signin) error {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
	return c.opts.Store.DeleteConsoleSession(r.Context(), s.idHash)
}

// safeMethod is a request that changes nothing.
func safeMethod(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

// sameOrigin refuses a request a browser says came from another site:
// Sec-Fetch-Site other than same-origin (or none: typed in the address
// bar), or an Origin other than the fleet's own.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host) && u.Path == "" && (u.Scheme == "http" || u.Scheme == "https")
}

// csrfOK checks a state-changing request's CSRF token (header, or form
// field for the plain forms) against its sign-in's.
func csrfOK(r *http.Request, s signin) bool {
	got := r.Header.Get(HeaderCSRF)
	if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		got = r.PostFormValue(FieldCSRF)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}
