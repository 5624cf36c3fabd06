package agentapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of protocol v1. A request over any of them is refused with
// CodeTooLarge and does nothing.
const (
	MaxRequestBytes = 1 << 20          // one request line
	MaxTextRunes    = 10_000           // "type" text
	MaxScrollAmount = 100              // wheel steps in one scroll
	MaxDuration     = 60 * time.Second // wait and hold_key
	MaxImageBytes   = 64 << 20         // one image in a response
	MaxQuiet        = time.Second      // settle's quiet period
	// MaxClipboardBytes bounds clipboard content, decoded: a PNG's base64
	// (4/3 of it) still fits a request line.
	MaxClipboardBytes = 512 << 10
	// DefaultQuiet is settle's quiet period when the request names none:
	// two frames at 60 Hz, and a margin.
	DefaultQuiet = 35 * time.Millisecond
)

// Point is a pixel of the desktop's output. On the wire it is [x, y].
type Point struct{ X, Y int }

// MarshalJSON writes p as [x, y].
func (p Point) MarshalJSON() ([]byte, error) {
	return []byte("[" + strconv.Itoa(p.X) + "," + strconv.Itoa(p.Y) + "]"), nil
}

// UnmarshalJSON accepts exactly two integers.
func (p *Point) UnmarshalJSON(b []byte) error {
	var xy []json.Number
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&xy); err != nil || len(xy) != 2 {
		return errors.New("want [x, y] with two integers")
	}
	x, errX := strconv.Atoi(xy[0].String())
	y, errY := strconv.Atoi(xy[1].String())
	if errX != nil || errY != nil {
		return errors.New("want [x, y] with two integers")
	}
	*p = Point{x, y}
	return nil
}

// Region is a rectangle of the output, in pixels.
type Region struct {
	X      int `json:"x"`
	Y      int `json:"y"`
	Width  int `json:"width"`
	Height int `json:"height"`
}

// Request is one action. Which fields a verb uses is fixed by the protocol;
// a field set for a verb that does not use it is an error.
type Request struct {
	V      int    `json:"v"`
	ID     string `json:"id,omitempty"` // echoed in the response
	Action Verb   `json:"action"`

	// Pointer verbs. Coordinate is the target; clicks without one click
	// where the pointer is. StartCoordinate is where a drag begins.
	Coordinate      *Point `json:"coordinate,omitempty"`
	StartCoordinate *Point `json:"start_coordinate,omitempty"`
	// Modifiers held during a click or scroll: "shift", "ctrl+alt", …
	Modifiers string `json:"modifiers,omitempty"`

	// Text is the text to type (type) or the key combo (key, hold_key),
	// xdotool style: "ctrl+a", "super+Return", "Escape".
	Text string `json:"text,omitempty"`

	// Scroll: direction up|down|left|right and a count of wheel steps.
	ScrollDirection string `json:"scroll_direction,omitempty"`
	ScrollAmount    int    `json:"scroll_amount,omitempty"`

	// Duration in seconds, for wait and hold_key; settle's ceiling.
	Duration float64 `json:"duration,omitempty"`
	// Quiet is how long, in seconds, the screen must show no change for
	// settle to end early; 0 means DefaultQuiet.
	Quiet float64 `json:"quiet,omitempty"`

	// Screenshot: an optional region, format png (default) or jpeg, JPEG
	// quality 1–100 (default 80), and a scale in (0, 1] (default 1).
	Region  *Region `json:"region,omitempty"`
	Format  string  `json:"format,omitempty"`
	Quality int     `json:"quality,omitempty"`
	Scale   float64 `json:"scale,omitempty"`

	// Clipboard: the content's MIME type (MimeText, the default, or
	// MimePNG) and, for clipboard_set, the content: the text itself, or
	// a PNG in standard base64.
	Mime string `json:"mime,omitempty"`
	Data string `json:"data,omitempty"`
}

// Clipboard MIME types.
const (
	MimeText = "text/plain;charset=utf-8"
	MimePNG  = "image/png"
)

// ClipboardBytes returns clipboard_set's content, decoded.
func (r *Request) ClipboardBytes() ([]byte, error) {
	if r.Mime == MimePNG {
		b, err := base64.StdEncoding.DecodeString(r.Data)
		if err != nil {
			return nil, Errorf(CodeBadField, "data: not standard base64: %v", err)
		}
		return b, nil
	}
	return []byte(r.Data), nil
}

// Image formats.
const (
	FormatPNG  = "png"
	FormatJPEG = "jpeg"
)

// ScrollDirections lists the accepted scroll directions.
var ScrollDirections = []string{"up", "down", "left", "right"}

// field names, as on the wire, for the per-verb rules.
const (
	fCoordinate = "coordinate"
	fStart      = "start_coordinate"
	fModifiers  = "modifiers"
	fText       = "text"
	fDirection  = "scroll_direction"
	fAmount     = "scroll_amount"
	fDuration   = "duration"
	fQuiet      = "quiet"
	fRegion     = "region"
	fFormat     = "format"
	fQuality    = "quality"
	fScale      = "scale"
	fMime       = "mime"
	fData       = "data"
)

type verbRule struct {
	required []string
	optional []string
}

var clickRule = verbRule{optional: []string{fCoordinate, fModifiers}}

var verbRules = map[Verb]verbRule{
	Screenshot:     {optional: []string{fRegion, fFormat, fQuality, fScale}},
	CursorPosition: {},
	StatusVerb:     {},
	MouseMove:      {required: []string{fCoordinate}},
	LeftClick:      clickRule,
	RightClick:     clickRule,
	MiddleClick:    clickRule,
	DoubleClick:    clickRule,
	TripleClick:    clickRule,
	LeftMouseDown:  {optional: []string{fCoordinate}},
	LeftMouseUp:    {optional: []string{fCoordinate}},
	LeftClickDrag:  {required: []string{fStart, fCoordinate}, optional: []string{fModifiers}},
	Scroll:         {required: []string{fDirection}, optional: []string{fCoordinate, fAmount, fModifiers}},
	Type:           {required: []string{fText}},
	Key:            {required: []string{fText}},
	HoldKey:        {required: []string{fText, fDuration}},
	Wait:           {required: []string{fDuration}},
	Settle:         {required: []string{fDuration}, optional: []string{fQuiet}},
	ClipboardGet:   {optional: []string{fMime}},
	ClipboardSet:   {required: []string{fData}, optional: []string{fMime}},
}

// Verbs returns every verb of protocol v1, sorted.
func Verbs() []Verb {
	vs := make([]Verb, 0, len(verbRules))
	for v := range verbRules {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

func knownVerb(v Verb) bool {
	_, ok := verbRules[v]
	return ok
}

// IsInput reports whether v changes the desktop's input state (pointer or
// keyboard), as opposed to observing it or waiting.
func (v Verb) IsInput() bool {
	switch v {
	case Screenshot, CursorPosition, StatusVerb, Wait, Settle, ClipboardGet:
		return false
	}
	_, ok := verbRules[v]
	return ok
}

// IsPointer reports whether v moves or presses the pointer, or reads its
// position: the verbs whose result is worth the pointer's position.
func (v Verb) IsPointer() bool {
	switch v {
	case MouseMove, LeftClick, RightClick, MiddleClick, DoubleClick, TripleClick,
		LeftMouseDown, LeftMouseUp, LeftClickDrag, Scroll, CursorPosition:
		return true
	}
	return false
}

// set returns the wire names of the optional fields set in r.
func (r *Request) set() []string {
	var s []string
	add := func(ok bool, name string) {
		if ok {
			s = append(s, name)
		}
	}
	add(r.Coordinate != nil, fCoordinate)
	add(r.StartCoordinate != nil, fStart)
	add(r.Modifiers != "", fModifiers)
	add(r.Text != "", fText)
	add(r.ScrollDirection != "", fDirection)
	add(r.ScrollAmount != 0, fAmount)
	add(r.Duration != 0, fDuration)
	add(r.Quiet != 0, fQuiet)
	add(r.Region != nil, fRegion)
	add(r.Format != "", fFormat)
	add(r.Quality != 0, fQuality)
	add(r.Scale != 0, fScale)
	add(r.Mime != "", fMime)
	add(r.Data != "", fData)
	return s
}

// Decode parses one request strictly: well-formed JSON, "v" supported, a
// known verb, no unknown fields, the right types, the fields the verb needs
// and no others, values within the protocol's limits. Checks that need the
// desktop (coordinates within the output, key names) are CheckBounds and the
// agent's key table.
func Decode(b []byte) (Request, error) {
	var r Request
	if len(b) > MaxRequestBytes {
		return r, Errorf(CodeTooLarge, "request is %d bytes; the limit is %d", len(b), MaxRequestBytes)
	}
	// The version is checked before anything else, so a client speaking a
	// newer protocol hears about the version rather than a field it added.
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return r, Errorf(CodeBadJSON, "request is not a JSON object: %v", err)
	}
	rawV, ok := probe["v"]
	if !ok {
		return r, Errorf(CodeBadVersion, `"v" is missing; supported versions: %v`, SupportedVersions)
	}
	var v int
	if err := json.Unmarshal(rawV, &v); err != nil || !slices.Contains(SupportedVersions, v) {
		return r, Errorf(CodeBadVersion, `"v" is %s; supported versions: %v`, rawV, SupportedVersions)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return Request{}, decodeError(err)
	}
	if d.More() {
		return Request{}, Errorf(CodeBadJSON, "trailing data after the JSON object")
	}
	if err := r.Validate(); err != nil {
		return Request{}, err
	}
	return r, nil
}

func decodeError(err error) *Error {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		return Errorf(CodeBadField, "field %q: want %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return Errorf(CodeUnknownField, "%s is not a field of protocol v%d", strings.TrimPrefix(err.Error(), "json: unknown field "), Version)
	case strings.Contains(err.Error(), "Point"), strings.Contains(err.Error(), "[x, y]"):
		return Errorf(CodeBadField, "coordinate: %v", errors.Unwrap(err))
	}
	return Errorf(CodeBadJSON, "%v", err)
}

// Validate checks r against the protocol's per-verb rules and limits.
func (r *Request) Validate() error {
	if r.V != Version {
		return Errorf(CodeBadVersion, `"v" is %d; supported versions: %v`, r.V, SupportedVersions)
	}
	rule, ok := verbRules[r.Action]
	if !ok {
		if r.Action == "" {
			return Errorf(CodeUnknownAction, `"action" is missing; verbs: %v`, Verbs())
		}
		return Errorf(CodeUnknownAction, "unknown action %q; verbs: %v", r.Action, Verbs())
	}
	set := r.set()
	for _, f := range rule.required {
		if !slices.Contains(set, f) {
			return Errorf(CodeMissingField, "%s needs %q", r.Action, f)
		}
	}
	for _, f := range set {
		if !slices.Contains(rule.required, f) && !slices.Contains(rule.optional, f) {
			return Errorf(CodeBadField, "%s does not use %q", r.Action, f)
		}
	}
	if n := utf8.RuneCountInString(r.Text); n > MaxTextRunes {
		return Errorf(CodeTooLarge, "text has %d characters; the limit is %d", n, MaxTextRunes)
	}
	if !utf8.ValidString(r.Text) {
		return Errorf(CodeBadField, "text is not valid UTF-8")
	}
	if r.ScrollDirection != "" && !slices.Contains(ScrollDirections, r.ScrollDirection) {
		return Errorf(CodeBadField, "scroll_direction %q: want one of %v", r.ScrollDirection, ScrollDirections)
	}
	if r.ScrollAmount < 0 || r.ScrollAmount > MaxScrollAmount {
		return Errorf(CodeBadField, "scroll_amount %d: want 1 to %d", r.ScrollAmount, MaxScrollAmount)
	}
	if r.Duration < 0 || math.IsNaN(r.Duration) || r.Duration > MaxDuration.Seconds() {
		return Errorf(CodeBadField, "duration %v: want seconds from 0 to %v", r.Duration, MaxDuration.Seconds())
	}
	if r.Quiet < 0 || math.IsNaN(r.Quiet) || r.Quiet > MaxQuiet.Seconds() || (r.Quiet > r.Duration && r.Duration > 0) {
		return Errorf(CodeBadField, "quiet %v: want seconds from 0 to %v, at most the duration", r.Quiet, MaxQuiet.Seconds())
	}
	if r.Format != "" && r.Format != FormatPNG && r.Format != FormatJPEG {
		return Errorf(CodeBadField, "format %q: want %q or %q", r.Format, FormatPNG, FormatJPEG)
	}
	if r.Quality != 0 && (r.Quality < 1 || r.Quality > 100 || r.Format != FormatJPEG) {
		return Errorf(CodeBadField, "quality %d: want 1 to 100, with format jpeg", r.Quality)
	}
	if r.Scale != 0 && (r.Scale < 0.05 || r.Scale > 1 || math.IsNaN(r.Scale)) {
		return Errorf(CodeBadField, "scale %v: want a number from 0.05 to 1", r.Scale)
	}
	if r.Mime != "" && r.Mime != MimeText && r.Mime != MimePNG {
		return Errorf(CodeBadField, "mime %q: want %q or %q", r.Mime, MimeText, MimePNG)
	}
	if r.Data != "" {
		b, err := r.ClipboardBytes()
		if err != nil {
			return err
		}
		if len(b) > MaxClipboardBytes {
			return Errorf(CodeTooLarge, "clipboard data of %d bytes; the limit is %d", len(b), MaxClipboardBytes)
		}
		if r.Mime != MimePNG && !utf8.Valid(b) {
			return Errorf(CodeBadField, "data is not valid UTF-8")
		}
	}
	if r.Region != nil && (r.Region.Width <= 0 || r.Region.Height <= 0) {
		return Errorf(CodeBadField, "region %dx%d: width and height must be positive", r.Region.Width, r.Region.Height)
	}
	return nil
}

// WaitDuration returns Duration as a time.Duration.
func (r *Request) WaitDuration() time.Duration {
	return time.Duration(r.Duration * float64(time.Second))
}

// QuietPeriod returns Quiet as a time.Duration, DefaultQuiet if unset.
func (r *Request) QuietPeriod() time.Duration {
	if r.Quiet == 0 {
		return DefaultQuiet
	}
	return time.Duration(r.Quiet * float64(time.Second))
}

// CheckBounds reports CodeBadCoordinate when a coordinate or the region of r
// falls outside a width×height output. Coordinates are never clamped.
func (r *Request) CheckBounds(width, height int) error {
	in := func(p *Point) bool { return p.X >= 0 && p.Y >= 0 && p.X < width && p.Y < height }
	for _, p := range []*Point{r.Coordinate, r.StartCoordinate} {
		if p != nil && !in(p) {
			return Errorf(CodeBadCoordinate, "[%d, %d] is outside the %dx%d output", p.X, p.Y, width, height)
		}
	}
	if g := r.Region; g != nil && (g.X < 0 || g.Y < 0 || g.X+g.Width > width || g.Y+g.Height > height) {
		return Errorf(CodeBadCoordinate, "region %dx%d at [%d, %d] is outside the %dx%d output", g.Width, g.Height, g.X, g.Y, width, height)
	}
	return nil
}

// String is a short description for logs: the verb and its target.
func (r *Request) String() string {
	s := string(r.Action)
	if r.Coordinate != nil {
		s += fmt.Sprintf(" [%d,%d]", r.Coordinate.X, r.Coordinate.Y)
	}
	return s
}
