package view_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atelier/internal/view"
)

// newTokens returns Tokens with a fresh secret and a clock the test moves.
func newTokens(t testing.TB) (*view.Tokens, *time.Time) {
	t.Helper()
	tk, err := view.NewTokens(filepath.Join(t.TempDir(), "embed.key"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tk.Now = func() time.Time { return now }
	return tk, &now
}

func mint(t testing.TB, tk *view.Tokens, session string, mode view.Mode, ttl time.Duration) string {
	t.Helper()
	tok, _, err := tk.Mint(session, 0, mode, ttl)
	if err != nil {
		t.Fatalf("Mint(%s, %s, %s): %v", session, mode, ttl, err)
	}
	return tok
}

func TestTokenRoundTrip(t *testing.T) {
	tk, now := newTokens(t)
	for _, tc := range []struct {
		mint, want view.Mode
	}{
		{view.ModeView, view.ModeView},
		{view.ModeControl, view.ModeControl},
		{view.ModeControl, view.ModeView}, // control grants view
	} {
		tok, exp, err := tk.Mint("s-1", 0, tc.mint, 90*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if want := now.Add(90 * time.Second); !exp.Equal(want) {
			t.Errorf("expiry %v, want %v", exp, want)
		}
		if strings.ContainsAny(tok, "+/=?&#%") {
			t.Errorf("token %q is not URL-safe", tok)
		}
		c, err := tk.Verify(tok, "s-1", 0, tc.want)
		if err != nil {
			t.Fatalf("Verify(%s token, want %s): %v", tc.mint, tc.want, err)
		}
		if c.Mode != tc.mint || c.Session != "s-1" || !c.Expires.Equal(exp) {
			t.Errorf("claims %+v, want mode %s session s-1 expiry %v", c, tc.mint, exp)
		}
	}
}

func TestTokenRefused(t *testing.T) {
	tk, now := newTokens(t)
	other, _ := newTokens(t)
	view1 := mint(t, tk, "s-1", view.ModeView, time.Minute)
	control1 := mint(t, tk, "s-1", view.ModeControl, time.Minute)
	expiring := mint(t, tk, "s-1", view.ModeControl, time.Minute)

	raw, _ := base64.RawURLEncoding.DecodeString(view1)
	escalated := append([]byte(nil), raw...)
	escalated[1] = 'c' // the mode byte of a view token, rewritten to control

	cases := []struct {
		name, token, session string
		want                 view.Mode
		err                  error
		after                time.Duration
	}{
		{"empty", "", "s-1", view.ModeView, view.ErrNoToken, 0},
		{"garbage", "not a token!", "s-1", view.ModeView, view.ErrBadToken, 0},
		{"base64 of the wrong length", base64.RawURLEncoding.EncodeToString([]byte("short")), "s-1", view.ModeView, view.ErrBadToken, 0},
		{"forged with another key", mint(t, other, "s-1", view.ModeControl, time.Minute), "s-1", view.ModeView, view.ErrBadToken, 0},
		{"other session's", control1, "s-2", view.ModeView, view.ErrBadToken, 0},
		{"session prefix", control1, "s-", view.ModeView, view.ErrBadToken, 0},
		{"view asking for control", view1, "s-1", view.ModeControl, view.ErrModeDenied, 0},
		{"mode byte rewritten", base64.RawURLEncoding.EncodeToString(escalated), "s-1", view.ModeControl, view.ErrBadToken, 0},
		{"newline inserted", control1[:10] + "\n" + control1[10:], "s-1", view.ModeView, view.ErrBadToken, 0},
		{"expired", expiring, "s-1", view.ModeView, view.ErrExpiredToken, time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			saved := *now
			defer func() { *now = saved }()
			*now = now.Add(tc.after)
			c, err := tk.Verify(tc.token, tc.session, 0, tc.want)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tc.err)
			}
		})
	}
}

// Every single changed byte of a token makes it invalid.
func TestTokenTampered(t *testing.T) {
	tk, _ := newTokens(t)
	tok := mint(t, tk, "s-1", view.ModeControl, time.Hour)
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for _, bit := range []byte{0x01, 0x80} {
			b := append([]byte(nil), raw...)
			b[i] ^= bit
			if _, err := tk.Verify(base64.RawURLEncoding.EncodeToString(b), "s-1", 0, view.ModeView); !errors.Is(err, view.ErrBadToken) {
				t.Errorf("byte %d ^ %#x: Verify err = %v, want ErrBadToken", i, bit, err)
			}
		}
	}
}

func TestMintRefusesBadInput(t *testing.T) {
	tk, _ := newTokens(t)
	for _, tc := range []struct {
		name    string
		session string
		mode    view.Mode
		ttl     time.Duration
	}{
		{"zero lifetime", "s", view.ModeView, 0},
		{"negative lifetime", "s", view.ModeView, -time.Second},
		{"too long", "s", view.ModeView, view.MaxTTL + time.Second},
		{"unknown mode", "s", "admin", time.Minute},
		{"empty mode", "s", "", time.Minute},
		{"empty session", "", view.ModeView, time.Minute},
	} {
		if tok, _, err := tk.Mint(tc.session, 0, tc.mode, tc.ttl); err == nil {
			t.Errorf("%s: Mint = %q, want an error", tc.name, tok)
		}
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "embed.key")
	a, err := view.NewTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf("secret file mode %o size %d, want 600 and 32", fi.Mode().Perm(), fi.Size())
	}
	// A restarted fleet (a new Tokens on the same file) accepts old tokens.
	b, err := view.NewTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, a, "s", view.ModeView, time.Minute)
	if _, err := b.Verify(tok, "s", 0, view.ModeView); err != nil {
		t.Errorf("token from before a restart: %v", err)
	}

	loose := filepath.Join(dir, "loose.key")
	os.WriteFile(loose, make([]byte, 32), 0o644)
	if _, err := view.NewTokens(loose); err == nil {
		t.Error("NewTokens accepted a secret others can read")
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("abc"), 0o600)
	if _, err := view.NewTokens(short); err == nil {
		t.Error("NewTokens accepted a 3-byte secret")
	}
	if _, err := view.NewTokens(filepath.Join(dir, "missing", "embed.key")); err == nil {
		t.Error("NewTokens created a secret in a missing directory")
	}
}

func TestParseMode(t *testing.T) {
	for in, ok := range map[string]bool{"view": true, "control": true, "": false, "View": false, "admin": false} {
		m, err := view.ParseMode(in)
		if (err == nil) != ok || (ok && string(m) != in) {
			t.Errorf("ParseMode(%q) = %q, %v", in, m, err)
		}
	}
}

// FuzzVerify: no input but the minted tokens themselves verifies.
func FuzzVerify(f *testing.F) {
	tk, _ := newTokens(f)
	valid := map[string]bool{}
	for _, m := range []view.Mode{view.ModeView, view.ModeControl} {
		tok := mint(f, tk, "s-1", m, time.Hour)
		valid[tok] = true
		f.Add(tok, "s-1")
		f.Add(tok[:len(tok)-1]+"A", "s-1")
		f.Add(tok, "s-2")
	}
	f.Fuzz(func(t *testing.T, token, session string) {
		c, err := tk.Verify(token, session, 0, view.ModeView)
		if err == nil && !(valid[token] && session == "s-1") {
			t.Fatalf("Verify(%q, %q) accepted: %+v", token, session, c)
		}
	})
}

// TestTokenGenerations checks revocation at the token level: a token is
// valid for the generation it was minted for only, and a token of
// generation 0 is the one minted before generations existed.
func TestTokenGenerations(t *testing.T) {
	tk, _ := newTokens(t)
	for gen := uint64(0); gen < 3; gen++ {
		tok, _, err := tk.Mint("s-1", gen, view.ModeControl, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := tk.Verify(tok, "s-1", gen, view.ModeView); err != nil || c.Generation != gen {
			t.Errorf("generation %d: %+v, %v", gen, c, err)
		}
		for _, other := range []uint64{gen + 1, gen + 1<<32} {
			if _, err := tk.Verify(tok, "s-1", other, view.ModeView); !errors.Is(err, view.ErrBadToken) {
				t.Errorf("token of generation %d verified at %d: %v", gen, other, err)
			}
		}
	}
}
