package config_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"atelier/internal/config"
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
