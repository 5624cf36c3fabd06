package model_test

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/model"
)

func TestCost(t *testing.T) {
	p := model.DefaultPrices()
	u := model.Usage{Model: "claude-sonnet-4-5", InputTokens: 1_000_000, OutputTokens: 100_000, CacheReadTokens: 1_000_000, CacheWriteTokens: 1_000_000}
	if got, want := p.Cost(u), 3+1.5+0.3+3.75; math.Abs(got-want) > 1e-9 {
		t.Errorf("Sonnet 4.5 cost = %v, want %v", got, want)
	}
	if got := p.Cost(model.Usage{Model: "holo3-35b-a3b", InputTokens: 1e6, OutputTokens: 1e6}); got != 0 {
		t.Errorf("an unpriced local model costs %v, want 0", got)
	}
}

func TestParsePrices(t *testing.T) {
	got, err := model.ParsePrices(" holo3-35b-a3b=0.25/1.8 , my-model=1/2/0.5/3")
	if err != nil {
		t.Fatal(err)
	}
	want := model.Prices{
		"holo3-35b-a3b": {Input: 0.25, Output: 1.8, CacheRead: 0.025, CacheWrite: 0.3125},
		"my-model":      {Input: 1, Output: 2, CacheRead: 0.5, CacheWrite: 3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	merged := model.DefaultPrices().Merge(got)
	if merged["my-model"].Output != 2 || merged["claude-sonnet-4-5"].Input != 3 {
		t.Errorf("merge lost an entry: %v", merged)
	}
	for _, bad := range []string{"x", "=1/2", "m=1", "m=1/2/3", "m=-1/2", "m=a/b", "m=NaN/1", "m=Inf/1"} {
		if _, err := model.ParsePrices(bad); err == nil {
			t.Errorf("ParsePrices(%q) accepted", bad)
		}
	}
}

func FuzzParsePrices(f *testing.F) {
	f.Add("a=1/2,b=0.1/0.2/0.01/0.125")
	f.Add("m=1e308/1e308")
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
