package config_test

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/config"
	"atelier/internal/egress"
)

// env is m as getenv; unless m names a token or says otherwise, the fleet
// runs without one (which must be asked for).
func env(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok {
			return v
		}
		if _, set := m[config.EnvToken]; k == config.EnvInsecureNoToken && !set {
			return "1"
		}
		return ""
	}
}

const token = "0123456789abcdef0123"

func TestLoad(t *testing.T) {
	defaultDir := config.DefaultUserDataDir
	if os.Geteuid() == 0 {
		defaultDir = config.DefaultDataDir
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want config.Config
	}{
		{"no token when asked", map[string]string{"ATELIER_INSECURE_NO_TOKEN": "1"}, nil,
			config.Config{Addr: "127.0.0.1:8090", DataDir: defaultDir, Runtime: "local", InsecureNoToken: true}},
		{"token", map[string]string{"ATELIER_API_TOKEN": token}, nil,
			config.Config{Addr: ":8090", DataDir: defaultDir, Runtime: "local", APIToken: token}},
		{"seed env names", map[string]string{"FLEET_PORT": "9000", "ATELIER_API_TOKEN": token, "MAX_USD_PER_DAY": "12.5", "ATELIER_RUNTIME": "docker"}, nil,
			config.Config{Addr: ":9000", DataDir: defaultDir, Runtime: "docker", APIToken: token, MaxUSDPerDay: 12.5}},
		{"flags over env", map[string]string{"ATELIER_RUNTIME": "docker", "ATELIER_DATA_DIR": "/env"},
			[]string{"--addr", "127.0.0.1:1234", "--data-dir", "/flag", "--runtime", "local", "--insecure-no-token"},
			config.Config{Addr: "127.0.0.1:1234", DataDir: "/flag", Runtime: "local", InsecureNoToken: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Load(env(tt.env), tt.args, new(bytes.Buffer))
			if err != nil {
				t.Fatal(err)
			}
			got.Model = config.Model{}                            // TestLoadModel covers it
			got.View, got.Docker = config.View{}, config.Docker{} // TestLoadView covers them
			got.Records = config.Records{}                        // TestLoadRecords covers it
			got.Limits, got.HTTP = config.Limits{}, config.HTTP{} // TestLimits covers them
			got.Egress = egress.Policy{}                          // TestLoadEgress covers it
			got.Kube = config.Kube{}                              // TestLoadKube covers it
			got.HomeQuota = 0                                     // TestLoadHomeQuota covers it
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in the message
	}{
		{"bad port", map[string]string{"FLEET_PORT": "http"}, nil, "FLEET_PORT"},
		{"port out of range", map[string]string{"FLEET_PORT": "70000"}, nil, "FLEET_PORT"},
		{"bad cap", map[string]string{"MAX_USD_PER_DAY": "lots"}, nil, "MAX_USD_PER_DAY"},
		{"negative cap", map[string]string{"MAX_USD_PER_DAY": "-1"}, nil, "MAX_USD_PER_DAY"},
		{"unknown runtime", nil, []string{"--runtime", "kvm"}, `runtime "kvm"`},
		{"no token", map[string]string{"ATELIER_INSECURE_NO_TOKEN": ""}, nil, "--insecure-no-token"},
		{"public without token", map[string]string{"ATELIER_INSECURE_NO_TOKEN": "1"}, []string{"--addr", "0.0.0.0:8090"}, "beyond loopback"},
		{"all interfaces without token", nil, []string{"--addr", ":8090", "--insecure-no-token"}, "ATELIER_API_TOKEN"},
		{"token and no token", map[string]string{"ATELIER_API_TOKEN": token, "ATELIER_INSECURE_NO_TOKEN": "true"}, nil, "drop one"},
		{"short token", map[string]string{"ATELIER_API_TOKEN": "abc"}, nil, "at least 16"},
		{"short metrics token", map[string]string{"ATELIER_API_TOKEN": token, "ATELIER_METRICS_TOKEN": "abc"}, nil, "ATELIER_METRICS_TOKEN is 3 characters"},
		{"metrics token is the api token", map[string]string{"ATELIER_API_TOKEN": token, "ATELIER_METRICS_TOKEN": token}, nil, "of their own"},
		{"missing metrics token file", map[string]string{"ATELIER_API_TOKEN": token}, []string{"--metrics-token-file", "/nonexistent/tok"}, "metrics token"},
		{"bad addr", nil, []string{"--addr", "localhost"}, "host:port"},
		{"empty data dir", nil, []string{"--data-dir", ""}, "data dir"},
		{"unknown flag", nil, []string{"--colour"}, "colour"},
		{"extra argument", nil, []string{"now"}, "unexpected"},
		{"bad insecure no token", map[string]string{"ATELIER_INSECURE_NO_TOKEN": "maybe"}, nil, "ATELIER_INSECURE_NO_TOKEN"},
		{"bad egress", map[string]string{"ATELIER_EGRESS": "closed"}, nil, `ATELIER_EGRESS="closed"`},
		{"allowlist without hosts", nil, []string{"--egress", "allowlist"}, "at least one pattern"},
		{"hosts without allowlist", map[string]string{"ATELIER_EGRESS_ALLOW": "github.com"}, nil, "only for mode allowlist"},
		{"bad pattern", nil, []string{"--egress", "allowlist", "--egress-allow", "git hub.com"}, "git hub.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := new(bytes.Buffer)
			_, err := config.Load(env(tt.env), tt.args, out)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if msg := err.Error() + out.String(); !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
		})
	}
	if _, err := config.Load(env(nil), []string{"-h"}, new(bytes.Buffer)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: got %v, want flag.ErrHelp", err)
	}
}

func TestMetricsToken(t *testing.T) {
	const scrape = "scrape-token-0123456789"
	c, err := config.Load(env(map[string]string{"ATELIER_API_TOKEN": token, "ATELIER_METRICS_TOKEN": scrape}), nil, new(bytes.Buffer))
	if err != nil || c.MetricsToken != scrape {
		t.Fatalf("from env: %q, %v; want %q", c.MetricsToken, err, scrape)
	}
	file := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(file, []byte(scrape+"-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = config.Load(env(map[string]string{"ATELIER_API_TOKEN": token, "ATELIER_METRICS_TOKEN": scrape}), []string{"--metrics-token-file", file}, new(bytes.Buffer))
	if err != nil || c.MetricsToken != scrape+"-file" {
		t.Fatalf("from the file: %q, %v; want %q (a flag wins)", c.MetricsToken, err, scrape+"-file")
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", c)
	if strings.Contains(logged.String(), scrape) {
		t.Errorf("the metrics token is logged: %s", logged.String())
	}
}

func TestSecretsMasked(t *testing.T) {
	c, err := config.Load(env(map[string]string{"ATELIER_API_TOKEN": token}), nil, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", c)
	cl, err := config.LoadClient(env(map[string]string{"ATELIER_API_TOKEN": token}))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"String": c.String(), "slog": logged.String(), "client": cl.String()} {
		if strings.Contains(s, token) {
			t.Errorf("%s shows the token: %s", name, s)
		}
		if !strings.Contains(s, "****") {
			t.Errorf("%s does not say a token is set: %s", name, s)
		}
	}
}

func TestLoadClient(t *testing.T) {
	c, err := config.LoadClient(env(nil))
	if err != nil || c.URL != config.DefaultURL {
		t.Errorf("default: got %+v, %v", c, err)
	}
	c, err = config.LoadClient(env(map[string]string{"ATELIER_URL": "https://fleet.example/", "ATELIER_API_TOKEN": token}))
	if err != nil || c.URL != "https://fleet.example" || c.Token != token {
		t.Errorf("from env: got %+v, %v", c, err)
	}
	for _, bad := range []string{"fleet:8090", "ftp://x", "http://"} {
		if _, err := config.LoadClient(env(map[string]string{"ATELIER_URL": bad})); err == nil || !strings.Contains(err.Error(), "ATELIER_URL") {
			t.Errorf("ATELIER_URL=%q: got %v, want an error naming ATELIER_URL", bad, err)
		}
	}
}

func TestLoadEgress(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, nil, "open"},
		{map[string]string{"ATELIER_EGRESS": "none"}, nil, "none"},
		{map[string]string{"ATELIER_EGRESS": "allowlist", "ATELIER_EGRESS_ALLOW": "github.com, *.Example.org"}, nil, "allowlist github.com,*.example.org"},
		{map[string]string{"ATELIER_EGRESS": "none"}, []string{"--egress", "allowlist", "--egress-allow", "a.example"}, "allowlist a.example"},
	} {
		c, err := config.Load(env(tc.env), tc.args, new(bytes.Buffer))
		if err != nil {
			t.Fatalf("%v %v: %v", tc.env, tc.args, err)
		}
		if c.Egress.String() != tc.want {
			t.Errorf("%v %v: egress %q, want %q", tc.env, tc.args, c.Egress, tc.want)
		}
	}
	var help bytes.Buffer
	config.Load(env(nil), []string{"--help"}, &help)
	for _, flag := range []string{"-egress ", "-egress-allow", "ATELIER_EGRESS)", "ATELIER_EGRESS_ALLOW"} {
		if !strings.Contains(help.String(), flag) {
			t.Errorf("serve --help does not mention %s:\n%s", flag, help.String())
		}
	}
}
