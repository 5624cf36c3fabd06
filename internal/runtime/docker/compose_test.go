package docker_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"atelier/internal/runtime/docker/dockertest"
)

// compose returns the command line of Docker Compose: the docker CLI's
// plugin, or the standalone docker-compose.
func compose(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	t.Skip("SKIPPED: NO DOCKER COMPOSE (neither `docker compose` nor docker-compose): compose.yaml is unchecked")
	return nil
}

// runCompose runs compose with args in the repository's root, with env
// added to the environment, and returns its output.
func runCompose(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmdline := append(compose(t), args...)
	cmd := exec.CommandContext(t.Context(), cmdline[0], cmdline[1:]...)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func TestComposeConfig(t *testing.T) {
	env := []string{"ATELIER_API_TOKEN=secret-for-the-test"}
	for _, tc := range []struct {
		profiles []string
		services []string
		want     []string // in the resolved configuration
	}{
		{nil, []string{"desktop-image", "fleet"},
			[]string{"ATELIER_RUNTIME: docker", "/var/run/docker.sock", "http://holo3:8000/v1", "127.0.0.1"}},
		{[]string{"with-tls"}, []string{"caddy", "desktop-image", "fleet"},
			[]string{"reverse-proxy", "fleet:8090", "443"}},
		{[]string{"holo3"}, []string{"desktop-image", "fleet", "holo3"},
			[]string{"nvidia", "gpu", "holo3-weights", "--served-model-name=holo3-35b-a3b"}},
		{[]string{"with-tls", "holo3"}, []string{"caddy", "desktop-image", "fleet", "holo3"}, nil},
	} {
		t.Run(strings.Join(append([]string{"default"}, tc.profiles...), "+"), func(t *testing.T) {
			var args []string
			for _, p := range tc.profiles {
				args = append(args, "--profile", p)
			}
			out, err := runCompose(t, env, append(args, "config")...)
			if err != nil {
				t.Fatalf("compose config: %v\n%s", err, out)
			}
			if got := activeServices(out, tc.profiles); !slices.Equal(got, tc.services) {
				t.Errorf("services %v, want %v", got, tc.services)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the configuration lacks %q:\n%s", w, out)
				}
			}
		})
	}
	// Without a token the fleet would listen beyond loopback unguarded.
	out, err := runCompose(t, []string{"ATELIER_API_TOKEN="}, "config")
	if err == nil || !strings.Contains(out, "set ATELIER_API_TOKEN") {
		t.Errorf("compose config without ATELIER_API_TOKEN: %v, %q; want a refusal that says to set it", err, out)
	}
}

// activeServices returns, sorted, the services of a resolved compose
// configuration that run with profiles: those with no profile or one of
// them. (Compose v1 prints every service with its profiles, v2 only the
// active ones: both give the same answer here.)
func activeServices(config string, profiles []string) []string {
	var active []string
	inServices, name := false, ""
	var theirs []string
	flush := func() {
		if name != "" && (len(theirs) == 0 || slices.ContainsFunc(theirs, func(p string) bool { return slices.Contains(profiles, p) })) {
			active = append(active, name)
		}
		name, theirs = "", nil
	}
	inProfiles := false
	for _, line := range strings.Split(config, "\n") {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		trimmed := strings.TrimSpace(line)
		switch {
		case indent == 0 && trimmed != "":
			flush()
			inServices = trimmed == "services:"
		case !inServices:
		case indent == 2 && strings.HasSuffix(trimmed, ":"):
			flush()
			name = strings.TrimSuffix(trimmed, ":")
			inProfiles = false
		case inProfiles && strings.HasPrefix(trimmed, "- "):
			theirs = append(theirs, strings.Trim(strings.TrimPrefix(trimmed, "- "), `"'`))
		case indent == 4:
			inProfiles = trimmed == "profiles:"
		}
	}
	flush()
	slices.Sort(active)
	return active
}

// freePort returns a loopback port nothing listens on at the moment.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// The fleet service of compose.yaml builds, starts with the docker runtime
// and answers /health on its published loopback port.
func TestComposeFleetAnswersHealth(t *testing.T) {
	_, desktopImage := dockertest.Engine(t) // the engine, the local Debian base and the desktop image built
	root := repoRoot()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(root, "bin", "atelier"), "./cmd/atelier")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build atelier: %v\n%s", err, out)
	}
	project := fmt.Sprintf("ateliertest%d", time.Now().UnixNano())
	port := freePort(t)
	env := []string{
		"ATELIER_API_TOKEN=secret-for-the-test",
		"ATELIER_BASE_IMAGE=atelier/debian-base:bookworm",
		"ATELIER_VERSION=" + project,
		"ATELIER_DATA_DIR=" + t.TempDir(),
		fmt.Sprintf("ATELIER_PORT=%d", port),
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmdline := append(compose(t), "-p", project, "down", "--volumes")
		cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
		cmd.Dir, cmd.Env = root, append(os.Environ(), env...)
		cmd.Run()
		exec.CommandContext(ctx, "docker", "rmi", "atelier/fleet:"+project, "atelier/desktop:"+project).Run()
	})
	// The fleet checks at start that its desktop image exists; the one
	// engine built serves under this project's tag.
	if out, err := exec.CommandContext(t.Context(), "docker", "tag", desktopImage, "atelier/desktop:"+project).CombinedOutput(); err != nil {
		t.Fatalf("tag the desktop image: %v\n%s", err, out)
	}
	if out, err := runCompose(t, env, "-p", project, "up", "-d", "--build", "--no-deps", "fleet"); err != nil {
		t.Fatalf("compose up fleet: %v\n%s", err, out)
	}
	c, _ := dockertest.Engine(t)
	id, err := runCompose(t, env, "-p", project, "ps", "-q", "fleet")
	if err != nil || strings.TrimSpace(id) == "" {
		t.Fatalf("compose ps fleet: %v %q", err, id)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if ins, err := c.ContainerInspect(t.Context(), strings.TrimSpace(id), client.ContainerInspectOptions{}); err == nil && !ins.Container.State.Running {
			last = "the fleet container exited"
			break
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	logs, _ := runCompose(t, env, "-p", project, "logs", "fleet")
	if strings.Contains(logs, `runtime "docker" is not built into this atelier`) {
		t.Skip("SKIPPED: internal/cli does not wire the docker runtime yet (fleet logs say so); compose.yaml itself is checked by TestComposeConfig")
	}
	t.Fatalf("%s: %s; fleet logs:\n%s", url, last, logs)
}
