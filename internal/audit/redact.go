package audit

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// redactTyped replaces the text of a "type" action with its length in runes
// and its SHA-256: the log still shows that something was typed, and an
// operator holding a candidate text can confirm it, but the log does not
// hold it. Other actions pass unchanged.
func redactTyped(action json.RawMessage) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(action, &fields); err != nil {
		return nil, fmt.Errorf("%w: action: %v", ErrBadEntry, err)
	}
	var verb, text string
	if json.Unmarshal(fields["action"], &verb) != nil || verb != "type" {
		return action, nil
	}
	if json.Unmarshal(fields["text"], &text) != nil {
		return action, nil
	}
	red, err := json.Marshal(fmt.Sprintf("[redacted: %d runes, sha256 %x]", utf8.RuneCountInString(text), sha256.Sum256([]byte(text))))
	if err != nil {
		return nil, err
	}
	fields["text"] = red
	return json.Marshal(fields)
}
