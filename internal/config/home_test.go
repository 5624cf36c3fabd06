package config_test

import (
	"bytes"
	"strings"
	"testing"

	"atelier/internal/config"
)

func TestLoadHomeQuota(t *testing.T) {
	for _, tc := range []struct {
		env  string
		args []string
		want int64
	}{
		{"", nil, 10 << 30},
		{"0", nil, 0},
		{"512MiB", nil, 512 << 20},
		{" 2g ", nil, 2 << 30},
		{"1TiB", nil, 1 << 40},
		{"134217728", nil, 128 << 20},
		{"1GiB", []string{"--home-quota", "3G"}, 3 << 30},
		{"", []string{"--home-quota", "0"}, 0},
	} {
		got, err := config.Load(env(map[string]string{config.EnvHomeQuota: tc.env}), tc.args, new(bytes.Buffer))
		if err != nil || got.HomeQuota != tc.want {
			t.Errorf("%s=%q %v: quota %d (%v), want %d", config.EnvHomeQuota, tc.env, tc.args, got.HomeQuota, err, tc.want)
		}
	}
}

func TestLoadHomeQuotaRefuses(t *testing.T) {
	for _, tc := range []struct {
		env  string
		args []string
		says string
	}{
		{"lots", nil, config.EnvHomeQuota},
		{"10 GB", nil, config.EnvHomeQuota}, // decimal units would surprise: refused
		{"-1GiB", nil, config.EnvHomeQuota},
		{"1.5GiB", nil, config.EnvHomeQuota},
		{"9999999TiB", nil, config.EnvHomeQuota},
		{"1MiB", nil, "home quota"},
		{"20TiB", nil, "home quota"},
		{"", []string{"--home-quota", "big"}, "home-quota"},
	} {
		_, err := config.Load(env(map[string]string{config.EnvHomeQuota: tc.env}), tc.args, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s=%q %v: %v; want an error naming %q", config.EnvHomeQuota, tc.env, tc.args, err, tc.says)
		}
	}
}

// FuzzParseSize: any string is a size or a clear error, never a panic or a
// negative size, and a size written back reads as itself.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"10GiB", "512MiB", "2G", "0", "1073741824", " 3 k", "9999999999TiB", "-1", "1.5GiB", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := config.ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if back, err := config.ParseSize(config.SizeText(n)); err != nil || (back != n && (n%(1<<10) == 0 || n < 1<<20)) {
			t.Fatalf("ParseSize(SizeText(%d)) = %d, %v", n, back, err)
		}
	})
}
