package config

import (
	"fmt"
	"log/slog"

	"atelier/internal/model"
)

// Model settings' environment variables.
const (
	EnvModelBackend = "MODEL_BACKEND"
	EnvHoloEndpoint = "HOLO3_ENDPOINT"
	EnvAnthropicKey = "ANTHROPIC_API_KEY"
	EnvModelPrices  = "MODEL_PRICES"
)

// Model configures the task backends.
type Model struct {
	// Backend is the default backend. When MODEL_BACKEND is unset it is
	// holo if HOLO3_ENDPOINT is set, else anthropic if ANTHROPIC_API_KEY
	// is, else scripted: the one backend that can run is the default.
	Backend      string
	HoloEndpoint string
	AnthropicKey string // secret: masked in logs
	// Prices override model.DefaultPrices (MODEL_PRICES).
	Prices model.Prices
}

func loadModel(getenv func(string) string) (Model, error) {
	m := Model{Backend: getenv(EnvModelBackend), HoloEndpoint: getenv(EnvHoloEndpoint), AnthropicKey: getenv(EnvAnthropicKey)}
	switch {
	case m.Backend != "":
	case m.HoloEndpoint != "":
		m.Backend = "holo"
	case m.AnthropicKey != "":
		m.Backend = "anthropic"
	default:
		m.Backend = "scripted"
	}
	switch m.Backend {
	case "holo", "anthropic", "scripted":
	default:
		return Model{}, fmt.Errorf("%s=%q: want holo, anthropic or scripted", EnvModelBackend, m.Backend)
	}
	if v := getenv(EnvModelPrices); v != "" {
		p, err := model.ParsePrices(v)
		if err != nil {
			return Model{}, fmt.Errorf("%s: %w", EnvModelPrices, err)
		}
		m.Prices = p
	}
	return m, nil
}

// LogValue logs m with the key masked.
func (m Model) LogValue() slog.Value {
	return slog.GroupValue(slog.String("backend", m.Backend), slog.String("holo_endpoint", m.HoloEndpoint),
		slog.String("anthropic_api_key", mask(m.AnthropicKey)), slog.Int("prices", len(m.Prices)))
}
