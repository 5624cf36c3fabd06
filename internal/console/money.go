package console

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"atelier/internal/budget"
)

// chartDays is how many days the money chart shows, today included.
const chartDays = 30

// money is the money page's data.
type money struct {
	Day                 string
	SpentUSD, Reserved  float64
	CapUSD              float64
	Percent             float64 // of the cap spent; 0 without a cap
	ByTask, ByModel     []spendRow
	Chart               template.HTML // server-rendered SVG
	ChartTotal, ChartHi float64
}

type spendRow struct {
	Key, Session string
	Calls        int
	USD          float64
}

// money reads today's ledger and the last chartDays days' spend.
func (c *Console) money(ctx context.Context) (money, error) {
	now := c.now()
	m := money{Day: budget.Day(now), CapUSD: c.opts.CapUSD}
	tot, err := c.opts.Store.BudgetDay(ctx, m.Day)
	if err != nil {
		return m, err
	}
	m.SpentUSD, m.Reserved = tot.SpentUSD, tot.ReservedUSD
	if m.CapUSD > 0 {
		m.Percent = min(100, 100*m.SpentUSD/m.CapUSD)
	}
	entries, err := c.opts.Store.Ledger(ctx, m.Day)
	if err != nil {
		return m, err
	}
	byTask, byModel := map[string]*spendRow{}, map[string]*spendRow{}
	for _, e := range entries {
		for _, g := range []struct {
			rows map[string]*spendRow
			key  string
		}{{byTask, e.TaskID}, {byModel, e.Model}} {
			r := g.rows[g.key]
			if r == nil {
				r = &spendRow{Key: g.key, Session: e.SessionID}
				g.rows[g.key] = r
			}
			r.Calls++
			r.USD += e.USD
		}
	}
	m.ByTask, m.ByModel = sortedRows(byTask), sortedRows(byModel)
	first := now.UTC().AddDate(0, 0, -(chartDays - 1))
	days, err := c.opts.Store.SpendByDay(ctx, budget.Day(first))
	if err != nil {
		return m, err
	}
	m.Chart, m.ChartTotal, m.ChartHi = chart(first, days, m.CapUSD)
	return m, nil
}

func sortedRows(rows map[string]*spendRow) []spendRow {
	out := make([]spendRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b spendRow) int { return cmp.Or(cmp.Compare(b.USD, a.USD), strings.Compare(a.Key, b.Key)) })
	return out
}

// chart draws chartDays bars of daily spend from first, with the cap as a
// line, as an SVG with a title per bar (its day and amount) for people
// and screen readers alike.
func chart(first time.Time, days map[string]float64, capUSD float64) (svg template.HTML, total, hi float64) {
	const w, h, pad = 600, 180, 24
	hi = capUSD
	for _, v := range days {
		hi = max(hi, v)
		total += v
	}
	if hi == 0 {
		hi = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="chart-title"><title id="chart-title">Spend per day, last %d days, total $%.2f</title>`, w, h+pad, chartDays, total)
	bw := float64(w) / chartDays
	for i := range chartDays {
		d := budget.Day(first.AddDate(0, 0, i))
		v := days[d]
		bh := float64(h) * v / hi
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: $%.4f</title></rect>`, float64(i)*bw+1, float64(h)-bh, bw-2, bh, d, v)
		if i%7 == 0 || i == chartDays-1 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`, float64(i)*bw+1, h+16, d[5:])
		}
	}
	if capUSD > 0 {
		y := float64(h) * (1 - capUSD/hi)
		fmt.Fprintf(&b, `<line class="cap" x1="0" x2="%d" y1="%.1f" y2="%.1f"><title>daily cap $%.2f</title></line>`, w, y, y, capUSD)
	}
	b.WriteString(`</svg>`)
	// Every value above is a number or a date this function formatted.
	return template.HTML(b.String()), total, hi
}
