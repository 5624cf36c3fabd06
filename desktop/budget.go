package desktop

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Budget is the content of a desktop's budget file: the day's model spend
// against its cap, written by the fleet and shown by waybar.
type Budget struct {
	SpentUSD    float64   `json:"spent_usd"`
	CapUSD      float64   `json:"cap_usd"`
	ReservedUSD float64   `json:"reserved_usd"` // held by calls in flight
	Updated     time.Time `json:"updated"`
}

// maxBudgetFile bounds what ReadBudget accepts; a real file is ~100 bytes.
const maxBudgetFile = 4 << 10

// Validate checks that every amount is a finite, non-negative number.
func (b Budget) Validate() error {
	for _, v := range []struct {
		name string
		usd  float64
	}{{"spent_usd", b.SpentUSD}, {"cap_usd", b.CapUSD}, {"reserved_usd", b.ReservedUSD}} {
		if v.usd < 0 || math.IsNaN(v.usd) || math.IsInf(v.usd, 0) {
			return fmt.Errorf("budget %s is %v: want a non-negative amount", v.name, v.usd)
		}
	}
	return nil
}

// WriteBudget writes b to path atomically (a temp file renamed over it), so
// a reader never sees half a file. The file is world-readable: the desktop's
// user reads it.
func WriteBudget(path string, b Budget) error {
	if err := b.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode budget: %w", err)
	}
	return writeFileAtomic(path, append(data, '\n'), 0o644)
}

// ReadBudget reads the budget file at path. A missing file is an error
// wrapping fs.ErrNotExist.
func ReadBudget(path string) (Budget, error) {
	var b Budget
	f, err := os.Open(path)
	if err != nil {
		return b, fmt.Errorf("read budget: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBudgetFile+1))
	if err != nil {
		return b, fmt.Errorf("read budget %s: %w", path, err)
	}
	if len(data) > maxBudgetFile {
		return b, fmt.Errorf("budget %s: over %d bytes", path, maxBudgetFile)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return Budget{}, fmt.Errorf("budget %s: %w", path, err)
	}
	return b, b.Validate()
}

// Budget line classes, for waybar's style sheet.
const (
	BudgetOK       = "ok"
	BudgetWarning  = "warning"  // spent and reserved reach WarnFraction of the cap
	BudgetCritical = "critical" // spent and reserved reach the cap
	BudgetStale    = "stale"    // the fleet has not updated the file for StaleAfter
	BudgetNone     = "none"     // no budget file
	BudgetError    = "error"    // the file cannot be read
)

// Thresholds of the budget line.
const (
	WarnFraction = 0.8
	StaleAfter   = 90 * time.Second
)

// BarLine is one line of a waybar custom module with JSON output.
type BarLine struct {
	Text    string `json:"text"`
	Tooltip string `json:"tooltip"`
	Class   string `json:"class"`
}

// BudgetLine reads the budget file at path and says what waybar shows at
// time now: "$0.42 / $2.00" ("$0.42 · no cap" when the fleet has none),
// with a class telling ok, warning, critical or stale, "no budget" when
// the file is absent.
func BudgetLine(path string, now time.Time) BarLine {
	b, err := ReadBudget(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return BarLine{Text: "no budget", Tooltip: "no budget file at " + path, Class: BudgetNone}
	case err != nil:
		return BarLine{Text: "budget ?", Tooltip: err.Error(), Class: BudgetError}
	}
	l := BarLine{
		Text: fmt.Sprintf("$%.2f / $%.2f", b.SpentUSD, b.CapUSD),
		// No update time while fresh: the fleet rewrites the file every 30 s,
		// and a line that changed with each rewrite would redraw the bar
		// (and make sway repaint) in every idle desktop.
		Tooltip: fmt.Sprintf("today: $%.4f spent, $%.4f reserved, cap $%.2f",
			b.SpentUSD, b.ReservedUSD, b.CapUSD),
		Class: BudgetOK,
	}
	if b.CapUSD == 0 {
		l.Text = fmt.Sprintf("$%.2f · no cap", b.SpentUSD)
	}
	used := b.SpentUSD + b.ReservedUSD
	switch {
	case now.Sub(b.Updated) > StaleAfter:
		l.Text += " stale"
		l.Tooltip += "; not updated since " + b.Updated.Local().Format(time.TimeOnly)
		l.Class = BudgetStale
	case b.CapUSD == 0:
	case used >= b.CapUSD:
		l.Class = BudgetCritical
	case used >= WarnFraction*b.CapUSD:
		l.Class = BudgetWarning
	}
	return l
}

// writeFileAtomic writes data to a temp file next to path and renames it
// over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
