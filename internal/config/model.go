package config

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/model"
	"atelier/internal/model/holo"
)

// Model settings' environment variables: the task backends, their prices,
// and how long a step lets the screen settle.
const (
	EnvModelBackend     = "MODEL_BACKEND"
	EnvHoloEndpoint     = "HOLO3_ENDPOINT"
	EnvHoloKey          = "HOLO3_API_KEY"
	EnvHoloKeyH         = "HAI_API_KEY" // H Company's own name for the key
	EnvHoloModel        = "HOLO3_MODEL"
	EnvHoloOutput       = "HOLO3_OUTPUT"
	EnvAnthropicKey     = "ANTHROPIC_API_KEY"
	EnvAnthropicBaseURL = "ANTHROPIC_BASE_URL"
	EnvModelPrices      = "MODEL_PRICES"
	EnvSettleQuiet      = "ATELIER_SETTLE_QUIET"
	EnvSettleMax        = "ATELIER_SETTLE_MAX"
)

// Defaults of the step settle: a step's next screenshot is taken once the
// screen has shown no change for DefaultSettleQuiet (two frames at 60 Hz
// and a margin), or after DefaultSettleMax at most.
const (
	DefaultSettleQuiet = 35 * time.Millisecond
	DefaultSettleMax   = 3 * time.Second
)

// Model configures the task backends and the task loop's settle.
type Model struct {
	// Backend is the default backend. When MODEL_BACKEND is unset it is
	// holo if HOLO3_ENDPOINT is set, else anthropic if ANTHROPIC_API_KEY
	// is, else scripted: the one backend that can run is the default.
	Backend      string
	HoloEndpoint string
	HoloKey      string // secret: masked in logs
	HoloModel    string // "" means holo.DefaultModel
	HoloOutput   holo.OutputMode
	AnthropicKey string // secret: masked in logs
	// AnthropicBaseURL replaces Anthropic's API URL (a proxy, a gateway).
	AnthropicBaseURL string
	// Prices is the built-in table with MODEL_PRICES's entries added or
	// replacing the built-in ones.
	Prices model.Prices
	// PriceOverrides counts MODEL_PRICES's entries, for the log.
	PriceOverrides int
	// SettleQuiet and SettleMax bound the wait after a step's actions:
	// until the screen is still for SettleQuiet, at most SettleMax.
	SettleQuiet, SettleMax time.Duration
}

func loadModel(getenv func(string) string) (Model, error) {
	m := Model{
		Backend: getenv(EnvModelBackend), HoloEndpoint: getenv(EnvHoloEndpoint),
		HoloKey: cmp.Or(getenv(EnvHoloKey), getenv(EnvHoloKeyH)), HoloModel: getenv(EnvHoloModel),
		HoloOutput:   holo.OutputMode(cmp.Or(getenv(EnvHoloOutput), string(holo.OutputResponseFormat))),
		AnthropicKey: getenv(EnvAnthropicKey), AnthropicBaseURL: getenv(EnvAnthropicBaseURL),
		Prices:      model.DefaultPrices(),
		SettleQuiet: DefaultSettleQuiet, SettleMax: DefaultSettleMax,
	}
	switch {
	case m.Backend != "":
	case m.HoloEndpoint != "":
		m.Backend = "holo"
	case m.AnthropicKey != "":
		m.Backend = "anthropic"
	default:
		m.Backend = "scripted"
	}
	if v := getenv(EnvModelPrices); v != "" {
		if err := m.setPrices(v); err != nil {
			return Model{}, fmt.Errorf("%s: %w", EnvModelPrices, err)
		}
	}
	for _, d := range []struct {
		env string
		to  *time.Duration
	}{{EnvSettleQuiet, &m.SettleQuiet}, {EnvSettleMax, &m.SettleMax}} {
		if v := getenv(d.env); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil {
				return Model{}, fmt.Errorf("%s=%q: want a duration such as 35ms or 3s", d.env, v)
			}
			*d.to = t
		}
	}
	return m, nil
}

// setPrices adds the entries of a MODEL_PRICES list to the built-in table.
func (m *Model) setPrices(spec string) error {
	over, err := model.ParsePrices(spec)
	if err != nil {
		return err
	}
	m.Prices, m.PriceOverrides = model.DefaultPrices().Merge(over), len(over)
	return nil
}

// flags declares the model settings' flags on fs; secrets stay in the
// environment only, so they never show in a process list.
func (m *Model) flags(fs *flag.FlagSet) {
	fs.StringVar(&m.Backend, "model-backend", m.Backend, "default task backend: holo, anthropic or scripted (env "+EnvModelBackend+")")
	fs.StringVar(&m.HoloEndpoint, "holo-endpoint", m.HoloEndpoint, "OpenAI-compatible server of Holo3, such as https://api.hcompany.ai/v1/ (env "+EnvHoloEndpoint+"; its key: env "+EnvHoloKey+" or "+EnvHoloKeyH+")")
	fs.StringVar(&m.HoloModel, "holo-model", m.HoloModel, "Holo model id (default "+holo.DefaultModel+"; env "+EnvHoloModel+")")
	fs.StringVar((*string)(&m.HoloOutput), "holo-output", string(m.HoloOutput), "how Holo's output is constrained: response_format, structured_outputs, or tools (native function calling, Holo3.1 only) (env "+EnvHoloOutput+")")
	fs.StringVar(&m.AnthropicBaseURL, "anthropic-base-url", m.AnthropicBaseURL, "Anthropic API URL (default Anthropic's; env "+EnvAnthropicBaseURL+"; the key: env "+EnvAnthropicKey+")")
	fs.Func("model-prices", "model=in/out[/cache_read/cache_write] USD per million tokens, or model=free, comma-separated: added to the built-in prices (env "+EnvModelPrices+")", m.setPrices)
	fs.DurationVar(&m.SettleQuiet, "settle-quiet", m.SettleQuiet, "after a step's actions, the screen counts as settled once unchanged this long (env "+EnvSettleQuiet+")")
	fs.DurationVar(&m.SettleMax, "settle-max", m.SettleMax, "the longest a step waits for the screen to settle (env "+EnvSettleMax+")")
}

// validate checks the model settings and says what to change.
func (m Model) validate() []error {
	var errs []error
	switch m.Backend {
	case "holo", "anthropic", "scripted":
	default:
		errs = append(errs, fmt.Errorf("model backend %q (%s): want holo, anthropic or scripted", m.Backend, EnvModelBackend))
	}
	if !slices.Contains(holo.OutputModes, m.HoloOutput) {
		errs = append(errs, fmt.Errorf("holo output %q (%s): want one of %v", m.HoloOutput, EnvHoloOutput, holo.OutputModes))
	}
	for _, u := range []struct{ name, v string }{{EnvHoloEndpoint, m.HoloEndpoint}, {EnvAnthropicBaseURL, m.AnthropicBaseURL}} {
		if p, err := url.Parse(u.v); u.v != "" && (err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "") {
			errs = append(errs, fmt.Errorf("%s %q: want an http(s) URL", u.name, u.v))
		}
	}
	if m.SettleQuiet < time.Millisecond || m.SettleQuiet > time.Second {
		errs = append(errs, fmt.Errorf("settle quiet %v (%s): want from 1ms to 1s", m.SettleQuiet, EnvSettleQuiet))
	}
	if m.SettleMax < m.SettleQuiet || m.SettleMax > agentapi.MaxDuration {
		errs = append(errs, fmt.Errorf("settle max %v (%s): want from the quiet period (%v) to %v", m.SettleMax, EnvSettleMax, m.SettleQuiet, agentapi.MaxDuration))
	}
	if m.Prices == nil {
		errs = append(errs, errors.New("model prices are missing"))
	}
	return errs
}

// LogValue logs m with the keys masked.
func (m Model) LogValue() slog.Value {
	return slog.GroupValue(slog.String("backend", m.Backend), slog.String("holo_endpoint", m.HoloEndpoint),
		slog.String("holo_api_key", mask(m.HoloKey)), slog.String("holo_model", m.HoloModel), slog.String("holo_output", string(m.HoloOutput)),
		slog.String("anthropic_api_key", mask(m.AnthropicKey)), slog.String("anthropic_base_url", m.AnthropicBaseURL),
		slog.Int("price_overrides", m.PriceOverrides), slog.Duration("settle_quiet", m.SettleQuiet), slog.Duration("settle_max", m.SettleMax))
}
