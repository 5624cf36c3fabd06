package runtime

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// ErrBadID is reported for a string that is not the shape of a session id.
var ErrBadID = errors.New("malformed session id")

// idPrefix starts every session id, so ids are recognisable in logs and URLs.
const idPrefix = "sess_"

// idEncoding is lowercase base32 without padding: 128 bits make 26
// characters that are safe in URLs, file names and container names.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// idLen is the length of an id: the prefix and 26 characters of base32.
const idLen = len(idPrefix) + 26

// NewID returns a new unguessable session id: "sess_" and 128 random bits.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never returns an error (Go 1.24+)
	return idPrefix + idEncoding.EncodeToString(b[:])
}

// CheckID reports ErrBadID unless id has the shape NewID gives: callers
// learn of a typo before the store is asked, and an id is safe to use in a
// path.
func CheckID(id string) error {
	if len(id) != idLen || !strings.HasPrefix(id, idPrefix) {
		return fmt.Errorf("%w: %q: session ids look like sess_ and 26 letters and digits", ErrBadID, id)
	}
	for _, c := range id[len(idPrefix):] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return fmt.Errorf("%w: %q: session ids look like sess_ and 26 letters and digits", ErrBadID, id)
		}
	}
	return nil
}
