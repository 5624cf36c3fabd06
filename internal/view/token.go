package view

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Mode is what an embed token lets its holder do with a desktop.
type Mode string

// Modes of an embed token. A control token also allows viewing; a view
// token never allows input.
const (
	ModeView    Mode = "view"
	ModeControl Mode = "control"
)

// ParseMode parses "view" or "control".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeView, ModeControl:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: want %q or %q", s, ModeView, ModeControl)
}

// allows reports whether a token of mode m grants want.
func (m Mode) allows(want Mode) bool {
	return m == want || (m == ModeControl && want == ModeView)
}

// MaxTTL is the longest lifetime Mint accepts.
const MaxTTL = 30 * 24 * time.Hour

// Errors Verify returns; every one means 403 and nothing opened.
var (
	ErrNoToken      = errors.New("embed token missing")
	ErrBadToken     = errors.New("embed token invalid")
	ErrExpiredToken = errors.New("embed token expired")
	ErrModeDenied   = errors.New("embed token does not grant this mode")
)

// Claims is what a verified token says.
type Claims struct {
	Session string
	// Generation is the session's token generation the token was minted
	// for; revoking a session's tokens moves it on.
	Generation uint64
	Mode       Mode
	Expires    time.Time
}

// Token layout, before base64url: version, mode, expiry (unix seconds,
// big endian), nonce, then the MAC. The session and its token generation
// are not carried, only signed: the URL names the session, the fleet knows
// its generation, and leaving them out keeps tokens short.
const (
	tokenVersion = 1
	nonceLen     = 12
	macLen       = sha256.Size
	bodyLen      = 1 + 1 + 8 + nonceLen
	tokenLen     = bodyLen + macLen
	secretLen    = 32
)

var modeBytes = map[Mode]byte{ModeView: 'v', ModeControl: 'c'}

// Tokens mints and verifies embed tokens with one HMAC-SHA256 key.
type Tokens struct {
	key []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewTokens loads the HMAC key from secretPath, creating the file (0600,
// 32 random bytes) if it does not exist. A key file that others can read,
// or that is too short, is refused.
func NewTokens(secretPath string) (*Tokens, error) {
	key, err := os.ReadFile(secretPath)
	if errors.Is(err, fs.ErrNotExist) {
		return createSecret(secretPath)
	}
	if err != nil {
		return nil, fmt.Errorf("read embed secret: %w", err)
	}
	fi, err := os.Stat(secretPath)
	if err != nil {
		return nil, fmt.Errorf("stat embed secret: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("embed secret %s: mode %o lets others read it; want 0600", secretPath, fi.Mode().Perm())
	}
	if len(key) < secretLen {
		return nil, fmt.Errorf("embed secret %s: %d bytes, want at least %d", secretPath, len(key), secretLen)
	}
	return &Tokens{key: key}, nil
}

func createSecret(path string) (*Tokens, error) {
	key := make([]byte, secretLen)
	rand.Read(key)
	// O_EXCL: if another process created it meanwhile, keep theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return NewTokens(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create embed secret: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write embed secret: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write embed secret: %w", err)
	}
	return &Tokens{key: key}, nil
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Mint returns a token for session's token generation gen in mode, valid
// for ttl (rounded up to a whole second), and its expiry.
func (t *Tokens) Mint(session string, gen uint64, mode Mode, ttl time.Duration) (string, time.Time, error) {
	mb, ok := modeBytes[mode]
	if !ok {
		return "", time.Time{}, fmt.Errorf("mint: mode %q: want %q or %q", mode, ModeView, ModeControl)
	}
	if session == "" {
		return "", time.Time{}, errors.New("mint: empty session")
	}
	if ttl <= 0 || ttl > MaxTTL {
		return "", time.Time{}, fmt.Errorf("mint: lifetime %s: want more than 0 and at most %s", ttl, MaxTTL)
	}
	exp := t.now().Add(ttl + time.Second - 1).Truncate(time.Second)
	buf := make([]byte, bodyLen, tokenLen)
	buf[0] = tokenVersion
	buf[1] = mb
	binary.BigEndian.PutUint64(buf[2:10], uint64(exp.Unix()))
	rand.Read(buf[10:bodyLen])
	buf = append(buf, t.mac(session, gen, buf)...)
	return base64.RawURLEncoding.EncodeToString(buf), exp, nil
}

func (t *Tokens) mac(session string, gen uint64, body []byte) []byte {
	h := hmac.New(sha256.New, t.key)
	// Length-prefixed, so no (session, body) pair can be re-split into another.
	io.WriteString(h, "atelier embed token\x00")
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(session)))
	h.Write(n[:])
	io.WriteString(h, session)
	// Generation 0 signs as tokens did before generations existed, so their
	// links stay valid until a first revocation; the fixed-length body
	// after it keeps the two forms apart.
	if gen > 0 {
		var g [9]byte
		g[0] = 'g'
		binary.BigEndian.PutUint64(g[1:], gen)
		h.Write(g[:])
	}
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks that token was minted by t for session's token generation
// gen, has not expired and grants want (a control token grants view). The
// claims tell the mode the token actually carries. A token of an older
// generation is invalid: it was revoked.
func (t *Tokens) Verify(token, session string, gen uint64, want Mode) (Claims, error) {
	if token == "" {
		return Claims{}, ErrNoToken
	}
	// The exact length first: the decoder would skip inserted newlines.
	if len(token) != base64.RawURLEncoding.EncodedLen(tokenLen) {
		return Claims{}, ErrBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != tokenLen || raw[0] != tokenVersion {
		return Claims{}, ErrBadToken
	}
	body, sum := raw[:bodyLen], raw[bodyLen:]
	if !hmac.Equal(sum, t.mac(session, gen, body)) {
		return Claims{}, ErrBadToken
	}
	var mode Mode
	for m, b := range modeBytes {
		if raw[1] == b {
			mode = m
		}
	}
	if mode == "" {
		return Claims{}, ErrBadToken
	}
	c := Claims{Session: session, Generation: gen, Mode: mode, Expires: time.Unix(int64(binary.BigEndian.Uint64(raw[2:10])), 0)}
	if !t.now().Before(c.Expires) {
		return Claims{}, ErrExpiredToken
	}
	if !mode.allows(want) {
		return Claims{}, ErrModeDenied
	}
	return c, nil
}
