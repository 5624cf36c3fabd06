package desktop

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

//go:embed config/*.tmpl
var configFS embed.FS

// Config is what Render needs to write a desktop's configuration files.
type Config struct {
	Theme      Theme
	Resolution Resolution
	RunDir     string // the desktop's run dir; waybar reads its budget file
	AgentPath  string // the atelier-agent binary; waybar runs its budget-line
}

// Paths of the files Render writes, relative to its dir (XDG_CONFIG_HOME),
// each with the template it comes from.
var rendered = []struct{ path, tmpl string }{
	{"sway/config", "sway.conf.tmpl"},
	{"foot/foot.ini", "foot.ini.tmpl"},
	{"waybar/config", "waybar.json.tmpl"},
	{"waybar/style.css", "waybar.css.tmpl"},
	{"gtk-3.0/settings.ini", "gtk-settings.ini.tmpl"},
	{"gtk-3.0/gtk.css", "gtk.css.tmpl"},
	{"gtk-4.0/settings.ini", "gtk-settings.ini.tmpl"},
	{"gtk-4.0/gtk.css", "gtk.css.tmpl"},
}

// Config file paths relative to Render's dir, for the programs that take a
// config path.
const (
	SwayConfigPath   = "sway/config"
	WaybarConfigPath = "waybar/config"
	WaybarStylePath  = "waybar/style.css"
)

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"sub": func(a, b int) int { return a - b },
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}).ParseFS(configFS, "config/*.tmpl"))

// Render writes the configuration of sway, foot, waybar and GTK for c into
// dir (the desktop's XDG_CONFIG_HOME). Each file is replaced atomically, so a
// program reloading meanwhile reads the old or the new file, never half of
// one. A bad Config is an error and writes nothing.
func Render(dir string, c Config) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("render desktop config: %w", err)
	}
	data := struct {
		Config
		BudgetCommand string
	}{c, shellQuote(c.AgentPath) + " budget-line --follow " + shellQuote(filepath.Join(c.RunDir, BudgetFile))}

	// Execute every template before writing anything.
	out := make([][]byte, len(rendered))
	for i, f := range rendered {
		var buf bytes.Buffer
		if err := templates.ExecuteTemplate(&buf, f.tmpl, data); err != nil {
			return fmt.Errorf("render %s: %w", f.path, err)
		}
		out[i] = buf.Bytes()
	}
	for i, f := range rendered {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("render %s: %w", f.path, err)
		}
		if err := writeFileAtomic(p, out[i], 0o644); err != nil {
			return fmt.Errorf("render: %w", err)
		}
	}
	return nil
}

func (c Config) validate() error {
	if _, err := LookupTheme(c.Theme.Name); err != nil {
		return err
	}
	if err := c.Resolution.Validate(); err != nil {
		return err
	}
	if !filepath.IsAbs(c.RunDir) || !filepath.IsAbs(c.AgentPath) {
		return errors.New("run dir and agent path must be absolute")
	}
	return nil
}

// shellQuote quotes s for sh, which waybar runs custom modules with.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
