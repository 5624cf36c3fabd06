package config_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/config"
)

func TestLoadView(t *testing.T) {
	got, err := config.Load(env(nil), nil, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	want := config.View{FrameAncestors: "*", EmbedTTL: time.Hour, NoVNCDir: "/usr/share/novnc", ControlIdle: 5 * time.Minute}
	if diff := cmp.Diff(want, got.View); diff != "" {
		t.Errorf("default view (-want +got):\n%s", diff)
	}
	if got.Docker != (config.Docker{Image: "atelier/desktop:dev"}) {
		t.Errorf("default docker %+v, want the image build-image.sh tags for dev", got.Docker)
	}

	e := map[string]string{"ATELIER_PUBLIC_URL": "https://fleet.example", "ATELIER_FRAME_ANCESTORS": "https://app.example",
		"ATELIER_EMBED_TTL": "15m", "ATELIER_NOVNC_DIR": "/opt/novnc", "ATELIER_DOCKER_IMAGE": "atelier/desktop:v1", "ATELIER_DOCKER_NETWORK": "atelier",
		"ATELIER_CONTROL_IDLE": "90s"}
	got, err = config.Load(env(e), []string{"--embed-ttl", "2h", "--docker-network", "desks"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	want = config.View{PublicURL: "https://fleet.example", FrameAncestors: "https://app.example", EmbedTTL: 2 * time.Hour, NoVNCDir: "/opt/novnc", ControlIdle: 90 * time.Second}
	if diff := cmp.Diff(want, got.View); diff != "" {
		t.Errorf("view from env and flags (-want +got):\n%s", diff)
	}
	if got.Docker != (config.Docker{Image: "atelier/desktop:v1", Network: "desks"}) {
		t.Errorf("docker from env and flags: %+v", got.Docker)
	}
}

func TestLoadViewRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		says string
	}{
		"public url with a slash":     {map[string]string{"ATELIER_PUBLIC_URL": "https://fleet.example/"}, nil, "ATELIER_PUBLIC_URL"},
		"public url not http":         {map[string]string{"ATELIER_PUBLIC_URL": "ftp://fleet.example"}, nil, "ATELIER_PUBLIC_URL"},
		"ttl not a duration":          {map[string]string{"ATELIER_EMBED_TTL": "forever"}, nil, "ATELIER_EMBED_TTL"},
		"ttl zero":                    {nil, []string{"--embed-ttl", "0s"}, "embed ttl"},
		"ttl over the longest":        {nil, []string{"--embed-ttl", "1000h"}, "embed ttl"},
		"frame ancestors injected":    {map[string]string{"ATELIER_FRAME_ANCESTORS": "*; script-src *"}, nil, "frame ancestors"},
		"control idle not a duration": {map[string]string{"ATELIER_CONTROL_IDLE": "soon"}, nil, "ATELIER_CONTROL_IDLE"},
		"control idle too short":      {nil, []string{"--control-idle", "10ms"}, "control idle"},
		"docker without an image":     {map[string]string{"ATELIER_RUNTIME": "docker"}, []string{"--docker-image", ""}, "docker image"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(env(tc.env), tc.args, new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Load: %v; want an error naming %q", err, tc.says)
			}
		})
	}
}
