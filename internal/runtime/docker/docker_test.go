package docker_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"atelier/internal/runtime"
	"atelier/internal/runtime/docker"
	"atelier/internal/runtime/docker/dockertest"
	"atelier/internal/runtime/runtimetest"
	"atelier/internal/snapshot"
	"atelier/internal/store"
)

func TestConformance(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime { return newRuntime(t) })
}

// execIn runs cmd in desktop id's container as user and returns its output
// and exit code. Tests only: the fleet never execs into a desktop.
func execIn(t testing.TB, c *client.Client, id, user string, cmd ...string) (string, int) {
	t.Helper()
	ctx := t.Context()
	ex, err := c.ExecCreate(ctx, docker.ContainerName(id), client.ExecCreateOptions{
		User: user, Cmd: cmd, AttachStdout: true, AttachStderr: true, TTY: true,
	})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	att, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{TTY: true})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	out, _ := io.ReadAll(att.Reader)
	att.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, err := c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			t.Fatalf("exec %q: %v", cmd, err)
		}
		if !in.Running {
			return strings.ReplaceAll(string(out), "\r\n", "\n"), in.ExitCode
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec %q still runs after its output ended", cmd)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A file typed into a desktop's terminal survives a fleet restart: a new
// runtime on the same data dir lists the desktop, reaches its agent, and
// finds the file in its home.
func TestReadoptionAfterFleetRestart(t *testing.T) {
	data := t.TempDir()
	rt := newRuntimeIn(t, data)
	id := create(t, rt, runtime.Spec{Label: "readopt"})
	runtimetest.WaitReady(t, rt, id)
	runtimetest.RunInTerminal(t, rt, id, "echo kept > ~/kept")
	runtimetest.WaitHomeFile(t, rt, id, "kept", "kept\n")
	rt.Close()

	rt2 := newRuntimeIn(t, data)
	list, err := rt2.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(in runtime.Instance) bool { return in.ID == id })
	if i < 0 || !list[i].Running {
		t.Fatalf("the restarted fleet's List %+v does not show %s running", list, id)
	}
	runtimetest.WaitReady(t, rt2, id)
	if got := runtimetest.HomeFiles(t, rt2, id)["kept"]; got != "kept\n" {
		t.Errorf("after the restart, ~/kept = %q", got)
	}
}

// TestSwayCrash: the engine runs no healthcheck in a desktop (an exec every
// 5 s cost it about 0.1 s of CPU each); the runtime tells a degraded
// desktop by its ready file: when sway dies, the desktop is degraded until
// the agent has it back, without the container restarting.
func TestSwayCrash(t *testing.T) {
	rt := newRuntime(t)
	id := create(t, rt, runtime.Spec{})
	runtimetest.WaitReady(t, rt, id)
	c, _ := dockertest.Engine(t)
	ins, err := c.ContainerInspect(t.Context(), docker.ContainerName(id), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if hc := ins.Container.Config.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"NONE"}) || ins.Container.State.Health != nil {
		t.Errorf("healthcheck %+v, health %+v: want none", hc, ins.Container.State.Health)
	}
	before := runtimetest.WaitInspect(t, rt, id, "running", func(in runtime.Instance) bool { return in.Running })
	if before.Degraded {
		t.Fatalf("a ready desktop is degraded: %+v", before)
	}
	execIn(t, c, id, "operator", "bash", "-c", `for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = sway ] && kill -KILL ${p#/proc/}; done`)
	runtimetest.WaitInspect(t, rt, id, "degraded", func(in runtime.Instance) bool { return in.Running && in.Degraded })
	runtimetest.WaitReady(t, rt, id)
	after := runtimetest.WaitInspect(t, rt, id, "healthy", func(in runtime.Instance) bool { return in.Running && !in.Degraded })
	if !after.StartedAt.Equal(before.StartedAt) || after.Restarts != before.Restarts {
		t.Errorf("the container restarted (%+v, was %+v): the agent should have handled it", after, before)
	}
}

// Limits and confinement are in the container's configuration and in force
// inside it.
func TestLimitsInForce(t *testing.T) {
	c, _ := dockertest.Engine(t)
	rt := newRuntime(t)
	def := create(t, rt, runtime.Spec{})
	custom := create(t, rt, runtime.Spec{Resources: runtime.Resources{MemoryBytes: 1 << 30, CPUs: 0.5, PIDs: 300}})
	for _, tc := range []struct {
		id     string
		mem    int64
		nano   int64
		pids   int64
		cgroup string
	}{
		{def, 4 << 30, 2e9, 1024, "1024"},
		{custom, 1 << 30, 5e8, 300, "300"},
	} {
		res, err := c.ContainerInspect(t.Context(), docker.ContainerName(tc.id), client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hc := res.Container.HostConfig
		if hc.Memory != tc.mem || hc.NanoCPUs != tc.nano || hc.PidsLimit == nil || *hc.PidsLimit != tc.pids {
			t.Errorf("%s: memory %d, nano CPUs %d, pids %v; want %d, %d, %d", tc.id, hc.Memory, hc.NanoCPUs, hc.PidsLimit, tc.mem, tc.nano, tc.pids)
		}
		if !slices.Equal(hc.CapDrop, []string{"ALL"}) || len(hc.CapAdd) != 0 {
			t.Errorf("%s: cap drop %v, cap add %v; want ALL and none", tc.id, hc.CapDrop, hc.CapAdd)
		}
		if !slices.Contains(hc.SecurityOpt, "no-new-privileges:true") || hc.Privileged {
			t.Errorf("%s: security options %v, privileged %v", tc.id, hc.SecurityOpt, hc.Privileged)
		}
		if hc.NetworkMode != "none" || len(hc.PortBindings) != 0 {
			t.Errorf("%s: network %q, ports %v; want none and none", tc.id, hc.NetworkMode, hc.PortBindings)
		}
		// In force: the kernel's view from inside the desktop.
		out, code := execIn(t, c, tc.id, "", "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
		if code != 0 || strings.TrimSpace(out) != tc.cgroup {
			t.Errorf("%s: pids.max inside = %q (exit %d), want %s", tc.id, out, code, tc.cgroup)
		}
		out, _ = execIn(t, c, tc.id, "", "grep", "^Cap", "/proc/1/status")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] != "CapBnd:" && strings.Trim(f[1], "0") != "" {
				t.Errorf("%s: the desktop's process has capabilities: %s", tc.id, line)
			}
		}
		if out, _ := execIn(t, c, tc.id, "", "id", "-u"); strings.TrimSpace(out) != "1000" {
			t.Errorf("%s: the desktop runs as uid %q, want 1000", tc.id, out)
		}
	}
}

// probe tries a TCP connection from inside desktop id and returns bash's
// verdict.
func probe(t *testing.T, c *client.Client, id, addr string) string {
	host, port, _ := strings.Cut(addr, ":")
	out, _ := execIn(t, c, id, "", "bash", "-c", "timeout 5 bash -c 'echo > /dev/tcp/"+host+"/"+port+"' 2>&1 && echo connected")
	return strings.TrimSpace(out)
}

// A desktop has no network: no interface but loopback, no route to another
// desktop or to the host where the fleet listens. The control, a container
// on Docker's default bridge, reaches the host with the same probe (the
// port is closed: "refused" proves the packet arrived).
func TestDesktopsCannotReachEachOther(t *testing.T) {
	c, ref := dockertest.Engine(t)
	rt := newRuntime(t)
	a := create(t, rt, runtime.Spec{})
	b := create(t, rt, runtime.Spec{})

	// The control, on the default bridge; its gateway is the host.
	yes := true
	ctl, err := c.ContainerCreate(t.Context(), client.ContainerCreateOptions{
		Config:     &container.Config{Image: ref, Entrypoint: []string{"sleep", "60"}, Labels: map[string]string{"dev.atelier.test": "control"}},
		HostConfig: &container.HostConfig{AutoRemove: true, Init: &yes},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.ContainerRemove(context.Background(), ctl.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	if _, err := c.ContainerStart(t.Context(), ctl.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	ctlIns, err := c.ContainerInspect(t.Context(), ctl.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep := ctlIns.Container.NetworkSettings.Networks["bridge"]
	if ep == nil || !ep.Gateway.IsValid() {
		t.Fatalf("the control container has no gateway on the default bridge: %+v", ctlIns.Container.NetworkSettings.Networks)
	}
	gateway := ep.Gateway.String()

	ins, err := c.ContainerInspect(t.Context(), docker.ContainerName(b), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, ep := range ins.Container.NetworkSettings.Networks {
		if ep.IPAddress.IsValid() {
			t.Errorf("desktop %s has address %v on network %s", b, ep.IPAddress, name)
		}
	}
	if out, _ := execIn(t, c, a, "", "ls", "/sys/class/net"); strings.Fields(out)[0] != "lo" || len(strings.Fields(out)) != 1 {
		t.Errorf("desktop %s has network interfaces %q, want only lo", a, out)
	}
	got := probe(t, c, a, gateway+":8090")
	if !strings.Contains(got, "unreachable") {
		t.Errorf("desktop → host %s:8090: %q, want network unreachable", gateway, got)
	}

	ex, err := c.ExecCreate(t.Context(), ctl.ID, client.ExecCreateOptions{
		Cmd: []string{"bash", "-c", "timeout 5 bash -c 'echo > /dev/tcp/" + gateway + "/9' 2>&1; true"}, AttachStdout: true, TTY: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	att, err := c.ExecAttach(t.Context(), ex.ID, client.ExecAttachOptions{TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(att.Reader)
	att.Close()
	if !strings.Contains(string(out), "refused") {
		t.Errorf("control on the default bridge → host %s:9: %q, want connection refused (the probe proves nothing otherwise)", gateway, out)
	}
}

// newSnapshots returns a snapshot store on a fresh database, committing
// images through images if not nil.
func newSnapshots(t testing.TB, images snapshot.Images) *snapshot.Store {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(t.Context(), filepath.Join(dir, "atelier.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := snapshot.New(snapshot.Options{DB: db, Dir: filepath.Join(dir, "snapshots"), Images: images})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A clone from a snapshot has the home of its source and the files
// installed in its system; the snapshot cannot be deleted while its image
// serves a desktop, and can once it does not.
func TestCloneFromSnapshot(t *testing.T) {
	c, _ := dockertest.Engine(t)
	rt := newRuntime(t)
	snaps := newSnapshots(t, rt)
	src := create(t, rt, runtime.Spec{Label: "source"})
	runtimetest.WaitReady(t, rt, src)
	runtimetest.RunInTerminal(t, rt, src, "mkdir -p ~/work && echo cloned > ~/work/c && ln -s work/c ~/link")
	runtimetest.WaitHomeFile(t, rt, src, "work/c", "cloned\n")
	// Installed as root into the system, as a package would be.
	if out, code := execIn(t, c, src, "root", "sh", "-c", "printf '#!/bin/sh\\necho hello from the image\\n' > /usr/local/bin/atelier-hello && chmod 755 /usr/local/bin/atelier-hello"); code != 0 {
		t.Fatalf("install into the source: %q (exit %d)", out, code)
	}
	// A temporary file is not part of the system.
	if out, code := execIn(t, c, src, "", "sh", "-c", "echo scratch > /tmp/scratch"); code != 0 {
		t.Fatalf("write /tmp/scratch in the source: %q (exit %d)", out, code)
	}

	sn, err := snaps.Take(t.Context(), rt, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.ImageRemove(context.Background(), sn.Image, client.ImageRemoveOptions{Force: true}) })
	if sn.Image != docker.SnapshotRepo+":"+sn.ID {
		t.Errorf("snapshot image %q", sn.Image)
	}
	home, image, err := snaps.OpenSnapshot(t.Context(), sn.ID)
	if err != nil {
		t.Fatal(err)
	}
	clone := runtime.NewID()
	err = rt.Create(t.Context(), runtime.Spec{ID: clone, Label: "clone", HomeArchive: home, Image: image})
	home.Close()
	if err != nil {
		t.Fatalf("Create from snapshot: %v", err)
	}
	if err := rt.Start(t.Context(), clone); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitReady(t, rt, clone)
	files := runtimetest.HomeFiles(t, rt, clone)
	if files["work/c"] != "cloned\n" {
		t.Errorf("clone's ~/work/c = %q, want %q", files["work/c"], "cloned\n")
	}
	if out, code := execIn(t, c, clone, "", "atelier-hello"); code != 0 || strings.TrimSpace(out) != "hello from the image" {
		t.Errorf("clone's atelier-hello: %q (exit %d)", out, code)
	}
	if _, code := execIn(t, c, clone, "", "test", "-e", "/tmp/scratch"); code != 1 {
		t.Errorf("test -e /tmp/scratch in the clone: exit %d, want 1: temporary files are not cloned", code)
	}
	// The clone's home belongs to the desktop user: it can write there.
	runtimetest.RunInTerminal(t, rt, clone, "echo mine > ~/work/mine && readlink ~/link > ~/linked")
	runtimetest.WaitHomeFile(t, rt, clone, "linked", "work/c\n")

	if err := snaps.Delete(t.Context(), sn.ID); err == nil {
		t.Error("deleted the snapshot whose image a desktop runs from")
	} else if _, err := snaps.Get(t.Context(), sn.ID); err != nil {
		t.Errorf("a refused Delete removed the snapshot: %v", err)
	}
	if err := rt.Remove(t.Context(), clone, true); err != nil {
		t.Fatal(err)
	}
	if err := snaps.Delete(t.Context(), sn.ID); err != nil {
		t.Fatalf("Delete once no desktop uses it: %v", err)
	}
	if _, err := c.ImageInspect(t.Context(), sn.Image); err == nil {
		t.Errorf("image %s outlived its snapshot", sn.Image)
	}
}

// A hostile home archive is refused whole: no container, no volume, no
// run dir is left behind.
func TestHostileArchiveChangesNothing(t *testing.T) {
	c, _ := dockertest.Engine(t)
	rt := newRuntime(t)
	id := runtime.NewID()
	hostile := tarOf(t, "ok", "fine", "../escape", "x")
	err := rt.Create(t.Context(), runtime.Spec{ID: id, HomeArchive: hostile})
	if err == nil || !strings.Contains(err.Error(), `"../escape"`) {
		t.Fatalf("Create with a hostile archive: %v, want a refusal naming ../escape", err)
	}
	if _, err := rt.Inspect(t.Context(), id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("after a refused Create, Inspect: %v", err)
	}
	if _, err := c.VolumeInspect(t.Context(), docker.VolumeName(id), client.VolumeInspectOptions{}); err == nil {
		t.Errorf("a refused Create left the volume %s", docker.VolumeName(id))
	}
}
