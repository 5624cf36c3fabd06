package model

import (
	"fmt"
	"maps"
	"math"
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

// Prices maps a model id to its price. A model absent from the table is
// free: local models cost nothing unless configured.
type Prices map[string]Price

// DefaultPrices returns the list prices of the hosted models we drive (see
// research/models.md §1.1 and §2.7). Cache writes are priced as 5-minute
// writes (1.25× input), cache reads at 0.1× input.
func DefaultPrices() Prices {
	sonnet := anthropicPrice(3, 15)
	opus45 := anthropicPrice(5, 25)
	return Prices{
		"claude-sonnet-4-5":          sonnet,
		"claude-sonnet-4-5-20250929": sonnet,
		"claude-sonnet-4-6":          sonnet,
		"claude-haiku-4-5":           anthropicPrice(1, 5),
		"claude-opus-4-1":            anthropicPrice(15, 75),
		"claude-opus-4-5":            opus45,
		"claude-opus-4-5-20251101":   opus45,
		"claude-opus-4-6":            opus45,
		"claude-opus-4-7":            opus45,
	}
}

func anthropicPrice(in, out float64) Price {
	return Price{Input: in, Output: out, CacheRead: in / 10, CacheWrite: in * 1.25}
}

// Cost returns the USD cost of u under p.
func (p Prices) Cost(u Usage) float64 {
	pr, ok := p[u.Model]
	if !ok {
		return 0
	}
	return (float64(u.InputTokens)*pr.Input + float64(u.OutputTokens)*pr.Output +
		float64(u.CacheReadTokens)*pr.CacheRead + float64(u.CacheWriteTokens)*pr.CacheWrite) / 1e6
}

// Merge returns a copy of p with every entry of over replacing p's.
func (p Prices) Merge(over Prices) Prices {
	out := maps.Clone(p)
	if out == nil {
		out = Prices{}
	}
	maps.Copy(out, over)
	return out
}

// ParsePrices parses a price override list, as configuration gives it:
// "model=input/output[/cache_read/cache_write],…" in USD per million tokens.
// Cache prices default to 0.1× and 1.25× input.
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
			return nil, fmt.Errorf("price %q: want model=input/output[/cache_read/cache_write]", item)
		}
		parts := strings.Split(spec, "/")
		if len(parts) != 2 && len(parts) != 4 {
			return nil, fmt.Errorf("price %q: want 2 or 4 numbers separated by /", item)
		}
		nums := make([]float64, len(parts))
		for i, s := range parts {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, fmt.Errorf("price %q: %q is not a non-negative number", item, s)
			}
			nums[i] = f
		}
		pr := Price{Input: nums[0], Output: nums[1], CacheRead: nums[0] / 10, CacheWrite: nums[0] * 1.25}
		if len(nums) == 4 {
			pr.CacheRead, pr.CacheWrite = nums[2], nums[3]
		}
		out[name] = pr
	}
	return out, nil
}
