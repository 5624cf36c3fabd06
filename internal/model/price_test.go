package model_test

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/model"
	"atelier/internal/model/anthropic"
	"atelier/internal/model/holo"
)

func TestCost(t *testing.T) {
	p := model.DefaultPrices()
	u := model.Usage{Model: "claude-sonnet-4-5", InputTokens: 1_000_000, OutputTokens: 100_000, CacheReadTokens: 1_000_000, CacheWriteTokens: 1_000_000}
	if got, priced := p.Cost(u); !priced || math.Abs(got-(3+1.5+0.3+3.75)) > 1e-9 {
		t.Errorf("Sonnet 4.5 cost = %v (priced %v), want %v", got, priced, 3+1.5+0.3+3.75)
	}
	if got, priced := p.Cost(model.Usage{Model: "holo4-35b-a3b", InputTokens: 1e6, OutputTokens: 1e6}); got != 0 || priced {
		t.Errorf("a model without a price costs %v (priced %v), want 0, unpriced", got, priced)
	}
}

// TestEveryKnownModelIsPriced: every model a backend knows has a built-in
// price, so none runs past a cap at $0.
func TestEveryKnownModelIsPriced(t *testing.T) {
	p := model.DefaultPrices()
	var known []string
	for id := range anthropic.Models {
		known = append(known, id)
	}
	for id := range holo.Models {
		known = append(known, id)
	}
	known = append(known, anthropic.DefaultModel, holo.DefaultModel)
	for _, id := range known {
		if pr, ok := p.Lookup(id); !ok || pr.Input <= 0 || pr.Output <= 0 {
			t.Errorf("%s: price %+v, %v; want a list price", id, pr, ok)
		}
	}
}

// TestDatedAndAliasedIdsResolve: snapshot dates, -latest and the -0 alias
// price as their family; an entry for an exact id wins over its family's.
func TestDatedAndAliasedIdsResolve(t *testing.T) {
	p := model.DefaultPrices()
	for id, family := range map[string]string{
		"claude-opus-4-1-20250805":   "claude-opus-4-1",
		"claude-opus-4-1@20250805":   "claude-opus-4-1",
		"claude-sonnet-4-0":          "claude-sonnet-4",
		"claude-sonnet-4-20250514":   "claude-sonnet-4",
		"claude-opus-4-0":            "claude-opus-4",
		"claude-opus-4-20250514":     "claude-opus-4",
		"claude-3-7-sonnet-20250219": "claude-3-7-sonnet",
		"claude-3-7-sonnet-latest":   "claude-3-7-sonnet",
		"claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
		"claude-haiku-4-5-20251001":  "claude-haiku-4-5",
		"claude-opus-4-5-20251101":   "claude-opus-4-5",
		"holo3-1-35b-a3b":            "holo3-1-35b-a3b",
	} {
		if got := model.Family(id); got != family {
			t.Errorf("Family(%s) = %s, want %s", id, got, family)
		}
		got, ok := p.Lookup(id)
		if want := p[family]; !ok || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %s's %+v", id, got, ok, family, want)
		}
	}
	// claude-opus-4-1 is not an alias of claude-opus-4, nor holo3-1 of holo3.
	if model.Family("claude-opus-4-1") != "claude-opus-4-1" || model.Family("holo3-1-35b-a3b") != "holo3-1-35b-a3b" {
		t.Error("a minor version was taken for an alias")
	}
	one := p.Merge(model.Prices{"claude-opus-4-1-20250805": {Input: 1, Output: 2}})
	if got, _ := one.Lookup("claude-opus-4-1-20250805"); got.Input != 1 {
		t.Errorf("an exact entry lost to its family: %+v", got)
	}
	if got, _ := one.Lookup("claude-opus-4-1"); got.Input != 15 {
		t.Errorf("the family changed with one snapshot's entry: %+v", got)
	}
}

func TestParsePrices(t *testing.T) {
	got, err := model.ParsePrices(" holo3-35b-a3b=0.25/1.8 , my-model=1/2/0.5/3, vllm-local=free")
	if err != nil {
		t.Fatal(err)
	}
	want := model.Prices{
		"holo3-35b-a3b": {Input: 0.25, Output: 1.8, CacheRead: 0.025, CacheWrite: 0.3125},
		"my-model":      {Input: 1, Output: 2, CacheRead: 0.5, CacheWrite: 3},
		"vllm-local":    model.Free,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	merged := model.DefaultPrices().Merge(got)
	if merged["my-model"].Output != 2 || merged["claude-sonnet-4-5"].Input != 3 || !merged.Priced("vllm-local") {
		t.Errorf("merge lost an entry: %v", merged)
	}
	for _, bad := range []string{"x", "=1/2", "m=1", "m=1/2/3", "m=-1/2", "m=a/b", "m=NaN/1", "m=Inf/1", "m=1/2,m=3/4", "m=gratis"} {
		if _, err := model.ParsePrices(bad); err == nil {
			t.Errorf("ParsePrices(%q) accepted", bad)
		}
	}
}

func FuzzParsePrices(f *testing.F) {
	f.Add("a=1/2,b=0.1/0.2/0.01/0.125")
	f.Add("m=1e308/1e308")
	f.Add("m=free")
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := model.ParsePrices(s)
		if err != nil {
			return
		}
		for name, p := range ps {
			for _, v := range []float64{p.Input, p.Output, p.CacheRead, p.CacheWrite} {
				if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%q: price of %q has %v", s, name, v)
				}
			}
		}
	})
}
