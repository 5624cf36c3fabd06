package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// Environment variables of the kube runtime.
const (
	EnvKubeconfig       = "ATELIER_KUBECONFIG"
	EnvKubeNamespace    = "ATELIER_KUBE_NAMESPACE"
	EnvKubeImage        = "ATELIER_KUBE_IMAGE"
	EnvKubeStorageClass = "ATELIER_KUBE_STORAGE_CLASS"
	EnvKubeHomeSize     = "ATELIER_KUBE_HOME_SIZE"
	EnvKubeFleetPods    = "ATELIER_KUBE_FLEET_PODS"
	EnvKubeFleetCIDRs   = "ATELIER_KUBE_FLEET_CIDRS"
	EnvKubeGateway      = "ATELIER_KUBE_GATEWAY"
)

// DefaultKubeHomeSize is the size of each desktop's home claim.
const DefaultKubeHomeSize = "10Gi"

// Kube configures the kube runtime: desktops as pods of one namespace.
type Kube struct {
	// Kubeconfig is the path of a kubeconfig file; empty means the pod's
	// own service account (in a cluster), else $KUBECONFIG.
	Kubeconfig string
	// Namespace holds the desktops; empty means the fleet pod's own.
	Namespace string
	// Image is the desktop image, from the cluster's registry.
	Image string
	// StorageClass of the home claims; empty means the cluster's default.
	StorageClass string
	// HomeSize of each home claim, a Kubernetes quantity such as 10Gi.
	HomeSize string
	// FleetPods are the labels of the fleet's pods (k=v,k=v), the peers
	// each desktop's NetworkPolicy lets in; FleetCIDRs admits a fleet
	// outside the cluster.
	FleetPods  string
	FleetCIDRs string
	// Gateway is the fleet's egress gateway as desktops' pods dial it,
	// host:port; the fleet listens on that port. Empty: desktops have no
	// egress.
	Gateway string
}

// quantity is the shape of a Kubernetes storage quantity.
var quantity = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$`)

// loadKube reads the kube runtime's settings from getenv and declares
// their flags on fs.
func (c *Config) loadKube(getenv func(string) string, fs *flag.FlagSet) {
	c.Kube = Kube{Kubeconfig: getenv(EnvKubeconfig), Namespace: getenv(EnvKubeNamespace), Image: DefaultDockerImage(),
		StorageClass: getenv(EnvKubeStorageClass), HomeSize: DefaultKubeHomeSize,
		FleetPods: getenv(EnvKubeFleetPods), FleetCIDRs: getenv(EnvKubeFleetCIDRs),
		Gateway: getenv(EnvKubeGateway)}
	if v := getenv(EnvKubeImage); v != "" {
		c.Kube.Image = v
	}
	if v := getenv(EnvKubeHomeSize); v != "" {
		c.Kube.HomeSize = v
	}
	fs.StringVar(&c.Kube.Kubeconfig, "kubeconfig", c.Kube.Kubeconfig, "kubeconfig of the kube runtime; empty: in-cluster, else $KUBECONFIG (env "+EnvKubeconfig+")")
	fs.StringVar(&c.Kube.Namespace, "kube-namespace", c.Kube.Namespace, "namespace of the kube runtime's desktops; empty: the fleet pod's own (env "+EnvKubeNamespace+")")
	fs.StringVar(&c.Kube.Image, "kube-image", c.Kube.Image, "desktop image of the kube runtime (env "+EnvKubeImage+")")
	fs.StringVar(&c.Kube.StorageClass, "kube-storage-class", c.Kube.StorageClass, "storage class of desktop homes; empty: the cluster's default (env "+EnvKubeStorageClass+")")
	fs.StringVar(&c.Kube.HomeSize, "kube-home-size", c.Kube.HomeSize, "size of each desktop home claim, such as 10Gi (env "+EnvKubeHomeSize+")")
	fs.StringVar(&c.Kube.FleetPods, "kube-fleet-pods", c.Kube.FleetPods, "labels k=v,... of the fleet's pods, let into desktops by their NetworkPolicy (env "+EnvKubeFleetPods+")")
	fs.StringVar(&c.Kube.Gateway, "kube-gateway", c.Kube.Gateway, "host:port desktops' pods dial for egress, where the fleet serves its gateway; empty: no egress (env "+EnvKubeGateway+")")
	fs.StringVar(&c.Kube.FleetCIDRs, "kube-fleet-cidrs", c.Kube.FleetCIDRs, "CIDRs,... of a fleet outside the cluster, let into desktops by their NetworkPolicy (env "+EnvKubeFleetCIDRs+")")
}

// FleetPodLabels parses FleetPods; validate has checked it.
func (k Kube) FleetPodLabels() map[string]string {
	if k.FleetPods == "" {
		return nil
	}
	m := map[string]string{}
	for kv := range strings.SplitSeq(k.FleetPods, ",") {
		key, v, _ := strings.Cut(kv, "=")
		m[key] = v
	}
	return m
}

// FleetCIDRList parses FleetCIDRs; validate has checked it.
func (k Kube) FleetCIDRList() []string {
	if k.FleetCIDRs == "" {
		return nil
	}
	return strings.Split(k.FleetCIDRs, ",")
}

// validateKube checks the kube runtime's settings when it is the runtime.
func (c Config) validateKube() []error {
	if c.Runtime != "kube" {
		return nil
	}
	var errs []error
	if c.Kube.Image == "" {
		errs = append(errs, errors.New("kube image is empty: pass --kube-image"))
	}
	if !quantity.MatchString(c.Kube.HomeSize) {
		errs = append(errs, fmt.Errorf("kube home size %q: want a quantity such as 10Gi or 500Mi", c.Kube.HomeSize))
	}
	if c.Kube.FleetPods != "" {
		for kv := range strings.SplitSeq(c.Kube.FleetPods, ",") {
			if k, v, ok := strings.Cut(kv, "="); !ok || k == "" || v == "" {
				errs = append(errs, fmt.Errorf("kube fleet pods %q: want labels such as app.kubernetes.io/name=atelier,tier=fleet", c.Kube.FleetPods))
				break
			}
		}
	}
	if c.Kube.FleetCIDRs != "" {
		for cidr := range strings.SplitSeq(c.Kube.FleetCIDRs, ",") {
			if _, _, err := net.ParseCIDR(cidr); err != nil {
				errs = append(errs, fmt.Errorf("kube fleet CIDRs %q: %w", c.Kube.FleetCIDRs, err))
				break
			}
		}
	}
	if c.Kube.Gateway != "" {
		if _, port, err := net.SplitHostPort(c.Kube.Gateway); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("kube gateway %q: want host:port, such as atelier.ns.svc:7071", c.Kube.Gateway))
		}
	}
	return errs
}
