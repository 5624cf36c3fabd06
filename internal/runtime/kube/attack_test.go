package kube_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"atelier/internal/desklink"
	"atelier/internal/runtime"
	"atelier/internal/runtime/kube"
	"atelier/internal/runtime/kube/kubetest"
	"atelier/internal/runtime/runtimetest"
)

// statusLine is a protocol v1 request an attacker would send.
const statusLine = `{"v":1,"id":"1","action":"status"}` + "\n"

// answers reports whether what came back is the agent's or the VNC
// server's: any protocol v1 reply, or an RFB banner (spaces aside: the
// attacking pod prints what it got without them).
func answers(b []byte) bool {
	b = bytes.ReplaceAll(b, []byte(" "), nil)
	return bytes.Contains(b, []byte(`"v":1`)) || bytes.Contains(b, []byte("RFB00"))
}

// probe connects to addr (through TLS if cfg is set), sends statusLine and
// returns what came back within a few seconds.
func probe(t *testing.T, addr string, cfg *tls.Config) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if cfg != nil {
		c = tls.Client(c, cfg)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(statusLine))
	b, _ := io.ReadAll(c)
	return b
}

// TestLinkRefusesWithoutCredential: with the desktop running and its link
// answering the fleet, nothing of it answers a peer without the fleet's
// key: not a plain connection, not TLS without a certificate, not another
// fleet's certificate, not a desktop's own certificate; from this process
// and from another pod of the cluster.
func TestLinkRefusesWithoutCredential(t *testing.T) {
	env := kubetest.Cluster(t)
	rt := env.Runtime(t, kube.Options{FleetCIDRs: []string{"10.88.7.1/32"}})
	ctx := t.Context()
	id, other := runtime.NewID(), runtime.NewID()
	for _, d := range []string{id, other} {
		if err := rt.Create(ctx, runtime.Spec{ID: d}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitReady(t, rt, id)

	pod, err := env.Client.CoreV1().Pods(env.Namespace).Get(ctx, "atelier-"+strings.ReplaceAll(id, "_", "-"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(pod.Status.PodIP, fmt.Sprint(desklink.Port))
	secret := func(d string) *corev1.Secret {
		s, err := env.Client.CoreV1().Secrets(env.Namespace).Get(ctx, "atelier-"+strings.ReplaceAll(d, "_", "-"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	deskCert := secret(id).Data[desklink.CertFile]
	otherDesk := secret(other).Data
	stranger, err := desklink.NewClientPair()
	if err != nil {
		t.Fatal(err)
	}

	// The control: the fleet's own configuration gets the agent's answer,
	// so the refusals below are the credential's doing.
	fleetSecret, err := env.Client.CoreV1().Secrets(env.Namespace).Get(ctx, "atelier-link-atelier", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fleet := desklink.Pair{Cert: fleetSecret.Data[corev1.TLSCertKey], Key: fleetSecret.Data[corev1.TLSPrivateKeyKey]}
	good, err := desklink.ClientConfig(fleet, id, deskCert, desklink.ProtoAgent)
	if err != nil {
		t.Fatal(err)
	}
	if b := probe(t, addr, good); !answers(b) || !bytes.Contains(b, []byte(`"ready":true`)) {
		t.Fatalf("the fleet's own credential gets %q, want the agent's status", b)
	}
	vnc, err := desklink.ClientConfig(fleet, id, deskCert, desklink.ProtoVNC)
	if err != nil {
		t.Fatal(err)
	}
	if b := probe(t, addr, vnc); !answers(b) {
		t.Fatalf("the fleet's own credential gets %q from VNC, want an RFB banner", b)
	}

	withCert := func(p desklink.Pair, proto string) *tls.Config {
		cfg, err := desklink.ClientConfig(p, id, deskCert, proto)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	noCert := withCert(fleet, desklink.ProtoAgent)
	noCert.Certificates = nil
	for name, cfg := range map[string]*tls.Config{
		"plain TCP":                  nil,
		"TLS without a certificate":  noCert,
		"another fleet's cert":       withCert(stranger, desklink.ProtoAgent),
		"another fleet's cert (VNC)": withCert(stranger, desklink.ProtoVNC),
		"another desktop's own cert": withCert(desklink.Pair{Cert: otherDesk[desklink.CertFile], Key: otherDesk[desklink.KeyFile]}, desklink.ProtoAgent),
		"skipping server checks":     {InsecureSkipVerify: true, NextProtos: []string{desklink.ProtoVNC}},
	} {
		if b := probe(t, addr, cfg); answers(b) || len(b) > 0 && cfg != nil {
			t.Errorf("%s: the link answered %q", name, b)
		}
	}

	// Another pod of the cluster, a plain Debian with bash's /dev/tcp,
	// tries the agent's protocol and RFB on the link's port.
	script := fmt.Sprintf(`for i in 1 2; do exec 3<>/dev/tcp/%s/%d || { echo connect-failed; continue; }; printf '%%s' '%s' >&3; echo "got: $(timeout 5 cat <&3 | head -c 300 | od -An -c | tr -d ' \n')"; exec 3<&-; done; echo probe-done`,
		pod.Status.PodIP, desklink.Port, strings.TrimSpace(statusLine))
	logs := runPod(t, env, "attacker", []string{"bash", "-c", script})
	if !strings.Contains(logs, "probe-done") {
		t.Fatalf("the attacking pod did not finish: %q", logs)
	}
	if strings.Contains(logs, "connect-failed") {
		t.Fatalf("the attacking pod could not even connect (the check below would prove nothing): %q", logs)
	}
	if answers([]byte(logs)) {
		t.Errorf("another pod got an answer from the desktop: %s", logs)
	}
	t.Logf("what the link said to another pod:\n%s", logs)
}

// runPod runs a pod of the base image to completion and returns its log.
func runPod(t *testing.T, env *kubetest.Env, name string, cmd []string) string {
	t.Helper()
	ctx := t.Context()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: kubetest.BaseImage, ImagePullPolicy: corev1.PullNever, Command: cmd}},
		},
	}
	pods := env.Client.CoreV1().Pods(env.Namespace)
	if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: %s after 2 minutes", name, got.Status.Phase)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, err := pods.GetLogs(name, &corev1.PodLogOptions{}).DoRaw(context.WithoutCancel(ctx))
	if err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	return string(b)
}

// TestObjects: what a desktop is made of, as the API server holds it: the
// policy lets only the fleet in and nothing out, the credential is the
// link container's alone, the desktop has its limits, and every object
// carries the labels a restarted fleet finds it by.
func TestObjects(t *testing.T) {
	env := kubetest.Cluster(t)
	rt := env.Runtime(t, kube.Options{FleetPods: map[string]string{"app.kubernetes.io/name": "atelier"}, Fleet: "objects"})
	ctx := t.Context()
	id := runtime.NewID()
	if err := rt.Create(ctx, runtime.Spec{ID: id, Resources: runtime.Resources{MemoryBytes: 1 << 30, CPUs: 1.5}}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	name := "atelier-" + strings.ReplaceAll(id, "_", "-")
	sel := metav1.ListOptions{LabelSelector: kube.LabelSession + "=" + id + "," + kube.LabelFleet + "=objects"}

	pols, err := env.Client.NetworkingV1().NetworkPolicies(env.Namespace).List(ctx, sel)
	if err != nil || len(pols.Items) != 1 {
		t.Fatalf("network policies of %s: %v %v", id, pols, err)
	}
	np := pols.Items[0].Spec
	if np.PodSelector.MatchLabels[kube.LabelSession] != id {
		t.Errorf("policy selects %v, want the desktop's pod", np.PodSelector)
	}
	if !slices.Contains(np.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policy types %v, want ingress and egress", np.PolicyTypes)
	}
	if len(np.Egress) != 0 {
		t.Errorf("policy lets the desktop out: %+v", np.Egress)
	}
	if len(np.Ingress) != 1 || len(np.Ingress[0].From) != 1 || np.Ingress[0].From[0].PodSelector == nil ||
		np.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "atelier" ||
		len(np.Ingress[0].Ports) != 1 || np.Ingress[0].Ports[0].Port.IntValue() != desklink.Port {
		t.Errorf("policy ingress %+v, want the fleet's pods on the link port alone", np.Ingress)
	}

	pod, err := env.Client.CoreV1().Pods(env.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("the desktop's pod mounts a service account token")
	}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		mountsLink := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "link" })
		if mountsLink != (c.Name == "link") {
			t.Errorf("container %s mounts the credential: %v", c.Name, mountsLink)
		}
		if c.Name == "desktop" {
			if got := c.Resources.Limits.Memory().Value(); got != 1<<30 {
				t.Errorf("desktop memory limit %d, want %d", got, 1<<30)
			}
			if got := c.Resources.Limits.Cpu().MilliValue(); got != 1500 {
				t.Errorf("desktop CPU limit %dm, want 1500m", got)
			}
		}
	}
	claims, err := env.Client.CoreV1().PersistentVolumeClaims(env.Namespace).List(ctx, sel)
	if err != nil || len(claims.Items) != 1 || claims.Items[0].Name != kube.ClaimName(id) {
		t.Fatalf("claims of %s: %v %v", id, claims, err)
	}
	if sc := claims.Items[0].Spec.StorageClassName; sc == nil || *sc != kubetest.StorageClass {
		t.Errorf("claim's storage class %v, want %s", sc, kubetest.StorageClass)
	}

	// Re-adoption: a new runtime of the same fleet lists the desktop, one
	// of another fleet in the namespace does not.
	again := env.Runtime(t, kube.Options{Fleet: "objects"})
	list, err := again.List(ctx)
	if err != nil || !slices.ContainsFunc(list, func(in runtime.Instance) bool { return in.ID == id }) {
		t.Errorf("a restarted fleet lists %+v (%v), want %s", list, err, id)
	}
	stranger := env.Runtime(t, kube.Options{Fleet: "stranger"})
	if list, _ := stranger.List(ctx); len(list) != 0 {
		t.Errorf("another fleet lists %+v", list)
	}
	if _, err := stranger.Inspect(ctx, id); err == nil {
		t.Error("another fleet inspects the desktop")
	}
}
