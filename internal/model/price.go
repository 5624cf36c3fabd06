package model

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Price is what a model charges, in USD per million tokens.
type Price struct {
	Input      float64 `json:"input"`
	Output     float64 `json:"output"`
	CacheRead  float64 `json:"cache_read"`
	CacheWrite float64 `json:"cache_write"`
}

// Prices maps a model id (or a family id, see Lookup) to its price. A
// model Lookup cannot resolve is unpriced: the task manager refuses it
// while a cap is set, and records its calls as unpriced otherwise.
type Prices map[string]Price

// DefaultPrices returns the list prices of every model the anthropic and
// holo backends know (anthropic.Models, holo.Models), keyed by family id:
// dated ids and aliases resolve to them (Lookup). Cache writes are priced
// as 5-minute writes (1.25× input), cache reads at 0.1× input, as
// Anthropic prices them.
func DefaultPrices() Prices {
	return Prices{
		// Anthropic, USD per million tokens, from Anthropic's pricing page
		// (docs.anthropic.com/en/docs/about-claude/pricing) as quoted in
		// research/models.md §2.7, read 2026-11; 3.7 Sonnet and Sonnet 4
		// from the same page's legacy rows (also in LangChain's Bedrock
		// table and simonw/llm-prices), read 2026-11.
		"claude-3-7-sonnet": anthropicPrice(3, 15),
		"claude-sonnet-4":   anthropicPrice(3, 15),
		"claude-sonnet-4-5": anthropicPrice(3, 15),
		"claude-sonnet-4-6": anthropicPrice(3, 15), // third-party quote (artka.dev, deploybase.ai), 2026
		"claude-haiku-4-5":  anthropicPrice(1, 5),  // third-party quote, 2026
		"claude-opus-4":     anthropicPrice(15, 75),
		"claude-opus-4-1":   anthropicPrice(15, 75),
		"claude-opus-4-5":   anthropicPrice(5, 25), // third-party quote, 2026
		"claude-opus-4-6":   anthropicPrice(5, 25), // third-party quote, 2026
		"claude-opus-4-7":   anthropicPrice(5, 25), // third-party quote, 2026
		// H Company's hosted API, from hub.hcompany.ai/models
		// (research/models.md §1.1), read 2026-11. No cache discount is
		// published: cached prompt tokens are charged as input.
		"holo3-1-35b-a3b": holoPrice(0.25, 1.80),
		"holo3-122b-a10b": holoPrice(0.40, 3.00),
		// No longer listed by H (deprecated on its API 2026-06-15): priced
		// as its successor of the same size, so a cap bounds it. Declare
		// it free when self-hosted: MODEL_PRICES=holo3-35b-a3b=free.
		"holo3-35b-a3b": holoPrice(0.25, 1.80),
		// The scripted backend (scripted.ModelName) calls no model.
		"scripted": Free,
	}
}

func anthropicPrice(in, out float64) Price {
	return Price{Input: in, Output: out, CacheRead: in / 10, CacheWrite: in * 1.25}
}

func holoPrice(in, out float64) Price {
	return Price{Input: in, Output: out, CacheRead: in, CacheWrite: in}
}

// Free is the price of a model declared free (a self-hosted one).
var Free = Price{}

var (
	// dated matches a snapshot date at the end of an id:
	// claude-opus-4-1-20250805, or claude-opus-4-1@20250805 (Vertex).
	dated = regexp.MustCompile(`[-@]20\d{6}$`)
	// minorZero matches the ".0" alias of a major version:
	// claude-sonnet-4-0 is claude-sonnet-4.
	minorZero = regexp.MustCompile(`^(claude-[a-z]+-\d+)-0$`)
)

// Family returns the id a model's price is kept under: id without a
// "-latest" tag or a snapshot date, and with a "-0" minor version
// dropped. Ids that name no family come back unchanged.
func Family(id string) string {
	f := strings.TrimSuffix(id, "-latest")
	f = dated.ReplaceAllString(f, "")
	if m := minorZero.FindStringSubmatch(f); m != nil {
		f = m[1]
	}
	return f
}

// Lookup returns the price of model id: an entry for id itself wins over
// one for its family, so an override can single out one snapshot.
func (p Prices) Lookup(id string) (Price, bool) {
	if pr, ok := p[id]; ok {
		return pr, true
	}
	pr, ok := p[Family(id)]
	return pr, ok
}

// Priced reports whether Lookup finds a price for id.
func (p Prices) Priced(id string) bool {
	_, ok := p.Lookup(id)
	return ok
}

// Cost returns the USD cost of u, and whether u's model has a price (an
// unpriced model costs 0).
func (p Prices) Cost(u Usage) (float64, bool) {
	pr, ok := p.Lookup(u.Model)
	if !ok {
		return 0, false
	}
	return (float64(u.InputTokens)*pr.Input + float64(u.OutputTokens)*pr.Output +
		float64(u.CacheReadTokens)*pr.CacheRead + float64(u.CacheWriteTokens)*pr.CacheWrite) / 1e6, true
}

// Merge returns a copy of p with every entry of over added, replacing p's
// entry of the same id.
func (p Prices) Merge(over Prices) Prices {
	out := maps.Clone(p)
	if out == nil {
		out = Prices{}
	}
	maps.Copy(out, over)
	return out
}

// ParsePrices parses a price list, as configuration gives it:
// "model=input/output[/cache_read/cache_write],…" in USD per million
// tokens, or "model=free". Cache prices default to 0.1× and 1.25× input.
func ParsePrices(s string) (Prices, error) {
	out := Prices{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, spec, ok := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("price %q: want model=input/output[/cache_read/cache_write] or model=free", item)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("price %q: %s is priced twice", item, name)
		}
		if strings.TrimSpace(spec) == "free" {
			out[name] = Free
			continue
		}
		parts := strings.Split(spec, "/")
		if len(parts) != 2 && len(parts) != 4 {
			return nil, fmt.Errorf("price %q: want 2 or 4 numbers separated by /, or free", item)
		}
		nums := make([]float64, len(parts))
		for i, s := range parts {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, fmt.Errorf("price %q: %q is not a non-negative number", item, s)
			}
			nums[i] = f
		}
		pr := anthropicPrice(nums[0], nums[1])
		if len(nums) == 4 {
			pr.CacheRead, pr.CacheWrite = nums[2], nums[3]
		}
		out[name] = pr
	}
	return out, nil
}
