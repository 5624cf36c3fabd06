package kube_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"atelier/internal/runtime"
	"atelier/internal/runtime/kube"
	"atelier/internal/runtime/kube/kubetest"
)

// TestHomeUsage: a running desktop reports its home's usage, as the link
// server's statfs of the volume sees it, against the claim's capacity, and
// none while the volume's filesystem is larger than its claim (it does not
// enforce the claim's size). The test cluster's local volumes are of the
// second kind; a claim whose capacity the test raises past the filesystem's
// size plays the first.
func TestHomeUsage(t *testing.T) {
	env := kubetest.Cluster(t)
	rt := env.Runtime(t, kube.Options{})
	ctx := t.Context()
	id := runtime.NewID()
	if err := rt.Create(ctx, runtime.Spec{ID: id}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	claims := env.Client.CoreV1().PersistentVolumeClaims(env.Namespace)
	setCapacity := func(q string) {
		t.Helper()
		pvc, err := claims.Get(ctx, kube.ClaimName(id), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(q)}
		if _, err := claims.UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		pvc, err := claims.Get(ctx, kube.ClaimName(id), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pvc.Status.Phase == corev1.ClaimBound {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	setCapacity("1Pi")
	// The first figure waits for the link server to serve.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var u *runtime.HomeUsage
	for {
		in, err := rt.Inspect(wctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if u = in.Home; u != nil {
			break
		}
		select {
		case <-wctx.Done():
			env.DumpLogs(t)
			t.Fatalf("no home usage for %s", id)
		case <-time.After(300 * time.Millisecond):
		}
	}
	dir, err := env.HomeDir(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	// Used+Free is the filesystem less its reserved blocks, whatever else
	// writes to it meanwhile.
	if want := int64(st.Blocks-st.Bfree+st.Bavail) * int64(st.Bsize); u.Quota != 1<<50 || u.Used <= 0 || u.Used+u.Free != want {
		t.Errorf("home usage %+v, want quota %d and used+free %d (the volume's filesystem)", u, int64(1<<50), want)

	}

	setCapacity(kubetest.HomeSize)
	if in, err := rt.Inspect(ctx, id); err != nil || in.Home != nil {
		t.Errorf("a local volume larger than its claim reports %+v (%v)", in.Home, err)
	}
}
