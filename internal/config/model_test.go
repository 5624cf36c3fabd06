package config_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"atelier/internal/config"
	"atelier/internal/model"
)

func TestLoadModel(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "scripted"},
		{map[string]string{"ANTHROPIC_API_KEY": "sk-secret-value-123"}, "anthropic"},
		{map[string]string{"ANTHROPIC_API_KEY": "sk-secret-value-123", "HOLO3_ENDPOINT": "http://127.0.0.1:1/v1"}, "holo"},
		{map[string]string{"HOLO3_ENDPOINT": "http://127.0.0.1:1/v1", "MODEL_BACKEND": "anthropic"}, "anthropic"},
	} {
		c, err := config.Load(env(tt.env), nil, new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		if c.Model.Backend != tt.want {
			t.Errorf("%v: backend %q, want %q", tt.env, c.Model.Backend, tt.want)
		}
		var log bytes.Buffer
		slog.New(slog.NewTextHandler(&log, nil)).Info("config", "config", c)
		if strings.Contains(log.String(), "sk-secret-value-123") {
			t.Errorf("the key is logged: %s", log.String())
		}
	}
	for _, bad := range []map[string]string{{"MODEL_BACKEND": "gpt"}, {"MODEL_PRICES": "nonsense"}} {
		if _, err := config.Load(env(bad), nil, new(bytes.Buffer)); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

func TestModelEndpointsKeysAndPrices(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"HAI_API_KEY": "hai-secret-value-1", "HOLO3_MODEL": "holo3-1-35b-a3b", "HOLO3_OUTPUT": "tools",
		"HOLO3_ENDPOINT": "https://api.hcompany.ai/v1/", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/gw",
		"MODEL_PRICES": "holo3-1-35b-a3b=free", "ATELIER_SETTLE_QUIET": "50ms", "ATELIER_SETTLE_MAX": "2s",
	}), nil, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Model
	if m.HoloKey != "hai-secret-value-1" || m.HoloModel != "holo3-1-35b-a3b" || m.HoloOutput != "tools" || m.AnthropicBaseURL != "http://127.0.0.1:9/gw" {
		t.Errorf("model config = %+v", m)
	}
	if m.SettleQuiet != 50*time.Millisecond || m.SettleMax != 2*time.Second {
		t.Errorf("settle %v / %v, want 50ms / 2s", m.SettleQuiet, m.SettleMax)
	}
	// MODEL_PRICES adds to the built-in table: Claude keeps its price.
	if pr, ok := m.Prices.Lookup("holo3-1-35b-a3b"); !ok || pr != model.Free {
		t.Errorf("holo3-1-35b-a3b = %+v, %v; want declared free", pr, ok)
	}
	if pr, ok := m.Prices.Lookup("claude-opus-4-1-20250805"); !ok || pr.Input != 15 {
		t.Errorf("claude-opus-4-1-20250805 = %+v, %v; want the built-in $15 per million in", pr, ok)
	}
	var log bytes.Buffer
	slog.New(slog.NewTextHandler(&log, nil)).Info("config", "config", c)
	if strings.Contains(log.String(), "hai-secret-value-1") {
		t.Errorf("the Holo key is logged: %s", log.String())
	}
	// Atelier's own name for the key wins over H's.
	c, _ = config.Load(env(map[string]string{"HAI_API_KEY": "h", "HOLO3_API_KEY": "ours"}), nil, new(bytes.Buffer))
	if c.Model.HoloKey != "ours" {
		t.Errorf("HOLO3_API_KEY and HAI_API_KEY: key %q, want HOLO3_API_KEY's", c.Model.HoloKey)
	}
	// Flags override the environment.
	c, err = config.Load(env(map[string]string{"MODEL_PRICES": "a=1/2"}), []string{"--model-prices", "b=3/4", "--settle-quiet", "20ms", "--holo-output", "structured_outputs"}, new(bytes.Buffer))
	if err != nil || c.Model.Prices.Priced("a") || !c.Model.Prices.Priced("b") || !c.Model.Prices.Priced("claude-sonnet-4-5") ||
		c.Model.SettleQuiet != 20*time.Millisecond || c.Model.HoloOutput != "structured_outputs" {
		t.Errorf("flags: %+v, %v", c.Model, err)
	}
	for _, bad := range []map[string]string{
		{"HOLO3_OUTPUT": "json"}, {"ANTHROPIC_BASE_URL": "api.anthropic.com"}, {"HOLO3_ENDPOINT": "ftp://x"},
		{"ATELIER_SETTLE_QUIET": "0s"}, {"ATELIER_SETTLE_QUIET": "fast"}, {"ATELIER_SETTLE_MAX": "90s"},
		{"ATELIER_SETTLE_QUIET": "500ms", "ATELIER_SETTLE_MAX": "100ms"}, {"MODEL_PRICES": "m=1/2,m=3/4"},
	} {
		if _, err := config.Load(env(bad), nil, new(bytes.Buffer)); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

// TestServeHelpNamesModelSettings: atelier serve --help documents every
// model setting, the keys by their variables.
func TestServeHelpNamesModelSettings(t *testing.T) {
	var help bytes.Buffer
	config.Load(env(nil), []string{"-h"}, &help)
	for _, want := range []string{"ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "HOLO3_API_KEY", "HAI_API_KEY", "HOLO3_MODEL",
		"HOLO3_OUTPUT", "HOLO3_ENDPOINT", "MODEL_PRICES", "MODEL_BACKEND", "ATELIER_SETTLE_QUIET", "ATELIER_SETTLE_MAX", "tools"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help does not name %s:\n%s", want, help.String())
		}
	}
}
