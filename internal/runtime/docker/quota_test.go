package docker_test

import (
	"testing"

	"atelier/internal/runtime"
	"atelier/internal/runtime/docker"
	"atelier/internal/runtime/runtimetest"
)

// A home made without a quota (a plain named volume, by an older version
// or with none set) keeps working, without one, under a runtime that has
// a quota; a new home there gets a quota'd filesystem bound into its
// container, and a removed desktop's kept home is detached.
func TestHomeWithoutQuotaKept(t *testing.T) {
	data := t.TempDir()
	old := newRuntimeWith(t, docker.Options{DataDir: data})
	id := create(t, old, runtime.Spec{Label: "before quotas"})
	runtimetest.WaitReady(t, old, id)
	runtimetest.RunInTerminal(t, old, id, "echo from-before > ~/old")
	runtimetest.WaitHomeFile(t, old, id, "old", "from-before\n")
	if err := old.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}

	rt := newRuntimeIn(t, data)
	if err := rt.Start(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitReady(t, rt, id)
	if got := runtimetest.HomeFiles(t, rt, id)["old"]; got != "from-before\n" {
		t.Errorf("~/old = %q after the upgrade", got)
	}
	if in, err := rt.Inspect(t.Context(), id); err != nil || in.Home != nil {
		t.Errorf("a home without a quota reports %+v (%v)", in.Home, err)
	}
	if ok, _ := docker.Home(data, id).Exists(); ok {
		t.Error("a home without a quota got an image")
	}

	fresh := create(t, rt, runtime.Spec{Label: "with a quota"})
	if in, err := rt.Inspect(t.Context(), fresh); err != nil || in.Home == nil || in.Home.Quota != testQuota {
		t.Errorf("a new home under a quota: %+v (%v)", in.Home, err)
	}
	h := docker.Home(data, fresh)
	if err := rt.Remove(t.Context(), fresh, false); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.Exists(); !ok {
		t.Error("Remove without purge deleted the image")
	}
	if devs, err := h.LoopDevices(); err != nil || len(devs) != 0 {
		t.Errorf("a removed desktop's kept home has loop devices %v (%v)", devs, err)
	}
}
