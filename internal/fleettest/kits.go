package fleettest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"atelier/internal/config"
	"atelier/internal/runtime/docker/dockertest"
	"atelier/internal/runtime/kube"
	"atelier/internal/runtime/kube/kubetest"
	"atelier/internal/runtime/local"
)

// kit is what the tests need of one runtime beyond the Runtime interface:
// how to set a fleet up on it (skipping where this host cannot run it),
// how to reach a desktop's home from outside the desktop, and how to
// explain a failure and clean up. There is one per runtime of the
// registry (fleet.RuntimeNames, checked by a test), so no test branches
// on a runtime's name.
type kit struct {
	// lacks names the features the runtime does not have yet, and why:
	// a test of one skips, loudly (Requires).
	lacks     map[Feature]string
	configure func(t testing.TB, cfg *config.Config)
	home      homeAccess
	dumpLogs  func(t testing.TB, dataDir string)
	purge     func(t testing.TB, dataDir string)
}

// homeAccess reaches the home of desktop id of a fleet on dataDir without
// going through the desktop.
type homeAccess interface {
	read(t testing.TB, h Home, name string) ([]byte, error)
	write(t testing.TB, h Home, name string, content []byte) error
	hostPath(t testing.TB, h Home) (string, error)
	exists(t testing.TB, h Home) (bool, error)
}

var kits = map[string]kit{
	"local": {
		configure: func(t testing.TB, cfg *config.Config) {
			RequireDesktops(t)
			cfg.AgentPath = Binary(t, "atelier-agent")
		},
		home:     localHome{},
		dumpLogs: DumpDesktopLogs,
		purge:    purgeLocal,
	},
	"docker": {
		configure: func(t testing.TB, cfg *config.Config) { _, cfg.Docker.Image = dockertest.Engine(t) },
		home:      dockerHome{},
		dumpLogs: func(t testing.TB, dataDir string) {
			DumpDesktopLogs(t, dataDir)
			dockertest.DumpLogs(t, dataDir)
		},
		purge: dockertest.Purge,
	},
	"kube": {
		lacks: map[Feature]string{
			IsolatedNetwork: "a pod's NetworkPolicy lets out only the fleet's gateway, but the test cluster's bridge CNI " +
				"does not enforce NetworkPolicy, so the pod network is open there",
			HomeQuota: "a home is a PersistentVolumeClaim whose size the storage class enforces (the test cluster's local volumes do not); " +
				"the runtime reports no usage",
		},
		configure: func(t testing.TB, cfg *config.Config) {
			// A fleet restarted on a data dir finds its desktops in the
			// namespace of the fleet before it.
			var env *kubetest.Env
			if e, ok := kubeEnvs.Load(cfg.DataDir); ok {
				env = e.(*kubetest.Env)
			} else {
				env = kubetest.Cluster(t)
			}
			cfg.Kube = config.Kube{Kubeconfig: env.Kubeconfig, Namespace: env.Namespace, Image: env.Image,
				StorageClass: kubetest.StorageClass, HomeSize: kubetest.HomeSize, Gateway: kubeGateway(t, cfg.DataDir)}
			kubeEnvs.Store(cfg.DataDir, env)
		},
		home: kubeHome{},
		dumpLogs: func(t testing.TB, dataDir string) {
			if env, ok := kubeEnvs.Load(dataDir); ok {
				env.(*kubetest.Env).DumpLogs(t)
			}
		},
		// The test's namespace, and all in it, goes with the test.
		purge: func(testing.TB, string) {},
	},
}

// kubeEnvs is the cluster namespace of each kube fleet, by data dir.
var kubeEnvs sync.Map

// kubeGateways is the egress gateway of each kube fleet, by data dir: a
// restarted fleet serves it where its desktops' pods dial it.
var kubeGateways sync.Map

// kubeGateway is the gateway address of the fleet on dataDir: this host
// as pods see it, on a port free now.
func kubeGateway(t testing.TB, dataDir string) string {
	if a, ok := kubeGateways.Load(dataDir); ok {
		return a.(string)
	}
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	a := net.JoinHostPort(kubetest.FleetHost, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	kubeGateways.Store(dataDir, a)
	return a
}

// kubeHome is the local volume the home's claim is bound to, on this host
// (the test cluster's one node).
type kubeHome struct{}

func (kubeHome) env(t testing.TB, h Home) *kubetest.Env {
	env, ok := kubeEnvs.Load(h.dataDir)
	if !ok {
		t.Fatalf("fleettest: no cluster namespace for the fleet on %s", h.dataDir)
	}
	return env.(*kubetest.Env)
}

func (k kubeHome) read(t testing.TB, h Home, name string) ([]byte, error) {
	dir, err := k.hostPath(t, h)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(dir, name))
}

func (k kubeHome) write(t testing.TB, h Home, name string, content []byte) error {
	dir, err := k.hostPath(t, h)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, name)
	return errors.Join(os.WriteFile(p, content, 0o644), os.Chown(p, kube.DesktopUID, kube.DesktopGID))
}

func (k kubeHome) hostPath(t testing.TB, h Home) (string, error) {
	return k.env(t, h).HomeDir(t.Context(), h.id)
}

func (k kubeHome) exists(t testing.TB, h Home) (bool, error) {
	_, err := k.hostPath(t, h)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Feature is something a runtime offers that a test of it needs.
type Feature string

// Features a runtime may lack.
const (
	EgressGateway Feature = "the egress gateway"
	// IsolatedNetwork: a desktop reaches nothing but the gateway.
	IsolatedNetwork Feature = "an isolated network"
	HomeQuota       Feature = "home disk quotas"
	HostHome        Feature = "homes the fleet opens on its host (the file API)"
)

// Requires skips the test, loudly, when runtime lacks feature.
func Requires(t testing.TB, runtime string, feature Feature) {
	t.Helper()
	if why, ok := kitOf(t, runtime).lacks[feature]; ok {
		t.Skipf("SKIPPED: the %s runtime lacks %s: %s", runtime, feature, why)
	}
}

// Offers reports whether runtime has feature, for the checks of a test
// that hold only where it does.
func Offers(t testing.TB, runtime string, feature Feature) bool {
	t.Helper()
	_, lacks := kitOf(t, runtime).lacks[feature]
	return !lacks
}

// kitOf returns runtime's kit.
func kitOf(t testing.TB, runtime string) kit {
	t.Helper()
	k, ok := kits[runtime]
	if !ok {
		t.Fatalf("fleettest: no test kit for runtime %q: add one beside its registry entry", runtime)
	}
	return k
}

// localHome is a directory of the data dir (in the home's own filesystem
// when it has a quota, mounted meanwhile if need be).
type localHome struct{}

func (localHome) read(t testing.TB, h Home, name string) (b []byte, err error) {
	err = h.inDir(t, func(dir string) (err error) {
		b, err = os.ReadFile(filepath.Join(dir, name))
		return err
	})
	return b, err
}

func (localHome) write(t testing.TB, h Home, name string, content []byte) error {
	u, err := user.Lookup("atelier")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return h.inDir(t, func(dir string) error {
		p := filepath.Join(dir, name)
		return errors.Join(os.WriteFile(p, content, 0o644), os.Chown(p, uid, gid))
	})
}

func (localHome) hostPath(_ testing.TB, h Home) (string, error) { return h.dir(), nil }

func (localHome) exists(_ testing.TB, h Home) (bool, error) {
	if ok, err := h.FS().Exists(); ok || err != nil {
		return ok, err
	}
	_, err := os.Stat(h.dir())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// dockerHome is a volume, reached through the Engine API.
type dockerHome struct{}

func (dockerHome) read(t testing.TB, h Home, name string) ([]byte, error) {
	return dockertest.ReadHomeFile(t, h.id, name)
}

func (dockerHome) write(t testing.TB, h Home, name string, content []byte) error {
	return dockertest.WriteHomeFile(t, h.id, name, content)
}

func (dockerHome) hostPath(t testing.TB, h Home) (string, error) {
	return dockertest.HomeMountpoint(t, h.id)
}

func (dockerHome) exists(t testing.TB, h Home) (bool, error) {
	_, err := dockertest.HomeMountpoint(t, h.id)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// purgeLocal removes every desktop of the local runtime on dataDir, homes
// included.
func purgeLocal(t testing.TB, dataDir string) {
	rt, err := local.New(local.Options{DataDir: dataDir, AgentPath: Binary(t, "atelier-agent")})
	if err != nil {
		t.Errorf("purge desktops of %s: %v", dataDir, err)
		return
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := rt.List(ctx)
	if err != nil {
		t.Errorf("purge desktops: %v", err)
	}
	for _, in := range list {
		if err := rt.Remove(ctx, in.ID, true); err != nil {
			t.Errorf("purge desktop %s: %v", in.ID, err)
		}
	}
}
