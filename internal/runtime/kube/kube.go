// Package kube runs desktops as Kubernetes pods through the API server
// (client-go), in one namespace. Per desktop:
//
//   - a Secret: the desktop's link credential (package desklink: its
//     server key and certificate, the fleet's client certificate), the
//     spec it was created with, and the run files the fleet wrote;
//   - a PersistentVolumeClaim for the home (storage class and size are
//     options), which outlives the pod: Stop deletes the pod, Remove with
//     purge the claim;
//   - a NetworkPolicy: ingress only from the fleet on the link's port,
//     egress only to the fleet's egress gateway (Options.Gateway), or
//     none;
//   - while it runs, a Pod: the desktop container (the image's
//     atelier-agent, with requests and limits) and a native sidecar, the
//     link server, which alone mounts the credential.
//
// Every object is labelled with the desktop's id and the fleet's name,
// so a restarted fleet re-adopts its desktops from the API server (List).
// The fleet reaches a desktop only through its link: one TCP port on the
// pod's IP, mutual TLS, ALPN naming the agent, VNC, a run file, or the
// home as a tar stream. A stopped desktop's home is reached through a
// short-lived pod running the link server alone.
//
// Egress goes the other way: the link server serves the desktop's gate
// socket (in a volume the desktop mounts read-only, so the desktop side is
// the same as in every runtime) and carries each connection to the
// fleet's one gateway port, mutual TLS with the desktop's own certificate;
// the fleet splices it to that desktop's gate socket on its host, where
// package egress applies the desktop's policy.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"atelier/desktop"
	"atelier/internal/desklink"
	"atelier/internal/runtime"
)

// Labels and annotations on every object the runtime makes.
const (
	LabelSession   = "atelier.dev/session" // the desktop (session) id
	LabelFleet     = "atelier.dev/fleet"   // the fleet that made it (Options.Fleet)
	LabelRole      = "atelier.dev/role"    // desktop, or home-io for a stopped desktop's home pod
	LabelManagedBy = "app.kubernetes.io/managed-by"

	annLabel      = "atelier.dev/label"
	annResolution = "atelier.dev/resolution"
	annTheme      = "atelier.dev/theme"
	annImage      = "atelier.dev/image"
	annMemory     = "atelier.dev/memory-bytes"
	annCPUs       = "atelier.dev/cpus"
	annPIDs       = "atelier.dev/pids"
)

const (
	roleDesktop = "desktop"
	roleHomeIO  = "home-io"
	// linkDir and homeVolume are where the link container mounts the
	// credential and the home.
	linkDir    = "/etc/atelier/link"
	homeVolume = "/home-volume"
	agentPath  = "/usr/local/bin/atelier-agent"
)

// The desktop user of the image (desktop/Dockerfile), who owns the home.
const (
	DesktopUID = desktop.ImageUID
	DesktopGID = desktop.ImageGID
)

// DefaultLimits are the resources of a desktop whose spec names none.
var DefaultLimits = runtime.ContainerLimits

// Options configure a Runtime.
type Options struct {
	Client    kubernetes.Interface // required
	Namespace string               // required
	Image     string               // the desktop image; required
	// DataDir holds the fleet's egress gate dirs. Required.
	DataDir string
	// Fleet names this fleet in labels, telling apart the desktops of
	// fleets sharing a namespace. Default "atelier".
	Fleet string
	// StorageClass of the home claims; "" is the cluster's default.
	StorageClass string
	// HomeSize is each home claim's size. Default 10Gi.
	HomeSize resource.Quantity
	// Limits are the resources of desktops whose spec names none; zero
	// fields take DefaultLimits'.
	Limits runtime.Resources
	// FleetPods selects (by labels, in the namespace) the pods of the
	// fleet, the one peer the NetworkPolicy lets in; FleetCIDRs admits a
	// fleet outside the cluster. Neither: the policy lets nothing in.
	FleetPods  map[string]string
	FleetCIDRs []string
	// Gateway is the fleet's egress gateway as desktops' pods dial it,
	// host:port; the fleet listens on that port on every interface (0
	// picks one). A host name is resolved once, here: pods have no DNS.
	// Empty: desktops have no egress at all.
	Gateway string
	// PullPolicy of the desktop image. Default IfNotPresent.
	PullPolicy corev1.PullPolicy
	Logger     *slog.Logger // nil: discard
}

// Runtime runs desktops as pods. It is safe for concurrent use.
type Runtime struct {
	opts  Options
	c     kubernetes.Interface
	ns    string
	log   *slog.Logger
	fleet desklink.Pair // the fleet's link client credential
	// The egress gateway (Options.Gateway), if any: the address pods dial,
	// and a stop for its listener.
	gatewayIP   net.IP
	gatewayPort int
	stopGateway func()
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a kube runtime; it checks that the API server answers and
// loads (or makes, the first time) the fleet's link credential, kept in a
// Secret so a restarted fleet still reaches its desktops.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.Client == nil || opts.Namespace == "" || opts.Image == "" || opts.DataDir == "" {
		return nil, errors.New("kube runtime: Client, Namespace, Image and DataDir are required")
	}
	if opts.Fleet == "" {
		opts.Fleet = "atelier"
	}
	if opts.HomeSize.IsZero() {
		opts.HomeSize = resource.MustParse("10Gi")
	}
	if opts.HomeSize.Sign() < 0 {
		return nil, fmt.Errorf("kube runtime: home size %s: negative", opts.HomeSize.String())
	}
	opts.Limits = opts.Limits.Or(DefaultLimits)
	if err := opts.Limits.Check(); err != nil {
		return nil, fmt.Errorf("kube runtime: limits: %w", err)
	}
	for _, cidr := range opts.FleetCIDRs {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			return nil, fmt.Errorf("kube runtime: fleet CIDR: %w", err)
		}
	}
	if opts.PullPolicy == "" {
		opts.PullPolicy = corev1.PullIfNotPresent
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("kube runtime: %w", err)
	}
	opts.DataDir = abs
	r := &Runtime{opts: opts, c: opts.Client, ns: opts.Namespace, log: opts.Logger}
	if r.fleet, err = r.fleetPair(ctx); err != nil {
		return nil, fmt.Errorf("kube runtime: namespace %s: %w", r.ns, err)
	}
	if opts.Gateway != "" {
		if err := r.listenGateway(ctx); err != nil {
			return nil, fmt.Errorf("kube runtime: %w", err)
		}
	}
	return r, nil
}

// fleetPair loads the fleet's link credential, making it the first time.
func (r *Runtime) fleetPair(ctx context.Context) (desklink.Pair, error) {
	name := "atelier-link-" + r.opts.Fleet
	s, err := r.c.CoreV1().Secrets(r.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		var p desklink.Pair
		if p, err = desklink.NewClientPair(); err != nil {
			return desklink.Pair{}, err
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelFleet: r.opts.Fleet, LabelManagedBy: "atelier"}},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: p.Cert, corev1.TLSPrivateKeyKey: p.Key},
		}
		if s, err = r.c.CoreV1().Secrets(r.ns).Create(ctx, s, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			return r.fleetPair(ctx) // another replica made it meanwhile
		}
	}
	if err != nil {
		return desklink.Pair{}, fmt.Errorf("fleet link credential: %w", err)
	}
	return desklink.Pair{Cert: s.Data[corev1.TLSCertKey], Key: s.Data[corev1.TLSPrivateKeyKey]}, nil
}

// Name is "kube".
func (r *Runtime) Name() string { return "kube" }

// Close stops the egress gateway's listener and leaves desktops running
// (their egress waits for the next fleet); the client is the caller's.
func (r *Runtime) Close() error {
	if r.stopGateway != nil {
		r.stopGateway()
	}
	return nil
}

// objectName is desktop id's pod, Secret and NetworkPolicy name: ids hold
// an underscore, which object names may not.
func objectName(id string) string { return "atelier-" + strings.ReplaceAll(id, "_", "-") }

// ClaimName is the name of desktop id's home claim.
func ClaimName(id string) string { return "atelier-home-" + strings.ReplaceAll(id, "_", "-") }

// homePodName is the name of the pod serving a stopped desktop's home.
func homePodName(id string) string { return "atelier-homeio-" + strings.ReplaceAll(id, "_", "-") }

func (r *Runtime) labels(id, role string) map[string]string {
	return map[string]string{LabelSession: id, LabelFleet: r.opts.Fleet, LabelRole: role, LabelManagedBy: "atelier"}
}

func (r *Runtime) gateDir(id string) string {
	return filepath.Join(r.opts.DataDir, "desktops", id, "gate")
}

// secret returns desktop id's Secret, or ErrNotFound: it exists from
// Create to Remove, so it is the desktop's record.
func (r *Runtime) secret(ctx context.Context, id string) (*corev1.Secret, error) {
	if err := runtime.CheckID(id); err != nil {
		return nil, fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	s, err := r.c.CoreV1().Secrets(r.ns).Get(ctx, objectName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", runtime.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	if s.Labels[LabelSession] != id || s.Labels[LabelFleet] != r.opts.Fleet {
		return nil, fmt.Errorf("%w: %s (Secret %s is not this fleet's)", runtime.ErrNotFound, id, s.Name)
	}
	return s, nil
}

// pod returns the pod named name, nil if there is none.
func (r *Runtime) pod(ctx context.Context, name string) (*corev1.Pod, error) {
	p, err := r.c.CoreV1().Pods(r.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return p, err
}

// specOf is the spec a desktop's Secret records.
func specOf(s *corev1.Secret) (runtime.Spec, error) {
	a := s.Annotations
	spec := runtime.Spec{ID: s.Labels[LabelSession], Label: a[annLabel], Theme: a[annTheme], Image: a[annImage]}
	var err error
	if spec.Resolution, err = desktop.ParseResolution(a[annResolution]); err != nil {
		return spec, err
	}
	if spec.Resources.MemoryBytes, err = strconv.ParseInt(a[annMemory], 10, 64); err != nil {
		return spec, err
	}
	if spec.Resources.CPUs, err = strconv.ParseFloat(a[annCPUs], 64); err != nil {
		return spec, err
	}
	if spec.Resources.PIDs, err = strconv.ParseInt(a[annPIDs], 10, 64); err != nil {
		return spec, err
	}
	return spec, nil
}

// deleteAndWait deletes pod name and waits until it is gone: its name is
// reused, and a stopped desktop's agent must not answer any more.
func (r *Runtime) deleteAndWait(ctx context.Context, name string, grace int64) error {
	err := r.c.CoreV1().Pods(r.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete pod %s: %w", name, err)
	}
	return poll(ctx, time.Duration(grace)*time.Second+time.Minute, func() (bool, error) {
		p, err := r.pod(ctx, name)
		return p == nil, err
	})
}

// poll calls done every 100 ms until it reports true, fails, or timeout
// passes: the API server's watch would need a goroutine per wait for what
// takes seconds.
func poll(ctx context.Context, timeout time.Duration, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// podAddr is the link address of a running pod.
func podAddr(p *corev1.Pod) (string, error) {
	if p == nil || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return "", errors.New("not running")
	}
	return net.JoinHostPort(p.Status.PodIP, strconv.Itoa(desklink.Port)), nil
}

// GateSocket is the egress socket's path in the desktop's gate dir.
func (r *Runtime) GateSocket(id string) (string, error) {
	if err := runtime.CheckID(id); err != nil {
		return "", fmt.Errorf("gate socket: %w: %v", runtime.ErrNotFound, err)
	}
	if _, err := os.Stat(r.gateDir(id)); err != nil {
		return "", fmt.Errorf("gate socket: %w: %s", runtime.ErrNotFound, id)
	}
	return filepath.Join(r.gateDir(id), desktop.GateSocket), nil
}
