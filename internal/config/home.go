package config

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"atelier/internal/homefs"
)

// EnvHomeQuota is the disk quota of each new desktop home.
const EnvHomeQuota = "ATELIER_HOME_QUOTA"

// DefaultHomeQuota is generous because it costs nothing up front: a home's
// image is sparse, so the host's disk is used only as files are written.
const DefaultHomeQuota = 10 << 30

// loadHome reads the home quota from getenv and declares its flag on fs.
func (c *Config) loadHome(getenv func(string) string, fs *flag.FlagSet) error {
	c.HomeQuota = DefaultHomeQuota
	if v := getenv(EnvHomeQuota); v != "" {
		n, err := ParseSize(v)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", EnvHomeQuota, v, err)
		}
		c.HomeQuota = n
	}
	fs.Var((*sizeFlag)(&c.HomeQuota), "home-quota", "disk quota of each new desktop home, such as 10GiB; 0: none (env "+EnvHomeQuota+")")
	return nil
}

// validateHome checks the home quota.
func (c Config) validateHome() []error {
	if q := c.HomeQuota; q != 0 && (q < homefs.MinSize || q > homefs.MaxSize) {
		return []error{fmt.Errorf("home quota %d bytes: want 0 (no quota) or from %dMiB to %dTiB", q, homefs.MinSize>>20, homefs.MaxSize>>40)}
	}
	return nil
}

// ParseSize reads a size such as 10GiB, 512MiB, 2G (binary multiples
// either way) or a plain number of bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToLower(strings.TrimSpace(t[len(num):]))
	shift, ok := map[string]uint{"": 0, "b": 0, "k": 10, "kib": 10, "m": 20, "mib": 20, "g": 30, "gib": 30, "t": 40, "tib": 40}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("want a number of bytes or one with a unit, such as 512MiB or 10GiB")
	}
	return n << shift, nil
}

// setSize parses v with ParseSize into *p.
func setSize(v string, p *int64) error {
	n, err := ParseSize(v)
	if err == nil {
		*p = n
	}
	return err
}

// sizeText writes n bytes in the largest binary unit that divides it
// (10GiB, 512MiB), else in whole MiB (a host's memory), else in bytes.
func sizeText(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	if n >= 1<<20 {
		return strconv.FormatInt(n>>20, 10) + "MiB"
	}
	return strconv.FormatInt(n, 10)
}

// sizeFlag is a flag holding a size in bytes, written as ParseSize reads.
type sizeFlag int64

func (f *sizeFlag) String() string { return sizeText(int64(*f)) }

func (f *sizeFlag) Set(s string) error {
	n, err := ParseSize(s)
	*f = sizeFlag(n)
	return err
}
