package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/moby/moby/client"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"atelier/internal/config"
	"atelier/internal/runtime"
	"atelier/internal/runtime/docker"
	"atelier/internal/runtime/kube"
	"atelier/internal/runtime/local"
	"atelier/internal/snapshot"
)

// opener opens one kind of runtime as cfg configures it and, where the
// runtime has images, what commits them for snapshots (nil otherwise).
// Closing the runtime releases all it holds.
type opener func(ctx context.Context, cfg config.Config, log *slog.Logger) (runtime.Runtime, snapshot.Images, error)

// runtimes is the registry of the runtimes built into atelier, by the name
// a configuration uses. config.Runtimes lists the same names (a test holds
// the two together); fleettest runs its suite once per entry.
var runtimes = []struct {
	name string
	open opener
}{
	{"local", openLocal},
	{"docker", openDocker},
	{"kube", openKube},
}

// RuntimeNames lists the runtimes built in, in the registry's order.
func RuntimeNames() []string {
	names := make([]string, len(runtimes))
	for i, r := range runtimes {
		names[i] = r.name
	}
	return names
}

// OpenRuntime opens the runtime cfg names.
func OpenRuntime(ctx context.Context, cfg config.Config, log *slog.Logger) (runtime.Runtime, snapshot.Images, error) {
	for _, r := range runtimes {
		if r.name == cfg.Runtime {
			return r.open(ctx, cfg, log)
		}
	}
	return nil, nil, fmt.Errorf("runtime %q is not built into this atelier (built in: %v)", cfg.Runtime, RuntimeNames())
}

func openLocal(_ context.Context, cfg config.Config, log *slog.Logger) (runtime.Runtime, snapshot.Images, error) {
	agent := cfg.AgentPath
	if agent == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, nil, fmt.Errorf("find atelier-agent: %w (pass --agent)", err)
		}
		agent = filepath.Join(filepath.Dir(exe), "atelier-agent")
	}
	rt, err := local.New(local.Options{DataDir: cfg.DataDir, AgentPath: agent, Logger: log, Limits: resources(cfg.Limits), HomeQuota: cfg.HomeQuota})
	return rt, nil, err
}

func openDocker(ctx context.Context, cfg config.Config, log *slog.Logger) (runtime.Runtime, snapshot.Images, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, nil, fmt.Errorf("docker client: %w", err)
	}
	rt, err := docker.New(ctx, docker.Options{Client: c, Image: cfg.Docker.Image, DataDir: cfg.DataDir, Network: cfg.Docker.Network, Logger: log,
		Limits: resources(cfg.Limits), HomeQuota: cfg.HomeQuota})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	d := &dockerRuntime{Runtime: rt, client: c}
	return d, d, nil
}

// dockerRuntime is the docker runtime with the engine client it owns.
type dockerRuntime struct {
	*docker.Runtime
	client *client.Client
}

// Close closes the runtime, then its client.
func (d *dockerRuntime) Close() error {
	return errors.Join(d.Runtime.Close(), d.client.Close())
}

// inClusterNamespace is where a pod finds its own namespace.
const inClusterNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// openKube reaches the API server with cfg.Kube's kubeconfig, or the
// pod's service account, or $KUBECONFIG, in that order.
func openKube(ctx context.Context, cfg config.Config, log *slog.Logger) (runtime.Runtime, snapshot.Images, error) {
	var rc *rest.Config
	var err error
	switch {
	case cfg.Kube.Kubeconfig != "":
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kube.Kubeconfig)
	default:
		if rc, err = rest.InClusterConfig(); errors.Is(err, rest.ErrNotInCluster) {
			rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kube runtime: API server: %w", err)
	}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("kube runtime: %w", err)
	}
	ns := cfg.Kube.Namespace
	if ns == "" {
		b, err := os.ReadFile(inClusterNamespace)
		if err != nil {
			return nil, nil, errors.New("kube runtime: no namespace: pass --kube-namespace (outside a cluster)")
		}
		ns = string(b)
	}
	size, err := resource.ParseQuantity(cfg.Kube.HomeSize)
	if err != nil {
		return nil, nil, fmt.Errorf("kube runtime: home size %q: %w", cfg.Kube.HomeSize, err)
	}
	rt, err := kube.New(ctx, kube.Options{Client: c, Namespace: ns, Image: cfg.Kube.Image, DataDir: cfg.DataDir,
		StorageClass: cfg.Kube.StorageClass, HomeSize: size, Limits: resources(cfg.Limits),
		FleetPods: cfg.Kube.FleetPodLabels(), FleetCIDRs: cfg.Kube.FleetCIDRList(), Gateway: cfg.Kube.Gateway, Logger: log})
	return rt, nil, err
}

// resources is the resources of each desktop l sets; zero fields take the
// runtime's defaults.
func resources(l config.Limits) runtime.Resources {
	return runtime.Resources{MemoryBytes: l.DesktopMemory, CPUs: l.DesktopCPUs, PIDs: l.DesktopPIDs}
}
