package fleettest_test

import (
	"bytes"
	"crypto/sha256"
	hexenc "encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/cli"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

func TestFiles(t *testing.T) { fleettest.EachRuntime(t, testFiles) }

// testFiles: a file uploaded with atelier cp is the desktop's and opens in
// its terminal; a file the desktop writes comes back whole; every escape
// the desktop can plant (a link to /etc/shadow, a link to /, a link
// swapped in and out while the fleet reads and writes through it) and
// every path that leaves the home is refused; a full home refuses an
// upload and keeps no part of it; each operation is audited.
func testFiles(t *testing.T, runtime string) {
	fleettest.Requires(t, runtime, fleettest.HostHome)
	const quota = 96 << 20
	f := fleettest.New(t, fleettest.Options{Token: token, Runtime: runtime, HomeQuota: quota})
	ctx := t.Context()
	c := f.Client
	s, err := c.CreateSession(ctx, apitype.CreateSession{Label: "files"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	home := f.Home(s.ID)
	vars := map[string]string{"ATELIER_URL": f.URL, "ATELIER_API_TOKEN": token}
	cp := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		env := &cli.Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
		if err := cli.Run(ctx, append([]string{"cp"}, args...), env); err != nil {
			t.Fatalf("atelier cp %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}

	// Upload with the CLI; the desktop owns the file and its shell reads it.
	local := filepath.Join(t.TempDir(), "in.txt")
	content := "uploaded through the fleet\nline two ✓\n"
	os.WriteFile(local, []byte(content), 0o600)
	cp(local, s.ID+":")
	typeCommand(t, c, home, s.ID, "", `cat ~/in.txt > ~/out.txt; [ -O ~/in.txt ] && echo mine > ~/owner.txt; `+
		`printf 'written in the desktop\n' > ~/made.txt; ln -s /etc/shadow ~/shadow; ln -s / ~/root; mkdir ~/d; touch ~/d/x; `+
		`mkfifo ~/fifo; echo planted > ~/planted; (while [ ! -e ~/stop ]; do rm -rf ~/sw; mkdir ~/sw; echo inside > ~/sw/passwd; rm -rf ~/sw; ln -s /etc ~/sw; done; echo stopped > ~/stopped) &`)
	home.WaitFile(t, "out.txt", content)
	home.WaitFile(t, "owner.txt", "mine\n")
	// Every escape below is planted before the fleet is asked.
	home.WaitFile(t, "planted", "planted\n")

	// Download what the desktop wrote, with the CLI and the client.
	home.WaitFile(t, "made.txt", "written in the desktop\n")
	dl := filepath.Join(t.TempDir(), "made.txt")
	cp(s.ID+":made.txt", dl)
	if b, _ := os.ReadFile(dl); string(b) != "written in the desktop\n" {
		t.Fatalf("downloaded %q", b)
	}

	// Escapes: the desktop's links and paths that leave the home.
	for _, p := range []string{"shadow", "root/etc/shadow", "root/etc/passwd"} {
		if resp, err := c.GetFile(ctx, s.ID, p); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Errorf("GET %s: read %.40q", p, b)
		} else if !isCode(err, apitype.CodeBadPath) {
			t.Errorf("GET %s: %v, want bad_path", p, err)
		}
	}
	for _, p := range []string{"root/etc/atelier-pwned", "root/atelier-pwned", "root/tmp/atelier-pwned"} {
		if _, err := c.PutFile(ctx, s.ID, p, strings.NewReader("PWNED"), 5); !isCode(err, apitype.CodeBadPath) {
			t.Errorf("PUT %s: %v, want bad_path", p, err)
		}
	}
	// Escaped slashes reach the path parser whole: it refuses them.
	for _, p := range []string{"%2Fetc%2Fshadow", "..%2F..%2F..%2Fetc%2Fshadow", "d%2F..%2F..%2Fetc%2Fpasswd"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.URL+"/sessions/"+s.ID+"/files/"+p, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e apitype.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || e.Err.Code != apitype.CodeBadPath {
			t.Errorf("GET files/%s: %d %+v, want 400 bad_path", p, resp.StatusCode, e)
		}
	}
	if _, err := c.GetFile(ctx, s.ID, "fifo"); !isCode(err, apitype.CodeNotFile) {
		t.Errorf("GET of a fifo: %v, want not_a_file", err)
	}
	if _, err := c.GetFile(ctx, s.ID, "d"); !isCode(err, apitype.CodeNotFile) {
		t.Errorf("GET of a directory: %v, want not_a_file", err)
	}
	if err := c.DeleteFile(ctx, s.ID, "d"); !isCode(err, apitype.CodeNotEmpty) {
		t.Errorf("DELETE of a full directory: %v, want not_empty", err)
	}

	// The swap race, run by the desktop all along: reads land inside or
	// are refused, writes never leave the home. 200 rounds, or as many as
	// 20 s allow past the first 20 (a kube round dials the pod three
	// times; the race needs rounds, not minutes).
	var inside, refused int
	raceEnd := time.Now().Add(20 * time.Second)
	for round := 0; round < 200 && (round < 20 || time.Now().Before(raceEnd)); round++ {
		resp, err := c.GetFile(ctx, s.ID, "sw/passwd")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// Empty is the desktop's own file between its creation and
			// the write; anything else came from outside the home.
			if string(b) != "inside\n" && len(b) != 0 {
				t.Fatalf("read %.60q through a link swapped in by the desktop", b)
			}
			inside++
		} else if isCode(err, apitype.CodeBadPath) || isCode(err, apitype.CodeNotFound) {
			refused++
		} else {
			t.Fatalf("GET sw/passwd: %v", err)
		}
		c.PutFile(ctx, s.ID, "sw/atelier-pwned", strings.NewReader("x"), 1)
		c.ListDir(ctx, s.ID, "sw")
	}
	if _, err := c.PutFile(ctx, s.ID, "stop", strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	home.WaitFile(t, "stopped", "stopped\n")
	t.Logf("swap race: %d reads inside, %d refused", inside, refused)
	for _, p := range []string{"/etc/atelier-pwned", "/atelier-pwned", "/tmp/atelier-pwned"} {
		if _, err := os.Lstat(p); err == nil {
			os.Remove(p)
			t.Errorf("%s was written on the host", p)
		}
	}

	// Listing: links are shown as links; deleting one leaves its target.
	list, err := c.ListDir(ctx, s.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, e := range list.Entries {
		types[e.Name] = e.Type
	}
	if types["in.txt"] != "file" || types["shadow"] != "symlink" || types["root"] != "symlink" || types["d"] != "dir" || types["fifo"] != "other" {
		t.Errorf("listing: %v", types)
	}
	if _, err := c.ListDir(ctx, s.ID, "root"); !isCode(err, apitype.CodeBadPath) {
		t.Errorf("listing through a link: %v, want bad_path", err)
	}
	if err := c.DeleteFile(ctx, s.ID, "shadow"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/etc/shadow"); err != nil {
		t.Fatalf("deleting the link reached /etc/shadow: %v", err)
	}
	if _, err := home.ReadFile(t, "shadow"); err == nil {
		t.Error("the link is still there")
	}

	// A full home: the upload fails with home_full and leaves nothing
	// (where homes have quotas).
	if fleettest.Offers(t, runtime, fleettest.HomeQuota) {
		big := bytes.NewReader(make([]byte, quota+(16<<20)))
		if _, err := c.PutFile(ctx, s.ID, "big", big, big.Size()); !isCode(err, apitype.CodeHomeFull) {
			t.Fatalf("an upload past the quota: %v, want home_full", err)
		}
		list, _ = c.ListDir(ctx, s.ID, "")
		for _, e := range list.Entries {
			if e.Name == "big" || strings.HasPrefix(e.Name, ".atelier-upload") {
				t.Errorf("a failed upload left %s (%d bytes)", e.Name, e.Size)
			}
		}
		// The home still takes a small file.
		if _, err := c.PutFile(ctx, s.ID, "small", strings.NewReader("ok"), 2); err != nil {
			t.Fatalf("after a full upload: %v", err)
		}
	}

	// Audit: each put and get with its bytes and hash.
	sum := sha256.Sum256([]byte(content))
	var puts, gets int
	err = c.Audit(ctx, s.ID, map[string][]string{audit.ParamKind: {string(audit.KindFile)}}, func(line []byte) error {
		var e audit.Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return err
		}
		switch e.Detail["op"] {
		case "put":
			if e.Detail["path"] == "in.txt" {
				if e.Detail["sha256"] != hexenc.EncodeToString(sum[:]) || e.Detail["bytes"] != float64(len(content)) {
					t.Errorf("audit of the upload: %v", e.Detail)
				}
				puts++
			}
		case "get":
			if e.Detail["path"] == "made.txt" {
				gets++
			}
		}
		return nil
	})
	if err != nil || puts != 1 || gets != 1 {
		t.Errorf("audit: %d puts of in.txt, %d gets of made.txt (%v)", puts, gets, err)
	}
}

// TestFilesNeedTheToken: the file routes are the API's, behind its token.
func TestFilesNeedTheToken(t *testing.T) {
	fleettest.RequireDesktops(t)
	f := fleettest.New(t, fleettest.Options{Token: token})
	s, err := f.Client.CreateSession(t.Context(), apitype.CreateSession{}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	anon := client.New(f.URL, "", nil)
	if _, err := anon.PutFile(t.Context(), s.ID, "x", strings.NewReader("x"), 1); !isCode(err, apitype.CodeUnauthorized) {
		t.Errorf("PUT without a token: %v", err)
	}
	if _, err := anon.ListDir(t.Context(), s.ID, ""); !isCode(err, apitype.CodeUnauthorized) {
		t.Errorf("list without a token: %v", err)
	}
}
