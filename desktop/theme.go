package desktop

import (
	"fmt"
	"slices"
	"strings"
)

// Color is an opaque sRGB colour written "#rrggbb". The Atelier look has no
// transparency: a vision model reads flat colours best.
type Color string

// Hex returns the colour without its leading '#', as foot wants it.
func (c Color) Hex() string { return strings.TrimPrefix(string(c), "#") }

// Theme is a named palette applied to sway, waybar, foot and GTK.
type Theme struct {
	Name    string
	Summary string // one line, for people choosing a theme
	Dark    bool   // GTK prefers its dark variant

	Wallpaper Color // the desktop behind the windows
	Surface   Color // terminal, bar and window backgrounds
	Raised    Color // selections, hovered and inactive elements
	Text      Color // body text; high contrast against Surface
	Muted     Color // secondary text, unfocused borders
	Accent    Color // the focus border, the current workspace
	OnAccent  Color // text drawn on Accent
	Warning   Color // the budget near its cap
	Critical  Color // the budget at its cap, urgent windows

	// ANSI is the terminal's 16-colour palette: black, red, green, yellow,
	// blue, magenta, cyan, white, then their bright variants.
	ANSI [16]Color
}

// DefaultTheme is the theme of a session that names none.
const DefaultTheme = "terracotta"

// themes holds every palette, DefaultTheme first.
var themes = []Theme{
	{
		Name:      "terracotta",
		Summary:   "warm paper on fired clay: dark ink, a burnt-orange focus",
		Wallpaper: "#b5654a", Surface: "#fbf5ec", Raised: "#eee2d2",
		Text: "#2a1f1a", Muted: "#85715f", Accent: "#a9472a", OnAccent: "#fff8f0",
		Warning: "#b07a00", Critical: "#b3261e",
		ANSI: [16]Color{
			"#2a1f1a", "#a8321f", "#4f7a28", "#946200", "#2f5f8a", "#8a3f73", "#2b7a78", "#d9cbb8",
			"#6b5a4c", "#c4452c", "#5f9132", "#b07a00", "#3d73a6", "#a4528a", "#33918e", "#fbf5ec",
		},
	},
	{
		Name:      "graphite",
		Summary:   "dark and quiet: light grey on charcoal, a cool blue focus",
		Dark:      true,
		Wallpaper: "#16191d", Surface: "#22262b", Raised: "#33383f",
		Text: "#ecebe8", Muted: "#8b929a", Accent: "#6fb3d9", OnAccent: "#0e1114",
		Warning: "#e0b45a", Critical: "#f0706a",
		ANSI: [16]Color{
			"#22262b", "#f0706a", "#9ccf7a", "#e0b45a", "#6fb3d9", "#c99ae0", "#6fcfc4", "#d4d2ce",
			"#5c636b", "#ff8d87", "#b3e394", "#f2ca73", "#8ccaeb", "#dab3ee", "#8ae3d9", "#ffffff",
		},
	},
	{
		Name:      "linen",
		Summary:   "bright daylight: near-black on white, a deep blue focus",
		Wallpaper: "#c9d3db", Surface: "#ffffff", Raised: "#e8edf1",
		Text: "#15191d", Muted: "#66717c", Accent: "#1f5fa6", OnAccent: "#ffffff",
		Warning: "#9a6700", Critical: "#c0271d",
		ANSI: [16]Color{
			"#15191d", "#b3261e", "#2e7d32", "#8a6100", "#1f5fa6", "#8e3fa0", "#00777a", "#c9d3db",
			"#55606b", "#d03a2f", "#3b9a41", "#a87700", "#2f74c0", "#a852bb", "#0a8f93", "#ffffff",
		},
	},
	{
		Name:      "contrast",
		Summary:   "maximum legibility: white on black, a yellow focus, no greys",
		Dark:      true,
		Wallpaper: "#000000", Surface: "#000000", Raised: "#1a1a1a",
		Text: "#ffffff", Muted: "#c8c8c8", Accent: "#ffd400", OnAccent: "#000000",
		Warning: "#ffd400", Critical: "#ff4d4d",
		ANSI: [16]Color{
			"#000000", "#ff4d4d", "#4dff4d", "#ffd400", "#5ca8ff", "#ff70ff", "#4dffff", "#ffffff",
			"#c8c8c8", "#ff8080", "#80ff80", "#ffe866", "#8cc2ff", "#ff9cff", "#80ffff", "#ffffff",
		},
	},
}

// Themes returns every theme, the default first.
func Themes() []Theme { return slices.Clone(themes) }

// ThemeNames returns the names of every theme, the default first.
func ThemeNames() []string {
	names := make([]string, len(themes))
	for i, t := range themes {
		names[i] = t.Name
	}
	return names
}

// LookupTheme returns the theme called name (surrounding space and case are
// ignored). An unknown name is an error wrapping ErrUnknownTheme that lists
// the known ones.
func LookupTheme(name string) (Theme, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, t := range themes {
		if t.Name == n {
			return t, nil
		}
	}
	return Theme{}, fmt.Errorf("%w %q: want one of %s", ErrUnknownTheme, name, strings.Join(ThemeNames(), ", "))
}
