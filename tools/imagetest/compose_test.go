package imagetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// commandTimeout bounds one docker or compose command.
const commandTimeout = 2 * time.Minute

// nodes are the compose file's services, in order.
var nodes = []string{"node1", "node2", "node3"}

// project is one compose project of images/compose.yaml, with a name and
// a private network of its own so that it meets no other (nor an
// installation on the same host).
type project struct {
	t    *testing.T
	cmd  []string // docker compose, or docker-compose
	file string
	name string
	env  []string
}

// composeCommand returns the compose command this host has: the docker
// plugin, else docker-compose.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("docker is missing: install docker.io (apt-get install docker.io) and start its daemon")
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if exec.Command("docker-compose", "version").Run() == nil {
		return []string{"docker-compose"}
	}
	t.Fatal("docker compose is missing: make deps installs docker-compose (apt-get install docker-compose)")
	return nil
}

// composeFile returns the path of images/compose.yaml.
func composeFile(t *testing.T) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	f := filepath.Join(filepath.Dir(here), "..", "..", "images", "compose.yaml")
	if _, err := os.Stat(f); err != nil {
		t.Fatalf("the compose file: %v", err)
	}
	return filepath.Clean(f)
}

// newProject returns a project of the compose file for image, not yet
// started. Its containers and volumes are removed when the test ends,
// after their logs are written to the test's log if it failed.
func newProject(t *testing.T, image string) *project {
	t.Helper()
	p := &project{t: t, cmd: composeCommand(t), file: composeFile(t),
		name: fmt.Sprintf("vigilimg%d%04d", os.Getpid()%100000, rand.IntN(10000))}
	p.env = append(os.Environ(),
		"COMPOSE_PROJECT_NAME="+p.name,
		"VIGIL_IMAGE="+image,
		"VIGIL_NET="+freeNet(t),
		"VIGIL_JOIN_TOKEN=",
	)
	// Every published port on an ephemeral port of loopback: the test
	// asks compose which.
	for _, n := range nodes {
		up := strings.ToUpper(n)
		p.env = append(p.env, "VIGIL_"+up+"_HTTPS=127.0.0.1:", "VIGIL_"+up+"_MQTTS=127.0.0.1:")
	}
	t.Cleanup(p.down)
	return p
}

// freeNet returns the first three octets of a /24 that no docker network
// of this host uses.
func freeNet(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' $(docker network ls -q)`).Output()
	if err != nil {
		t.Fatalf("docker network inspect: %v", err)
	}
	used := string(out)
	for range 200 {
		n := fmt.Sprintf("172.29.%d", 100+rand.IntN(150))
		if !strings.Contains(used, n+".") {
			return n
		}
	}
	t.Fatal("no free 172.29.x.0/24 for the test's network")
	return ""
}

// compose runs a compose command of the project and returns its standard
// output.
func (p *project) compose(args ...string) (string, error) {
	return p.run(p.cmd[0], append(append(p.cmd[1:], "-f", p.file, "-p", p.name), args...)...)
}

// docker runs a docker command and returns its standard output.
func (p *project) docker(args ...string) (string, error) { return p.run("docker", args...) }

func (p *project) run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = p.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.String(), nil
}

// mustCompose runs a compose command and fails the test if it fails.
func (p *project) mustCompose(args ...string) string {
	p.t.Helper()
	out, err := p.compose(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// container returns the ID of service's container.
func (p *project) container(service string) string {
	p.t.Helper()
	id := strings.TrimSpace(p.mustCompose("ps", "-q", service))
	if id == "" {
		p.t.Fatalf("%s has no container", service)
	}
	return id
}

// hostAddr returns the host address that service's port is published at.
func (p *project) hostAddr(service string, port int) (string, error) {
	out, err := p.compose("port", service, fmt.Sprint(port))
	if err != nil {
		return "", err
	}
	addr := strings.TrimSpace(out)
	if addr == "" || strings.HasSuffix(addr, ":0") {
		return "", fmt.Errorf("%s's port %d is not published", service, port)
	}
	return addr, nil
}

// down removes the project's containers, network and volumes, after
// writing the nodes' last log lines to the test's log if it failed.
func (p *project) down() {
	if p.t.Failed() {
		if out, err := p.compose("logs", "--no-color", "--tail", "60"); err == nil {
			p.t.Logf("the nodes' last logs:\n%s", out)
		}
	}
	if _, err := p.compose("down", "-v", "--remove-orphans", "-t", "5"); err != nil {
		p.t.Errorf("cannot remove the compose project %s: %v", p.name, err)
	}
}
