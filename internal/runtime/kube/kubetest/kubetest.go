// Package kubetest gives tests a real single-node Kubernetes cluster
// (scripts/kube-cluster.sh: upstream components built from the Go module
// proxy, a separate containerd, Debian's CNI plugins) with the desktop
// image imported, a namespace per test and local PersistentVolumes made
// ahead (the cluster has no dynamic provisioner). One test process at a
// time holds the cluster (a lock file): the node is one. Tests skip,
// loudly, when it cannot be brought up.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"atelier/internal/runtime/docker/dockertest"
	"atelier/internal/runtime/kube"
)

// StorageClass is the class of the volumes the harness makes.
const StorageClass = "atelier-local"

// HomeSize is the size of each volume, and of the homes tests ask for.
const HomeSize = "1Gi"

// volumes is how many Available volumes the harness keeps.
const volumes = 12

// FleetHost is this host as pods see it: the pod bridge's address
// (scripts/kube-cluster.sh, POD_CIDR), where a fleet on the host serves
// the egress gateway.
const FleetHost = "10.88.7.1"

// BaseImage is a plain Debian image imported beside the desktop's, for
// pods that play other tenants of the cluster.
const BaseImage = "atelier/debian-base:bookworm"

// Env is the cluster as a test sees it.
type Env struct {
	Config     *rest.Config
	Kubeconfig string // its file, for programs the test starts
	Client     kubernetes.Interface
	Namespace  string // the test's own, deleted after it
	Image      string // the desktop image, imported
	Node       string
	dir        string // the cluster's state dir
}

var cluster struct {
	once    sync.Once
	lock    *os.File
	started bool // this process brought it up, and brings it down
	skip    string
	err     error
	env     Env
}

func script() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "scripts", "kube-cluster.sh")
}

// run runs the cluster script, returning its output with the error.
func run(args ...string) (string, error) {
	cmd := exec.Command(script(), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Main runs the tests, then brings the cluster down if this process
// brought it up. Packages with cluster tests call it from TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if cluster.started {
		if out, err := run("down"); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: cluster down: %v\n%s", err, out)
		}
	}
	if cluster.lock != nil {
		cluster.lock.Close()
	}
	return code
}

// Cluster returns the cluster, bringing it up (and building its binaries,
// once per machine) on first use, with a namespace of the test's own.
func Cluster(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("kube runtime tests need a Kubernetes node and minutes: skipped with -short")
	}
	img := ""
	cluster.once.Do(func() {
		_, img = dockertest.Engine(t) // the desktop image, built if stale
		setup(img)
	})
	if cluster.skip != "" {
		t.Skip(cluster.skip)
	}
	if cluster.err != nil {
		t.Fatal(cluster.err)
	}
	env := cluster.env
	if err := env.recycle(t.Context()); err != nil {
		t.Fatalf("kubetest: volumes: %v", err)
	}
	env.Namespace = "atelier-test-" + strings.ToLower(rand.Text()[:10])
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: env.Namespace}}
	if _, err := env.Client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: namespace: %v", err)
	}
	t.Cleanup(func() {
		// Not waited for: the namespace controller finishes in the background.
		env.Client.CoreV1().Namespaces().Delete(context.Background(), env.Namespace, metav1.DeleteOptions{})
	})
	return &env
}

func setup(img string) {
	if os.Geteuid() != 0 {
		cluster.skip = "SKIPPED: NO KUBERNETES NODE: the test cluster needs root (kubelet, containerd, iptables): the kube runtime is untested"
		return
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "atelier-kube-cluster.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		cluster.err = err
		return
	}
	// Held until the process ends: one test process on the node at a time.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		cluster.err = fmt.Errorf("lock the cluster: %w", err)
		return
	}
	cluster.lock = lock
	if out, err := run("build"); err != nil {
		cluster.skip = fmt.Sprintf("SKIPPED: NO KUBERNETES NODE: building the cluster's binaries failed (%v): the kube runtime is untested\n%s", err, tail(out))
		return
	}
	if _, err := run("env"); err == nil {
		// Up already (started by hand): the image may be older.
		if out, err := run("import", img, BaseImage); err != nil {
			cluster.err = fmt.Errorf("import images: %v\n%s", err, out)
			return
		}
	} else {
		cluster.started = true
		if out, err := run("up", img, BaseImage); err != nil {
			cluster.skip = fmt.Sprintf("SKIPPED: NO KUBERNETES NODE: the cluster did not come up (%v): the kube runtime is untested\n%s", err, tail(out))
			return
		}
	}
	out, err := run("env")
	if err != nil {
		cluster.err = fmt.Errorf("cluster env: %v\n%s", err, out)
		return
	}
	vars := map[string]string{}
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			vars[k] = v
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", vars["KUBECONFIG"])
	if err != nil {
		cluster.err = err
		return
	}
	cfg.QPS, cfg.Burst = 100, 200 // tests poll
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		cluster.err = err
		return
	}
	cluster.env = Env{Config: cfg, Kubeconfig: vars["KUBECONFIG"], Client: c, Image: img, Node: vars["NODE"], dir: vars["DIR"]}
	cluster.err = cluster.env.storageClass(context.Background())
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

func (e *Env) storageClass(ctx context.Context) error {
	wait := storagev1.VolumeBindingWaitForFirstConsumer
	retain := corev1.PersistentVolumeReclaimRetain
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: StorageClass},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: &wait,
		ReclaimPolicy:     &retain,
	}
	_, err := e.Client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("storage class: %w", err)
	}
	return nil
}

// recycle deletes the volumes whose claims were deleted (Released: no
// provisioner wipes them), with their directories, and makes new ones
// until volumes are Available.
func (e *Env) recycle(ctx context.Context) error {
	pvs, err := e.Client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{LabelSelector: "atelier.dev/test-volume"})
	if err != nil {
		return err
	}
	available := 0
	for _, pv := range pvs.Items {
		switch pv.Status.Phase {
		case corev1.VolumeAvailable:
			available++
		case corev1.VolumeReleased, corev1.VolumeFailed:
			if err := e.Client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}); err != nil {
				return err
			}
			os.RemoveAll(pv.Spec.Local.Path)
		}
	}
	for ; available < volumes; available++ {
		name := "atelier-pv-" + strings.ToLower(rand.Text()[:10])
		dir := filepath.Join(e.dir, "volumes", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(dir, kube.DesktopUID, kube.DesktopGID); err != nil {
			return err
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"atelier.dev/test-volume": "1"}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(HomeSize)},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              StorageClass,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{e.Node}}},
				}}}},
			},
		}
		if _, err := e.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// Runtime returns a kube runtime in the test's namespace; what it made
// goes with the namespace.
func (e *Env) Runtime(t testing.TB, opts kube.Options) *kube.Runtime {
	t.Helper()
	opts.Client, opts.Namespace, opts.Image = e.Client, e.Namespace, e.Image
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	opts.StorageClass = StorageClass
	opts.HomeSize = resource.MustParse(HomeSize)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rt, err := kube.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// HomeDir is the host directory of desktop id's home: the local volume its
// claim is bound to (the node is this host). os.ErrNotExist if the claim
// is gone or not bound yet (a desktop never started).
func (e *Env) HomeDir(ctx context.Context, id string) (string, error) {
	pvc, err := e.Client.CoreV1().PersistentVolumeClaims(e.Namespace).Get(ctx, kube.ClaimName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err == nil && pvc.Spec.VolumeName == "" {
		return "", fmt.Errorf("home of %s: %w", id, os.ErrNotExist)
	}
	if err != nil {
		return "", err
	}
	pv, err := e.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if pv.Spec.Local == nil {
		return "", fmt.Errorf("home of %s: volume %s is not local", id, pv.Name)
	}
	return pv.Spec.Local.Path, nil
}

// DumpLogs logs the last lines of every container of the test's pods.
func (e *Env) DumpLogs(t testing.TB) {
	ctx := context.WithoutCancel(t.Context())
	pods, err := e.Client.CoreV1().Pods(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("kubetest: pods: %v", err)
		return
	}
	lines := int64(40)
	for _, p := range pods.Items {
		for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			b, err := e.Client.CoreV1().Pods(e.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: &lines}).DoRaw(ctx)
			t.Logf("--- pod %s container %s (%s) %v\n%s", p.Name, c.Name, p.Status.Phase, err, b)
		}
	}
}
