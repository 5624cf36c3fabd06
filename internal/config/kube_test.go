package config_test

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	"atelier/internal/config"
)

func TestLoadKube(t *testing.T) {
	env := map[string]string{
		"ATELIER_RUNTIME": "kube", "ATELIER_INSECURE_NO_TOKEN": "1",
		config.EnvKubeNamespace: "desks", config.EnvKubeHomeSize: "2Gi",
		config.EnvKubeFleetPods: "app.kubernetes.io/name=atelier,tier=fleet", config.EnvKubeFleetCIDRs: "10.0.0.0/8,192.168.1.5/32",
		config.EnvKubeGateway: "atelier.desks.svc:7071",
	}
	c, err := config.Load(func(k string) string { return env[k] }, []string{"--kube-storage-class", "fast", "--kube-image", "reg.example/desk:1"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kube
	if k.Namespace != "desks" || k.HomeSize != "2Gi" || k.StorageClass != "fast" || k.Image != "reg.example/desk:1" || k.Gateway != "atelier.desks.svc:7071" {
		t.Errorf("kube settings %+v", k)
	}
	if got := k.FleetPodLabels(); !maps.Equal(got, map[string]string{"app.kubernetes.io/name": "atelier", "tier": "fleet"}) {
		t.Errorf("fleet pods %v", got)
	}
	if got := k.FleetCIDRList(); !slices.Equal(got, []string{"10.0.0.0/8", "192.168.1.5/32"}) {
		t.Errorf("fleet CIDRs %v", got)
	}
}

func TestLoadKubeRefuses(t *testing.T) {
	for name, args := range map[string][]string{
		"home size":  {"--kube-home-size", "ten gigs"},
		"empty size": {"--kube-home-size", ""},
		"fleet pods": {"--kube-fleet-pods", "app"},
		"fleet cidr": {"--kube-fleet-cidrs", "10.0.0.0/8,nope"},
		"image":      {"--kube-image", ""},
		"gateway":    {"--kube-gateway", "atelier.desks.svc"},
	} {
		env := map[string]string{"ATELIER_RUNTIME": "kube", "ATELIER_INSECURE_NO_TOKEN": "1"}
		_, err := config.Load(func(k string) string { return env[k] }, args, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), "kube") {
			t.Errorf("%s %q: got %v, want an error naming kube", name, args, err)
		}
	}
}
