// Package helm_test checks the chart deploy/helm/atelier with the Helm Go
// module, as `helm lint` and `helm template` would, without a cluster or
// a network.
package helm_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

const chartDir = "atelier"

func values(extra map[string]any) map[string]any {
	v := map[string]any{"apiToken": map[string]any{"value": "a-token-of-forty-characters-or-so-xxxxxx"}}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

func TestLint(t *testing.T) {
	lint := action.NewLint()
	lint.Strict = true
	lint.Namespace = "desks"
	res := lint.Run([]string{chartDir}, values(nil))
	for _, m := range res.Messages {
		t.Logf("lint: %s", m)
	}
	if len(res.Errors) > 0 || res.TotalChartsLinted != 1 {
		t.Fatalf("helm lint --strict: %d charts, errors %v", res.TotalChartsLinted, res.Errors)
	}
}

// render is `helm template atelier deploy/helm/atelier -n desks`, its
// objects decoded.
func render(t *testing.T, vals map[string]any) ([]runtime.Object, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := action.NewConfiguration()
	cfg.Releases = storage.Init(driver.NewMemory())
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName, install.Namespace, install.Replace = "atelier", "desks", true
	r, err := install.RunWithContext(t.Context(), ch, vals)
	if err != nil {
		return nil, err
	}
	rel, ok := r.(*release.Release)
	if !ok {
		t.Fatalf("release of type %T", r)
	}
	var objs []runtime.Object
	for doc := range strings.SplitSeq(rel.Manifest, "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("decode %q: %v", doc, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

func TestTemplate(t *testing.T) {
	objs, err := render(t, values(nil))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	var sts *appsv1.StatefulSet
	var role *rbacv1.Role
	var svc *corev1.Service
	for _, o := range objs {
		kinds = append(kinds, o.GetObjectKind().GroupVersionKind().Kind)
		switch o := o.(type) {
		case *appsv1.StatefulSet:
			sts = o
		case *rbacv1.Role:
			role = o
		case *corev1.Service:
			svc = o
		case *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
			t.Errorf("the chart grants cluster-wide rights: %T", o)
		}
	}
	slices.Sort(kinds)
	if want := []string{"Role", "RoleBinding", "Secret", "Service", "ServiceAccount", "StatefulSet"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	if sts == nil || role == nil || svc == nil {
		t.Fatal("no StatefulSet, Role or Service")
	}
	if *sts.Spec.Replicas != 1 || len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.Template.Spec.ServiceAccountName == "" {
		t.Errorf("fleet StatefulSet: replicas %d, claims %d, service account %q", *sts.Spec.Replicas, len(sts.Spec.VolumeClaimTemplates), sts.Spec.Template.Spec.ServiceAccountName)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range sts.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	if env["ATELIER_RUNTIME"].Value != "kube" || env["ATELIER_API_TOKEN"].ValueFrom == nil {
		t.Errorf("fleet env %v", env)
	}
	// The desktops' policies must let in exactly the fleet's pods.
	labels := sts.Spec.Template.Labels
	for kv := range strings.SplitSeq(env["ATELIER_KUBE_FLEET_PODS"].Value, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if labels[k] != v {
			t.Errorf("fleet pods %q: the fleet's pod has %s=%q", env["ATELIER_KUBE_FLEET_PODS"].Value, k, labels[k])
		}
	}
	// Desktops dial the Service's gateway port, which leads to the port
	// the fleet listens on: the one ATELIER_KUBE_GATEWAY names.
	gw := env["ATELIER_KUBE_GATEWAY"].Value
	var ported bool
	for _, p := range svc.Spec.Ports {
		if p.Name == "gateway" && gw == fmt.Sprintf("%s.desks.svc:%d", svc.Name, p.Port) {
			for _, cp := range sts.Spec.Template.Spec.Containers[0].Ports {
				ported = ported || cp.Name == p.TargetPort.StrVal && cp.ContainerPort == p.Port
			}
		}
	}
	if !ported {
		t.Errorf("gateway %q: not the Service's gateway port leading to the fleet's (service ports %+v)", gw, svc.Spec.Ports)
	}
	for _, rule := range role.Rules {
		if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") {
			t.Errorf("role rule %+v: wildcards", rule)
		}
		for _, res := range rule.Resources {
			if !slices.Contains([]string{"pods", "pods/log", "persistentvolumeclaims", "secrets", "networkpolicies"}, res) {
				t.Errorf("role grants %s, which the fleet does not manage", res)
			}
		}
	}
}

func TestTemplateIngress(t *testing.T) {
	objs, err := render(t, values(map[string]any{"ingress": map[string]any{"enabled": true, "host": "fleet.example",
		"tls": map[string]any{"enabled": true, "secretName": "fleet-tls"}}}))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(objs, func(o runtime.Object) bool { _, ok := o.(*networkingv1.Ingress); return ok })
	if i < 0 {
		t.Fatal("no Ingress with ingress.enabled")
	}
	ing := objs[i].(*networkingv1.Ingress)
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "fleet-tls" || ing.Spec.Rules[0].Host != "fleet.example" {
		t.Errorf("ingress %+v", ing.Spec)
	}
}

func TestTemplateRefusesNoToken(t *testing.T) {
	_, err := render(t, map[string]any{})
	if err == nil || !strings.Contains(err.Error(), "apiToken") {
		t.Errorf("a chart without a token rendered: %v", err)
	}
}
