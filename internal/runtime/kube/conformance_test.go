package kube_test

import (
	"os"
	"testing"

	"atelier/internal/runtime"
	"atelier/internal/runtime/kube"
	"atelier/internal/runtime/kube/kubetest"
	"atelier/internal/runtime/runtimetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

func TestConformance(t *testing.T) {
	runtimetest.RunWith(t, runtimetest.Options{PodNetwork: true}, func(t *testing.T) runtime.Runtime {
		return kubetest.Cluster(t).Runtime(t, kube.Options{})
	})
}
