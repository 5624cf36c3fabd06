package runtimetest

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/agentapi"
	"atelier/internal/runtime"
)

// probeScript, typed into a desktop's terminal, tries what an attacker in
// the desktop would and writes what happened to ~/sandbox.txt.
const probeScript = `{ unshare -r true; echo "unshare=$?"; mount -t tmpfs atelier /tmp; echo "mount=$?"; ` +
	`perl -e 'print "keyctl=", (syscall(250, 0, -3, 0) < 0 ? "$!" : "ok"), "\n"'; ` +
	`grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ` +
	`echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ,)"; } > ~/sandbox.txt 2>&1; echo done >> ~/sandbox.txt`

// ProbeSandbox types probeScript into desktop id's terminal and returns its
// report: each "key=value" or "Key: value" line by key, and the whole text.
func ProbeSandbox(t testing.TB, rt runtime.Runtime, id string) (map[string]string, string) {
	t.Helper()
	RunInTerminal(t, rt, id, probeScript)
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for !strings.HasSuffix(out, "done\n") {
		if time.Now().After(deadline) {
			t.Fatalf("~/sandbox.txt after 30s: %q", out)
		}
		time.Sleep(100 * time.Millisecond)
		out = HomeFiles(t, rt, id)["sandbox.txt"]
	}
	return ParseProbe(out), out
}

// ParseProbe reads probeScript's report.
func ParseProbe(out string) map[string]string {
	got := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			k, v, ok = strings.Cut(line, ":")
		}
		if ok && !strings.ContainsAny(k, " \t") {
			got[k] = strings.TrimSpace(v)
		}
	}
	return got
}

// CheckSandbox: from inside desktop id, typed into its terminal, no user
// namespace can be made, nothing mounted, the keyring is out of reach; no
// capability, no_new_privs and a seccomp filter hold; and the only network
// interface is the desktop's own loopback.
func CheckSandbox(t testing.TB, rt runtime.Runtime, id string) {
	t.Helper()
	got, out := ProbeSandbox(t, rt, id)
	t.Logf("inside desktop %s:\n%s", id, out)
	fail := func(k string) bool { v := got[k]; return v != "" && v != "0" && v != "127" }
	if !fail("unshare") || !strings.Contains(out, "unshare failed") {
		t.Errorf("unshare -r was not refused (unshare=%q)", got["unshare"])
	}
	if !fail("mount") {
		t.Errorf("mount was not refused (mount=%q)", got["mount"])
	}
	for k, want := range map[string]string{
		"keyctl": "Operation not permitted", "CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2", "ifaces": "lo,",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}

// CheckNotRedirected: desktop a, which owns its run dir (a host path given
// by runDir), plants links to desktop b's sockets there, typed into its
// terminal, then swaps them in and out in a tight loop; the runtime's Dial
// must never reach b: every connection it makes answers as a (its size,
// which must differ from b's), over the agent and over VNC. A hard link to
// b's sockets, which a's processes cannot make, is made by the test: the
// listener's credentials refuse it.
func CheckNotRedirected(t testing.TB, rt runtime.Runtime, a, b string, runDir func(id string) string) {
	t.Helper()
	ends := []runtime.Endpoint{runtime.EndpointAgent, runtime.EndpointVNC}
	want := map[runtime.Endpoint]string{}
	for _, e := range ends {
		sa, err := identify(t, rt, a, e)
		if err != nil {
			t.Fatalf("%s of %s before the attack: %v", e, a, err)
		}
		sb, err := identify(t, rt, b, e)
		if err != nil {
			t.Fatalf("%s of %s before the attack: %v", e, b, err)
		}
		if sa == sb {
			t.Fatalf("desktops %s and %s both answer %s; the test could not tell them apart", a, b, sa)
		}
		want[e] = sa
	}
	// dial dials a's endpoints n times, checking that what answers is a,
	// and returns how many connected and how many were refused.
	dial := func(n int) (ok, refused int) {
		for range n {
			for _, e := range ends {
				got, err := identify(t, rt, a, e)
				if err != nil {
					refused++
					continue
				}
				ok++
				if got != want[e] {
					t.Fatalf("the fleet dialled %s of %s and reached a desktop of %s: another desktop (%s is %s)", e, a, got, a, want[e])
				}
			}
		}
		return ok, refused
	}

	brun, run := runDir(b), desktop.RunDirPath
	RunInTerminal(t, rt, a, fmt.Sprintf(`cd %s && ln agent.sock .ragent.sock && ln vnc.sock .rvnc.sock && `+
		`for n in agent.sock vnc.sock; do ln -sfn %s/$n .l$n && mv -T .l$n $n; done; `+
		`ln %s/agent.sock hard.sock; echo "hard=$?" > ~/planted; cd`, run, brun, brun))
	WaitHomeFile(t, rt, a, "planted", "hard=1\n")
	if ok, _ := dial(10); ok != 0 {
		t.Errorf("%d dials through planted links connected", ok)
	}

	arun := runDir(a)
	for _, e := range ends {
		// The test stands in for an attacker who could name b's sockets.
		relink(t, path.Join(brun, string(e)), path.Join(arun, string(e)))
	}
	if ok, _ := dial(10); ok != 0 {
		t.Errorf("%d dials through hard links to %s's sockets connected", ok, b)
	}
	// a's own sockets back, so that the fleet can type into a again.
	for _, e := range ends {
		relink(t, path.Join(arun, ".r"+string(e)), path.Join(arun, string(e)))
	}

	// The loop swaps the links in and its own sockets back, for 12 s; the
	// dials race it meanwhile.
	RunInTerminal(t, rt, a, fmt.Sprintf(`cd %s && (perl -e 'my $o = shift; my $end = time + 12; `+
		`open(my $f, ">", "$ENV{HOME}/race-on"); close $f; `+
		`while (time < $end) { for my $n ("agent.sock", "vnc.sock") { symlink("$o/$n", ".l$n"); rename(".l$n", $n); link(".r$n", ".h$n"); rename(".h$n", $n); } } `+
		`for my $n ("agent.sock", "vnc.sock") { rename(".r$n", $n) }' %s &); cd`, run, brun))
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(homeNames(t, rt, a), "race-on") {
		if time.Now().After(deadline) {
			t.Fatal("the swap loop did not start within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var ok, refused int
	for start := time.Now(); time.Since(start) < 8*time.Second; {
		o, r := dial(5)
		ok, refused = ok+o, r+refused
	}
	t.Logf("while a swapped links in a loop: %d dials reached %s itself, %d were refused, none reached %s", ok, a, refused, b)
	if refused == 0 {
		t.Errorf("no dial was refused while the links were swapped: the race was not exercised")
	}
}

// relink replaces name with a hard link to target.
func relink(t testing.TB, target, name string) {
	t.Helper()
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(target, name); err != nil {
		t.Fatal(err)
	}
}

func homeNames(t testing.TB, rt runtime.Runtime, id string) []string {
	var names []string
	for n := range HomeFiles(t, rt, id) {
		names = append(names, n)
	}
	return names
}

// identify dials endpoint e of desktop id through the runtime and returns
// the size of the screen that answers: the agent's status, or the VNC
// server's framebuffer.
func identify(t testing.TB, rt runtime.Runtime, id string, e runtime.Endpoint) (string, error) {
	conn, err := rt.Dial(t.Context(), id, e)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if e == runtime.EndpointVNC {
		return vncSize(conn)
	}
	if _, err := io.WriteString(conn, `{"v":1,"action":"status"}`+"\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return "", err
	}
	var resp agentapi.Response
	if err := json.Unmarshal(line, &resp); err != nil || resp.Status == nil {
		return "", fmt.Errorf("status: %q (%v)", line, err)
	}
	return fmt.Sprintf("%dx%d", resp.Status.Width, resp.Status.Height), nil
}

// vncSize runs the RFB 3.8 handshake, without authentication, up to the
// server's init message, and returns its framebuffer's size.
func vncSize(c net.Conn) (string, error) {
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, "RFB 003.008\n"); err != nil {
		return "", err
	}
	if _, err := io.ReadFull(c, buf[:1]); err != nil || buf[0] == 0 {
		return "", fmt.Errorf("security types: %d, %v", buf[0], err)
	}
	types := make([]byte, buf[0])
	if _, err := io.ReadFull(c, types); err != nil {
		return "", err
	}
	if !slices.Contains(types, 1) {
		return "", fmt.Errorf("security types %v: no None", types)
	}
	if _, err := c.Write([]byte{1}); err != nil {
		return "", err
	}
	if _, err := io.ReadFull(c, buf[:4]); err != nil || binary.BigEndian.Uint32(buf) != 0 {
		return "", errors.New("security handshake failed")
	}
	if _, err := c.Write([]byte{1}); err != nil { // ClientInit: shared
		return "", err
	}
	if _, err := io.ReadFull(c, buf[:4]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%dx%d", binary.BigEndian.Uint16(buf), binary.BigEndian.Uint16(buf[2:])), nil
}
