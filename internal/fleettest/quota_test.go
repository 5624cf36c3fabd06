package fleettest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

func TestHomeQuota(t *testing.T) { fleettest.EachRuntime(t, testHomeQuota) }

// testHomeQuota: a program in the desktop cannot write past the home's
// quota; the session reports the home's usage; the home and its quota
// survive stop and start, a fleet restart after which the home's
// filesystem must be mounted again (a host reboot), a snapshot and its
// clone; a purge leaves no image and no loop device.
func testHomeQuota(t *testing.T, runtime string) {
	fleettest.Requires(t, runtime, fleettest.HomeQuota)
	const quota = 128 << 20
	ctx := t.Context()
	p1 := fleettest.Serve(t, fleettest.Options{Token: token, Runtime: runtime, HomeQuota: quota})
	s, err := p1.Client.CreateSession(ctx, apitype.CreateSession{Label: "quota"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	home := p1.Home(s.ID)
	if s.Home == nil || s.Home.QuotaBytes != quota || s.Home.UsedBytes > 4<<20 || s.Home.FreeBytes < quota*3/4 {
		t.Fatalf("a new session's home: %+v, want %d bytes of quota, nearly all free", s.Home, quota)
	}

	// Twice the quota, from the desktop's terminal: the write fails part
	// way. The outcome is written down once the file is cut to 16 MiB: a
	// full home has no room for it.
	typeCommand(t, p1.Client, home, s.ID, "",
		`msg=$(head -c 256M /dev/zero 2>&1 >~/big); rc=$?; sz=$(stat -c %s ~/big); truncate -s 16M ~/big; echo "$rc $sz $msg" > ~/big.result`)
	got := waitResult(t, home, "big.result")
	var rc, size int64
	if _, err := fmt.Sscan(got, &rc, &size); err != nil || rc == 0 || size >= quota || size < quota/2 || !strings.Contains(got, "No space left on device") {
		t.Fatalf("writing 256 MiB into a home of 128 MiB: %q; want a failure (exit status, bytes written, message) after most of the quota", got)
	}
	used := func(c *client.Client) *apitype.SessionHome {
		t.Helper()
		got, err := c.Session(ctx, s.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		return got.Home
	}
	if h := used(p1.Client); h == nil || h.UsedBytes < 16<<20 || h.UsedBytes > 24<<20 || h.QuotaBytes != quota {
		t.Errorf("the session reports its home as %+v, want 16 MiB and a bit used of %d", h, quota)
	}

	// Stop and start: the files and the quota stay.
	if _, err := p1.Client.StopSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if h := used(p1.Client); h == nil || h.UsedBytes < 16<<20 {
		t.Errorf("a stopped session reports its home as %+v", h)
	}
	if _, err := p1.Client.StartSession(ctx, s.ID, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if h := used(p1.Client); h == nil || h.UsedBytes < 16<<20 || h.QuotaBytes != quota {
		t.Errorf("a restarted session reports its home as %+v", h)
	}

	// A host reboot: the fleet dies, the desktop stops, the home's
	// filesystem is unmounted. The next fleet mounts it again.
	if _, err := p1.Client.StopSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	p1.Kill(t)
	if err := home.FS().Unmount(); err != nil {
		t.Fatal(err)
	}
	p2 := fleettest.Serve(t, fleettest.Options{Token: token, Runtime: runtime, DataDir: p1.DataDir, HomeQuota: quota})
	if h := used(p2.Client); h == nil || h.UsedBytes < 16<<20 {
		t.Errorf("after a reboot and a fleet restart, the stopped session reports its home as %+v", h)
	}
	if _, err := p2.Client.StartSession(ctx, s.ID, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	typeCommand(t, p2.Client, home, s.ID, "", `head -c 256M /dev/zero >~/big2; rc=$?; rm ~/big2; echo "again $rc" > ~/again.result`)
	if got := waitResult(t, home, "again.result"); got != "again 1" {
		t.Errorf("past the quota after the restart: %q, want a failure", got)
	}

	// A snapshot and its clone carry the files, and the clone has a quota.
	sn, err := p2.Client.TakeSnapshot(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	clone, err := p2.Client.CreateSession(ctx, apitype.CreateSession{Label: "clone", SnapshotID: sn.ID}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p2.Home(clone.ID).ReadFile(t, "big.result"); err != nil || !strings.Contains(got, "No space left") {
		t.Errorf("the clone's ~/big.result: %q, %v", got, err)
	}
	if h := clone.Home; h == nil || h.QuotaBytes != quota || h.UsedBytes < 16<<20 {
		t.Errorf("the clone's home: %+v", h)
	}

	// Purge: no image, no loop device.
	for _, id := range []string{s.ID, clone.ID} {
		fs := p2.Home(id).FS()
		if devs, err := fs.LoopDevices(); err != nil || len(devs) != 1 {
			t.Errorf("the home of %s, mounted, has loop devices %v (%v), want one", id, devs, err)
		}
		if err := p2.Client.DeleteSession(ctx, id, true); err != nil {
			t.Fatal(err)
		}
		if ok, err := fs.Exists(); ok || err != nil {
			t.Errorf("the image of %s outlived its purge (%v)", id, err)
		}
		if devs, err := fs.LoopDevices(); err != nil || len(devs) != 0 {
			t.Errorf("after the purge of %s, loop devices %v (%v)", id, devs, err)
		}
	}
}

// waitResult waits for file name of home to hold a line, and returns it.
// Polling is bounded: the shell that writes it announces nothing.
func waitResult(t *testing.T, home fleettest.Home, name string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := home.ReadFile(t, name)
		if err == nil && strings.HasSuffix(got, "\n") {
			return strings.TrimSpace(got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("~/%s = %q (%v) after 60s", name, got, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
